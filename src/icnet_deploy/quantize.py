"""Calibration, explicit INT8 (QDQ) and FP16 graph transforms: precision lives in the ONNX graph.

Everything here is a graph → graph transform that ONNX Runtime CPU can run and check, and that
TensorRT (strongly typed) compiles as is:

* **Calibration data** (``ImageBatches``): image files read through the one ``preprocess``
  every backend uses, resized to the model's input size with ``transforms.resize_image``.
  It is the project's data-loader protocol — an iterable of float32 N×3×H×W arrays — so
  the same object feeds calibration, parity and benchmarks.
* **Calibration** (``calibrate``): ONNX Runtime's own calibrators (``create_calibrator``:
  MinMax, Entropy, Percentile) compute the activation ranges; we feed them one batch per
  ``collect_data`` call so memory stays one image's activations (ORT's
  ``CalibMaxIntermediateOutputs`` silently drops data in 1.32; this is what
  ``CalibStridedMinMax`` does, for every method). The ranges are saved as a readable JSON
  *calibration cache* (tensor → [min, max], method, image-set hash, graph hash) and reused
  only for the graph they were made for.
* **INT8** (``quantize_qdq``): ONNX Runtime's ``QDQQuantizer`` (what ``quantize_static``
  runs after calibration) inserts QuantizeLinear/DequantizeLinear pairs: int8 weights,
  symmetric and per output channel; activations uint8 (asymmetric) for the ``cpu`` target —
  ORT's VNNI kernels are u8×s8 — or int8 with zero point 0 for ``tensorrt``, which only
  accepts symmetric quantization. Why ORT and not NVIDIA ModelOpt: ORT's quantizer is
  already a dependency (ModelOpt adds ~1.4 GB and needs torch at build time), it writes the
  standard-domain QDQ ops TensorRT's parser reads, and its placement is the one ORT CPU's
  QDQ → QLinear* fusions are written for (ModelOpt's placement targets TensorRT; not measured
  on CPU here). Why not our own insertion: placement rules (which op inputs/outputs, shared
  Q/DQ pairs, bias quantization to int32, Relu removal for asymmetric activations) are
  exactly what ``QDQQuantizer`` already does well.
* **Calibration with a heavy-tail cap** (``calibrate``, ``DEFAULT_TAIL_CAP``): percentile
  ranges, each capped at 3× the tensor's 99th percentile, so that a few "massive activations"
  (ICNet's dilated low-resolution branch on flat sky) do not stretch a range 30× past the bulk.
* **Mixed precision by measurement** (``sensitivity_search``): with a target agreement the
  fewest blocks (cheapest first, per unit of sensitivity) are kept in fp32 that meet it on the
  calibration images (see its docstring).
* **Exact graph rewrite** (``commute_classifier_resize``): the 1×1 classifier runs before the
  ×2 Resize that feeds it (same result, 4× fewer classifier MACs, 19 instead of 128 channels
  resized); ``build_engine`` applies it to every engine it builds.
* **FP16** (``convert_fp16``): ``onnxruntime.transformers.float16.convert_float_to_float16``
  (the maintained copy of onnxconverter-common's converter; it ships with onnxruntime, so no
  extra dependency) with ``keep_io_types`` and fp32 islands for Resize and the pyramid
  pooling MatMuls (reductions over whole feature maps).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, DataError, IcnetDeployError
from .fileio import atomic_write_text
from .hashing import graph_sha256 as _hash_graph, sha256_bytes, sha256_file
from .upsample import labels_of

__all__ = [
    "CALIB_METHODS",
    "COST_FLOOR",
    "DEFAULT_PERCENTILE",
    "DEFAULT_TAIL_CAP",
    "FP16_KEEP_BLOCKS",
    "FP16_KEEP_OPS",
    "TARGETS",
    "CalibrationCache",
    "ImageBatches",
    "LayerSensitivity",
    "SearchResult",
    "block_of",
    "calibrate",
    "commute_classifier_resize",
    "convert_fp16",
    "default_calib_dir",
    "default_fp16_fp32_nodes",
    "default_fp32_nodes",
    "graph_sha256",
    "label_agreement",
    "node_macs",
    "prepare_for_quantization",
    "quantizable_nodes",
    "quantize_qdq",
    "sensitivity_search",
]

CALIB_METHODS = ("percentile", "entropy", "minmax")
TARGETS = ("cpu", "tensorrt")
# 99.99 rather than the usual 99.999: measured on the shipped checkpoint (fixed-rule INT8, 40
# calibration scenes, 1024×2048), the low-resolution branch's ranges are set by a few images whose
# activations run 1.6–2× larger than the rest; clipping them gives every other image finer steps.
# Agreement with fp32 on 3 held-out scenes / 4 photos: 99.999 → 96.87% / 91.69%,
# 99.99 → 98.76% / 97.15%, 99.95 → 98.50% / 97.39%, 99.9 → 97.89% / 95.45%; entropy 98.06% / 94.28%
# and minmax 98.04% / 94.25% (12 images); an MSE-optimal clip 97.49% / 92.86%.
DEFAULT_PERCENTILE = 99.99
# Heavy-tail cap for percentile calibration: a range never exceeds TAIL_CAP × the tensor's 99th
# percentile of |x|. ICNet's dilated low-resolution branch (layer3.3 → layer4 → pyramid → CFF)
# makes "massive activations" on generated scenes (measured on the 10,000-iteration checkpoint):
# at ~2% of its 32×64 positions (flat sky, in a period-4 grid) every channel reaches ±100, while
# the bulk stays below ±4 and real photos never exceed ±6. The 99.99th percentile cannot cut a 2%
# population, so those tensors got ranges of ±120 and photos used 3 of 255 levels there. Capping
# at 3× p99 clips the outliers (the network does not need their exact size: scene agreement rises
# too). Fixed-rule INT8 at 1024×2048, 8 calibration scenes, agreement with fp32 on 3 held-out
# scenes / 4 photos: no cap 98.33% / 84.37%;
# cap 20 → 98.15/86.22, 10 → 98.58/88.81, 5 → 98.70/96.28, 4 → 98.76/96.32, **3 → 98.75/97.85**,
# 2 → 98.69/97.83, 1.5 → 98.43/95.79; plain p99 → 97.32/85.70, p99.9 → 98.63/89.86.
DEFAULT_TAIL_CAP = 3.0
CACHE_FORMAT = "icnet-deploy calibration cache"
CACHE_VERSION = 1
# Op types whose inputs/outputs get Q/DQ. Conv and MatMul carry the work; quantizing Add and
# MaxPool too keeps whole residual blocks in int8 (ORT fuses DQ→Add→Q into QLinearAdd), so
# no Q/DQ transition sits inside a block. Resize stays float: measured on this CPU, ORT's
# uint8 Resize (plus its Q/DQ) took ~4× the time of its fp32 NCHWc Upsample, and keeping it
# float keeps the classifier's input unrounded. Relu must be listed: with uint8 activations
# the quantizer then folds it into the producer's range (zero point 0 clips like Relu)
# instead of quantizing the pre-Relu tensor with half its range wasted.
QUANT_OP_TYPES = ("Conv", "MatMul", "Add", "MaxPool", "Relu")
_FOLLOWERS = ("Relu",)  # quantized exactly when their input is: not layers of their own
# FP16: ops that stay fp32 (resampling and whole-map reductions lose most in half precision).
FP16_KEEP_OPS = ("Resize", "MatMul")
# FP16: blocks (``block_of`` names, first part) kept fp32 as well: the trunk's stem, which reads
# the (half-size) image. Measured at 1024×2048 on the shipped checkpoint (dbaead59) against fp32,
# real photographs (the set whose near-tied pixels flip first) / scenes, once the fp32 islands
# really are fp32 (``_drop_fp16_round_trips``: otherwise every activation between two fp32 nodes
# is still rounded to fp16): all-fp16 99.932% / 99.998%, stem fp32 99.948%, stem and layer1 99.955%
# (check's fp16 gate is 99.9; with the rounded islands the same three gave 99.889, 99.903 and 99.927%). The stem is 12.8% of the MACs
# (layer1 another 6.5%): on a GPU that is what the photos' margin costs; ``--fp32-layer`` replaces it.
FP16_KEEP_BLOCKS = ("stem",)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _noop(_stage: str, _done: int, _total: int) -> None:
    pass


# --------------------------------------------------------------------------------------------
# the data-loader protocol
# --------------------------------------------------------------------------------------------
def default_calib_dir() -> Path:
    """The shipped calibration set: the repository's ``calib/`` (``$ICNET_DEPLOY_CALIB`` overrides)."""
    env = os.environ.get("ICNET_DEPLOY_CALIB")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "calib"


class ImageBatches:
    """Image files → float32 N×3×H×W batches, through the same ``preprocess`` as inference.

    An iterable (re-iterable: each ``iter()`` reads the files again, so nothing big is held),
    with ``len()`` = number of batches. Every image is resized to (``height``, ``width``) with
    ``transforms.resize_image``; a last short batch is kept short. Unreadable files raise
    ``DataError`` naming the file.
    """

    def __init__(self, paths: Sequence[str | Path], *, height: int, width: int,
                 mean: Sequence[float], std: Sequence[float], batch: int = 1) -> None:
        if not paths:
            raise DataError("no calibration images given")
        if batch < 1:
            raise IcnetDeployError(f"batch must be at least 1, got {batch}")
        self.paths = [Path(p) for p in paths]
        self.height, self.width, self.batch = int(height), int(width), int(batch)
        self.mean, self.std = tuple(mean), tuple(std)

    @classmethod
    def from_folder(cls, folder: str | Path | None = None, *, height: int, width: int, mean: Sequence[float],
                    std: Sequence[float], batch: int = 1, limit: int | None = None) -> ImageBatches:
        """All images under ``folder`` (default: the shipped ``calib/``), sorted by path."""
        from .data.folders import list_images

        folder = Path(folder) if folder is not None else default_calib_dir()
        if not folder.exists():
            raise DataError(f"{folder}: calibration folder not found")
        if not folder.is_dir():
            raise DataError(f"{folder}: calibration set must be a folder of images")
        paths = list_images(folder)
        if limit is not None:
            paths = paths[:limit]
        return cls(paths, height=height, width=width, mean=mean, std=std, batch=batch)

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch)

    @property
    def num_images(self) -> int:
        return len(self.paths)

    def read(self, path: Path) -> np.ndarray:
        """One image as float32 1×3×H×W."""
        from .data.folders import read_rgb
        from .data.transforms import preprocess, resize_image

        rgb = read_rgb(path)
        return preprocess(resize_image(rgb, (self.height, self.width)), self.mean, self.std)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.paths), self.batch):
            yield np.concatenate([self.read(p) for p in self.paths[start:start + self.batch]], axis=0)

    def image_set_sha256(self) -> str:
        """Identity of the image set: names and bytes of every file, plus the input size."""
        entries = [f"{p.name}:{sha256_file(p)}" for p in self.paths]
        return sha256_bytes("\n".join([f"{self.height}x{self.width}", *entries]).encode())


# --------------------------------------------------------------------------------------------
# graph helpers
# --------------------------------------------------------------------------------------------
def _load(model: Any):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ArtifactError(f"{path}: ONNX model not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def graph_sha256(model: Any) -> str:
    """Hash of the graph alone (nodes, weights, I/O), not of metadata such as creation time:
    re-exporting the same weights at the same size gives the same hash."""
    return _hash_graph(_load(model))


def commute_classifier_resize(model: Any) -> tuple[Any, list[str]]:
    """Run each 1×1 Conv that reads a bilinear/nearest Resize *before* that Resize.

    ``Conv1×1(Resize(x)) == Resize(Conv1×1(x))`` exactly in real arithmetic: both are linear, the
    conv acts per pixel and the resize per channel, and interpolation weights sum to 1 so the
    bias passes through. ICNet's classifier (128 → 19 channels) reads the ×2 upsampled 1/8
    features; after the swap it runs at 1/8 (4× fewer MACs) and the ×2 Resize moves 19 channels
    instead of 128. Measured on the shipped checkpoint at 1024×2048 (2 threads): max |Δlogit|
    4e-5 in fp32; fp32 graph 1.05× faster, fixed-rule INT8 1.61× → 1.79× ORT fp32 (the uint8
    graph runs that Resize on dequantized NCHW data, where 128 channels cost most).

    Applied only where it reduces work (fewer output than input channels) and the Resize output
    feeds nothing else. Returns (a new ModelProto, the names of the Conv nodes moved).
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(_load(model))
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    moved: list[str] = []
    for conv in list(graph.node):
        if conv.op_type != "Conv" or conv.input[1] not in inits:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
        w = inits[conv.input[1]].dims
        if (len(w) != 4 or list(w[2:]) != [1, 1] or attrs.get("group", 1) != 1 or any(attrs.get("pads", [0]))
                or any(v != 1 for v in attrs.get("strides", [1])) or w[0] >= w[1]):
            continue
        resize = producers.get(conv.input[0])
        if resize is None or resize.op_type != "Resize" or resize.output[0] in outputs \
                or len(consumers.get(resize.output[0], [])) != 1:
            continue
        mode = next((onnx.helper.get_attribute_value(a) for a in resize.attribute if a.name == "mode"), b"nearest")
        if mode not in (b"linear", b"nearest"):
            continue
        if len(resize.input) > 3 and resize.input[3]:  # sizes: the channel entry becomes the conv's outputs
            if resize.input[3] not in inits:
                continue
            sizes = numpy_helper.to_array(inits[resize.input[3]]).copy()
            sizes[1] = w[0]
            name = f"{resize.input[3]}_{conv.name.strip('/').replace('/', '_')}"
            graph.initializer.append(numpy_helper.from_array(sizes, name))
            resize.input[3] = name
        low = f"{conv.output[0]}_before_resize"
        final, upsampled = conv.output[0], resize.output[0]
        conv.input[0], conv.output[0] = resize.input[0], low
        resize.input[0], resize.output[0] = low, final
        nodes = list(graph.node)
        nodes.remove(conv)
        nodes.insert(nodes.index(resize), conv)
        del graph.node[:]
        graph.node.extend(nodes)
        keep = [v for v in graph.value_info if v.name not in (upsampled, final)]  # shapes changed
        del graph.value_info[:]
        graph.value_info.extend(keep)
        moved.append(conv.name)
    used = {i for n in graph.node for i in n.input}
    unused = [i for i in graph.initializer if i.name not in used]  # the old Resize sizes
    for init in unused:
        graph.initializer.remove(init)
    return proto, moved


def prepare_for_quantization(model: Any, output: str | Path) -> Path:
    """``quant_pre_process`` (symbolic shape inference + ORT's basic graph optimisation) into
    ``output``. It turns every bias and folded constant into an initializer, which the QDQ
    quantizer needs to quantize Conv biases and which ORT needs to fuse QLinearConv."""
    import onnx
    from onnxruntime.quantization import quant_pre_process

    proto = _load(model)
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="icnet_prep_") as tmp:
        src = Path(tmp) / "in.onnx"
        onnx.save(proto, str(src))
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(src), str(output), skip_symbolic_shape=False)
    return output


def quantizable_nodes(model: Any, op_types: Sequence[str] = QUANT_OP_TYPES) -> list[str]:
    """Names of the nodes the quantizer may touch, in graph order."""
    return [n.name for n in _load(model).graph.node if n.op_type in op_types]


def default_fp32_nodes(model: Any) -> dict[str, str]:
    """The fixed-rule fp32 set (node name → reason) used when no target agreement is given:
    the convs that read the normalised image, the classifier and everything after it."""
    proto = _load(model)
    graph_input = proto.graph.input[0].name
    output = proto.graph.output[0].name
    producers = {o: n for n in proto.graph.node for o in n.output}
    keep: dict[str, str] = {}
    # the image-reading layers: Conv on the input, Conv on the ×0.5 resized input (and that Resize)
    for node in proto.graph.node:
        if graph_input in node.input:
            if node.op_type == "Resize":
                keep[node.name] = "resizes the input image"
                for other in proto.graph.node:
                    if node.output[0] in other.input and other.op_type == "Conv":
                        keep[other.name] = "first conv (reads the normalised image)"
            elif node.op_type == "Conv":
                keep[node.name] = "first conv (reads the normalised image)"
    # from the output back to the classifier Conv: the final Resize and the classifier
    node = producers.get(output)
    while node is not None:
        if node.op_type == "Conv":
            keep[node.name] = "classifier (logits)"
            break
        if node.op_type == "Resize":
            keep[node.name] = "final resize to the input size" if node.output[0] == output else "resize after the classifier"
        else:
            keep[node.name] = "after the classifier"
        node = producers.get(node.input[0])
    return keep


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------
@dataclass
class CalibrationCache:
    """Per-tensor activation ranges (a readable JSON file) and what they were computed from."""

    method: str
    ranges: dict[str, list[float]]  # tensor name -> [min, max] (already clipped by the method)
    graph_sha256: str  # the fp32 graph (see graph_sha256) the tensor names belong to
    image_set_sha256: str
    images: int
    input_size: list[int]  # [height, width] the images were resized to
    percentile: float | None = None
    tail_cap: float | None = None  # percentile ranges capped at tail_cap × p99 (None: no cap)
    created: str = ""
    versions: dict = field(default_factory=dict)
    format: str = CACHE_FORMAT
    version: int = CACHE_VERSION

    def __post_init__(self) -> None:
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def to_json(self) -> str:
        data = asdict(self)
        data["ranges"] = {k: [float(v[0]), float(v[1])] for k, v in sorted(self.ranges.items())}
        return json.dumps(data, indent=1, sort_keys=True)

    def sha256(self) -> str:
        return sha256_bytes(self.to_json().encode())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, *, graph_sha256: str | None = None, method: str | None = None,
             model: Any = None) -> CalibrationCache:
        """Read a cache, refusing one that is malformed or implausible (``calib_schema``); with
        ``graph_sha256`` one made for another model, with ``method`` one made with another
        calibration method, with ``model`` (the pre-processed graph) one without a range for a
        tensor the quantizer needs."""
        from .calib_schema import check_fields, check_ranges, missing_ranges

        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: calibration cache not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArtifactError(f"{path}: calibration cache is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            raise ArtifactError(f"{path}: not an icnet-deploy calibration cache")
        problem = check_fields(data) or check_ranges(data["ranges"])
        if problem:
            raise ArtifactError(f"{path}: calibration cache refused: {problem}")
        if data.get("version", 0) > CACHE_VERSION:
            raise ArtifactError(f"{path}: calibration cache version {data['version']} is newer than this icnet-deploy")
        known = set(cls.__dataclass_fields__)
        cache = cls(**{k: v for k, v in data.items() if k in known})
        cache.ranges = {str(k): [float(v[0]), float(v[1])] for k, v in cache.ranges.items()}
        if graph_sha256 is not None and cache.graph_sha256 != graph_sha256:
            raise ArtifactError(
                f"{path}: calibration cache was made for another model (graph {cache.graph_sha256[:12]}…, "
                f"this one is {graph_sha256[:12]}…); calibrate again or pass the matching model"
            )
        if method is not None and cache.method != method:
            raise ArtifactError(f"{path}: calibration cache was made with {cache.method!r}, not {method!r} calibration")
        if model is not None:
            missing = missing_ranges(cache.ranges, _load(model), QUANT_OP_TYPES)
            if missing:
                raise ArtifactError(f"{path}: calibration cache refused: no range for {len(missing)} tensor(s) the "
                                    f"model needs (e.g. {missing[0]!r}); calibrate again")
        return cache


class _OneBatch:
    """An ORT CalibrationDataReader over a single batch."""

    def __init__(self, name: str, batch: np.ndarray) -> None:
        self._item: dict | None = {name: batch}

    def get_next(self) -> dict | None:
        item, self._item = self._item, None
        return item


def _threaded_collector(calibrator: Any) -> Any:
    """ORT's histogram collector for ``calibrator``, with its loop over tensors on threads.

    Each tensor's histogram is independent, and numpy's sort and histogram release the GIL, so
    the per-image statistics (most of calibration's time: ~160 tensors, 2.4e8 values per image
    at 1024×2048) run on every core. Same code, same histograms: 3 images, 2 cores, 19.2 s →
    11.2 s with identical ranges (tests/test_quantize.py compares the caches).
    """
    from concurrent.futures import ThreadPoolExecutor

    from onnxruntime.quantization.calibrate import HistogramCollector

    workers = max(1, min(4, os.cpu_count() or 1))

    class PerTensorThreads(HistogramCollector):
        def collect_absolute_value(self, name_to_arr: dict) -> None:
            self._each(super().collect_absolute_value, name_to_arr)

        def collect_value(self, name_to_arr: dict) -> None:
            self._each(super().collect_value, name_to_arr)

        def _each(self, collect: Callable[[dict], None], name_to_arr: dict) -> None:
            with ThreadPoolExecutor(workers, thread_name_prefix="icnet-calib") as pool:
                for job in [pool.submit(collect, {name: arr}) for name, arr in name_to_arr.items()]:
                    job.result()

    c = calibrator
    return PerTensorThreads(method=c.method, symmetric=c.symmetric, num_bins=c.num_bins,
                            num_quantized_bins=c.num_quantized_bins, percentile=c.percentile, scenario=c.scenario)


def _range_of(td: Any) -> tuple[float, float]:
    lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in td.range_value)
    return lo, hi


def calibrate(
    model: Any,
    data: Iterable[np.ndarray],
    method: str = "percentile",
    *,
    percentile: float = DEFAULT_PERCENTILE,
    tail_cap: float | None = DEFAULT_TAIL_CAP,
    image_set_sha256: str = "",
    source_graph_sha256: str | None = None,
    progress: Progress | None = None,
) -> CalibrationCache:
    """Activation ranges of every float tensor of ``model`` (a pre-processed fp32 graph, see
    ``prepare_for_quantization``) over the batches of ``data``.

    ``method``: ``percentile`` (|x| histogram, the ``percentile`` cut, capped at ``tail_cap`` ×
    the 99th percentile — see ``DEFAULT_TAIL_CAP``; ranges of non-negative tensors start at 0),
    ``entropy`` (KL-divergence threshold, TensorRT's classic method) or
    ``minmax``. The cache's graph hash is ``source_graph_sha256`` (the fp32 model the user
    gave) or the hash of ``model`` itself.
    """
    import onnx
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    if method not in CALIB_METHODS:
        raise IcnetDeployError(f"unknown calibration method {method!r}; use one of {', '.join(CALIB_METHODS)}")
    if not 0 < percentile <= 100:
        raise IcnetDeployError(f"percentile must be in (0, 100], got {percentile}")
    if tail_cap is not None and not tail_cap >= 1:
        raise IcnetDeployError(f"tail cap must be at least 1 (× the 99th percentile), got {tail_cap}")
    say = progress or _noop
    proto = _load(model)
    input_name = proto.graph.input[0].name
    total = len(data) if hasattr(data, "__len__") else 0
    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    options: dict[str, Any] = {"symmetric": method == "percentile"}
    if method == "percentile":
        options["percentile"] = float(percentile)
    with tempfile.TemporaryDirectory(prefix="icnet_calib_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, str(path))
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print progress chatter
            calibrator = create_calibrator(path, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                           calibrate_method=ort_method, extra_options=options)
        if method != "minmax":
            calibrator.collector = _threaded_collector(calibrator)
        count = images = 0
        say("calibrating", 0, total)
        for batch in data:
            if batch.ndim != 4 or batch.dtype != np.float32:
                raise DataError(f"calibration batches must be float32 N×3×H×W, got {batch.dtype} {batch.shape}")
            with contextlib.redirect_stdout(io.StringIO()):
                calibrator.collect_data(_OneBatch(input_name, batch))
            count += 1
            images += batch.shape[0]
            say("calibrating", count, max(total, count))
        if not count:
            raise DataError("calibration got no images")
        with contextlib.redirect_stdout(io.StringIO()):
            tensors = calibrator.compute_data()
            caps = None
            if method == "percentile" and tail_cap is not None:
                calibrator.collector.percentile = 99.0  # the same histograms, a second cut
                caps = {n: tail_cap * _range_of(td)[1] for n, td in calibrator.compute_data().items()}
        del calibrator
    ranges = {}
    for name, td in tensors.items():
        lo, hi = _range_of(td)
        if caps is not None and caps.get(name, 0.0) > 0:
            lo, hi = max(lo, -caps[name]), min(hi, caps[name])
        ranges[name] = [min(lo, 0.0), hi]  # quantizers put 0 in every range anyway; say so in the cache
    from .machine import library_versions

    h, w = (int(d.dim_value) for d in proto.graph.input[0].type.tensor_type.shape.dim[2:])
    shape = list(next(iter(data)).shape[2:]) if not (h and w) else [h, w]
    return CalibrationCache(
        method=method, ranges=ranges, graph_sha256=source_graph_sha256 or graph_sha256(proto),
        image_set_sha256=image_set_sha256, images=images, input_size=[int(s) for s in shape],
        percentile=float(percentile) if method == "percentile" else None,
        tail_cap=float(tail_cap) if method == "percentile" and tail_cap is not None else None,
        versions=library_versions("onnxruntime", "onnx"),
    )


# --------------------------------------------------------------------------------------------
# INT8: QDQ insertion
# --------------------------------------------------------------------------------------------
_SHAPES_KEY = "icnet_deploy.shape_inferred"


def _has_shape_info(proto: Any) -> bool:
    return any(p.key == _SHAPES_KEY for p in proto.metadata_props)


def _with_shapes(model: Any) -> Any:
    """The graph with ONNX shape inference applied (what the quantizer reads), marked as such."""
    import onnx
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    with tempfile.TemporaryDirectory(prefix="icnet_qdq_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(_load(model), str(path))
        proto = load_model_with_shape_infer(path)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=_SHAPES_KEY, value="1"))
    return proto
# --------------------------------------------------------------------------------------------
def quantize_qdq(
    model: Any,
    cache: CalibrationCache,
    *,
    target: str = "cpu",
    exclude: Iterable[str] = (),
    op_types: Sequence[str] = QUANT_OP_TYPES,
    reduce_range: bool = False,
) -> Any:
    """An explicit-quantization (QDQ) ModelProto of the pre-processed fp32 ``model``.

    Weights: int8, symmetric, per output channel (7-bit with ``reduce_range``, see
    ``reduce_range_for``). Activations: uint8 asymmetric for ``target="cpu"``, int8 symmetric
    (zero point 0) for ``"tensorrt"``. Nodes named in ``exclude`` keep fp32 inputs and outputs.
    Tensors missing from the cache stay float.
    """
    import onnx
    from onnxruntime.quantization import QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    if target not in TARGETS:
        raise IcnetDeployError(f"unknown INT8 target {target!r}; use one of {', '.join(TARGETS)}")
    proto = _load(model)
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in cache.ranges.items()
    })
    symmetric = target == "tensorrt"
    extra = {
        "ActivationSymmetric": symmetric,
        "WeightSymmetric": True,
        # uint8 (cpu): Relu disappears into its producer's Q range (zero point 0 clips like Relu).
        # int8 symmetric (tensorrt): ORT keeps Relu between Q/DQ pairs; TensorRT fuses Conv+Relu+Q.
        "QDQKeepRemovableActivations": False,
        # one Q/DQ pair per tensor, shared by its consumers (what ORT's fusions and TensorRT expect)
        "DedicatedQDQPair": False,
        # ORT CPU wants int32 biases (QLinearConv); TensorRT's explicit quantization takes only
        # int8 Q/DQ and keeps biases float (it fuses them into the int8 kernel itself).
        "QuantizeBias": not symmetric,
    }
    if _has_shape_info(proto):  # already shape-inferred (the search quantizes one graph many times)
        loaded = onnx.ModelProto()
        loaded.CopyFrom(proto)
    else:
        loaded = _with_shapes(proto)
    quantizer = QDQQuantizer(
        loaded,
        True,  # per_channel
        reduce_range,
        QuantType.QInt8,  # weights
        QuantType.QInt8 if symmetric else QuantType.QUInt8,  # activations
        tensors,
        [],  # nodes_to_quantize: all
        sorted(set(exclude)),
        list(op_types),
        extra,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        quantizer.quantize_model()
    out = quantizer.model.model
    keep = [p for p in out.metadata_props if p.key != _SHAPES_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(keep)
    return out


def reduce_range_for(target: str, int8_kernel: str) -> tuple[bool, str]:
    """(reduce_range, why) for an INT8 build for ``target`` on a CPU of ``cpu.int8_kernel_class``.

    u8×s8 on x86 without VNNI (AVX2, AVX-512 without VNNI) goes through ``vpmaddubsw``, which sums
    two u8×s8 products into int16: 2·255·127 = 64770 overflows int16 (32767) and saturates. With
    7-bit weights (±63) the pair stays below it (2·255·63 = 32130), at half the weight resolution.
    VNNI and AMX accumulate into int32 directly, and TensorRT's int8 kernels do not pair products:
    full 8-bit weights there."""
    if target == "cpu" and int8_kernel in ("avx2", "avx512", "baseline"):
        return True, (f"{int8_kernel} CPU: u8×s8 pairs saturate int16 in vpmaddubsw with 8-bit weights; "
                      "7-bit weights (2·255·63 < 32767) cannot")
    if target == "cpu":
        return False, f"{int8_kernel} CPU: u8×s8 products accumulate in int32 (no saturation): full 8-bit weights"
    return False, "TensorRT int8 kernels: full 8-bit weights"


# --------------------------------------------------------------------------------------------
# FP16
# --------------------------------------------------------------------------------------------
def default_fp16_fp32_nodes(model: Any) -> list[str]:
    """Nodes the FP16 build keeps in fp32 besides the ``FP16_KEEP_OPS`` types: every node of the
    ``FP16_KEEP_BLOCKS`` (by exported name; a graph without such names gets none)."""
    return [n.name for n in _load(model).graph.node if block_of(n.name).split("/")[0] in FP16_KEEP_BLOCKS]


def convert_fp16(model: Any, *, keep_ops: Sequence[str] = FP16_KEEP_OPS, keep_nodes: Sequence[str] = (),
                 keep_io_types: bool = True) -> Any:
    """fp16 weights and activations with fp32 islands (``keep_ops`` types, ``keep_nodes`` names);
    the graph's input and output stay fp32 unless ``keep_io_types=False``."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    proto = onnx.ModelProto()
    proto.CopyFrom(_load(model))
    with contextlib.redirect_stdout(io.StringIO()):
        converted = convert_float_to_float16(
            proto, keep_io_types=keep_io_types, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_ops),
            node_block_list=list(keep_nodes),
        )
    proto = _drop_fp16_round_trips(converted)
    OnnxModel(proto).topological_sort()  # the converter appends its Casts at the end; keep the graph valid ONNX
    return proto


def _drop_fp16_round_trips(proto: Any) -> Any:
    """Remove every fp32 → fp16 → fp32 Cast pair the converter leaves between two fp32 nodes.

    ``convert_float_to_float16`` casts each blocked (fp32) node's output to fp16 and each blocked
    node's input back to fp32, so between two fp32 neighbours — all through the kept stem and
    layer1, the pyramid's MatMuls, the Resizes, even the input image before its Resize — every
    activation was rounded to fp16: "fp32 islands" that were not. Each fp32 reader now reads the
    fp32 tensor itself (the fp16 Cast stays where fp16 nodes read it too). At the graph's output
    (``keep_io_types``: the final Resize's output cast to fp16 and back) the output keeps its name
    and stays float32: it is the Resize's output itself, so ``coarse_logits_graph`` finds the Resize.
    """
    import onnx
    from onnx import TensorProto

    graph = proto.graph
    typed = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*typed.graph.value_info, *typed.graph.input, *typed.graph.output]}
    types |= {t.name: t.data_type for t in graph.initializer}
    outputs = {o.name for o in graph.output}

    def cast_to(node: Any, dtype: int) -> bool:
        return node is not None and node.op_type == "Cast" and any(
            a.name == "to" and a.i == dtype for a in node.attribute)

    def readers(name: str) -> list[Any]:
        return [n for n in graph.node if name in n.input]

    for outer in list(graph.node):
        if not cast_to(outer, TensorProto.FLOAT):
            continue
        producer = {o: n for n in graph.node for o in n.output}
        inner = producer.get(outer.input[0])
        if not cast_to(inner, TensorProto.FLOAT16) or types.get(inner.input[0]) != TensorProto.FLOAT:
            continue
        source, result = inner.input[0], outer.output[0]
        if result in outputs:  # keep the output's name: the source's producer writes it instead
            last = producer.get(source)
            if last is None or source in outputs or readers(source) != [inner] or readers(inner.output[0]) != [outer]:
                continue
            last.output[list(last.output).index(source)] = result
            graph.node.remove(inner)
            graph.node.remove(outer)
            continue
        for node in readers(result):
            for k, name in enumerate(node.input):
                if name == result:
                    node.input[k] = source
        graph.node.remove(outer)
        if not readers(inner.output[0]) and inner.output[0] not in outputs:
            graph.node.remove(inner)
    return proto


# --------------------------------------------------------------------------------------------
# parity and the sensitivity search
# --------------------------------------------------------------------------------------------
def label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Percent of pixels whose argmax class agrees (N×C×H×W logits, or N×H×W labels)."""
    a = labels_of(reference) if reference.ndim == 4 else reference
    b = labels_of(candidate) if candidate.ndim == 4 else candidate
    return 100.0 * float((a == b).mean())


def _session(proto: Any, threads: int | None = None) -> Any:
    from .backends.onnxruntime import create_session

    return create_session(proto.SerializeToString(), threads=threads)


def _run_all(session: Any, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    name = session.get_inputs()[0].name
    return [session.run(None, {name: b})[0] for b in batches]


@dataclass
class LayerSensitivity:
    node: str
    op_type: str
    score: float  # normalised logit error when only this block/layer is quantized (higher = more sensitive)
    agreement: float  # percent, only this block/layer quantized
    mac_share: float = 0.0  # fraction of the graph's multiply-accumulates in this block/layer


@dataclass
class SearchResult:
    fp32_nodes: dict[str, str]  # node -> why it stayed fp32
    agreement: float  # percent, on the search images, with fp32_nodes kept
    target: float
    met: bool
    sensitivities: list[LayerSensitivity]
    trials: list[dict]  # every (k, agreement) the search measured
    seconds: float
    granularity: str = "layer"

    def to_dict(self) -> dict:
        return asdict(self)


def node_macs(model: Any) -> dict[str, float]:
    """Multiply-accumulates of each Conv/MatMul (elements for Add/MaxPool/Relu) of a
    shape-inferred graph: the cost model that lets the search prefer cheap fp32 blocks."""
    proto = _load(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    weights = {i.name: list(i.dims) for i in proto.graph.initializer}
    macs: dict[str, float] = {}
    for n in proto.graph.node:
        out = shapes.get(n.output[0]) or []
        size = float(np.prod(out)) if out and all(out) else 0.0
        if n.op_type == "Conv" and n.input[1] in weights:
            w = weights[n.input[1]]
            macs[n.name] = size * float(np.prod(w[1:]))
        elif n.op_type == "MatMul":
            a = shapes.get(n.input[0]) or weights.get(n.input[0]) or [0]
            macs[n.name] = size * float(a[-1])
        else:
            macs[n.name] = size
    return macs


def block_of(node: str) -> str:
    """The block a node belongs to, from its exported name: a ResNet stage's residual block
    (``/layer3/layer3.2/…`` → ``layer3/layer3.2``), else the top-level module (``/pyramid/MatMul_5``
    → ``pyramid``, ``/layer2.1/conv/conv.0/Conv`` → ``layer2.1``). Unnamed nodes are their own block."""
    parts = [p for p in node.split("/") if p]
    if len(parts) < 2:
        return node
    if len(parts) >= 3 and parts[1].startswith(parts[0] + "."):
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


COST_FLOOR = 0.01  # a block's cost in the search ranking never counts as less than 1% of the MACs


def sensitivity_search(
    model: Any,
    cache: CalibrationCache,
    batches: Sequence[np.ndarray],
    *,
    target_agreement: float,
    rank_batches: int = 2,
    target: str = "cpu",
    op_types: Sequence[str] = QUANT_OP_TYPES,
    always_fp32: Sequence[str] = (),
    granularity: str = "block",
    finish: Callable[[Any], Any] | None = None,
    delta: float | None = None,
    reduce_range: bool = False,
    threads: int | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """A small, cheap set of blocks (or layers) to keep in fp32 so that INT8 agrees with fp32 on ``batches``
    (the calibration images) at least ``target_agreement`` percent (mean over the batches).

    ``granularity="block"`` (default) decides per residual block / top-level module
    (``block_of``), ``"layer"`` per node. Candidates are ranked by sensitivity per unit of cost
    (``score / (MAC share + 1%)``, see ``node_macs``), so that of two blocks that fix as much, the
    cheap one stays fp32. Blocks, because ONNX Runtime pays a Q/DQ transition
    at every border of an fp32 island: measured on the shipped checkpoint at 1024×2048, the
    per-layer search kept 62 scattered layers fp32 and the engine ran 0.92× ORT fp32, while a
    contiguous fp32 low-resolution branch (79 layers, 99.54% on held-out scenes) ran 1.28×.

    1. Quantize everything; if that meets the target, nothing stays fp32.
    2. Otherwise measure each candidate's sensitivity on the first ``rank_batches`` batches:
       quantize *only* that block and take the mean squared logit error relative to the fp32
       logits' variance (continuous, so it ranks blocks that flip no pixel on their own).
       This is the expensive step: one graph build and run per candidate.
    3. Keep the k highest-ranked candidates in fp32 for the smallest k that meets the target on
       *all* ``batches``: doubling k until it does, then bisecting (agreement grows about
       monotonically with k). Judging k on more images than the ranking keeps the claim from
       resting on the two images the ranking saw.

    ``finish``: applied to every trial graph after Q/DQ insertion (the build passes the GPTQ weight
    rounding, so that the search judges the graphs it will ship). ``delta``: judge agreement within
    ``delta`` logit (``metrics.within_delta``, what ``check`` gates INT8 on) instead of raw agreement.
    """
    if granularity not in ("block", "layer"):
        raise IcnetDeployError(f"granularity must be 'block' or 'layer', got {granularity!r}")
    started = time.perf_counter()
    say = progress or _noop
    proto = _load(model)
    ops = {n.name: n.op_type for n in proto.graph.node}
    proto = _with_shapes(proto)  # once, not per trial
    layer_ops = [op for op in op_types if op not in _FOLLOWERS]
    fixed_set = set(always_fp32)
    layers = [n for n in quantizable_nodes(proto, layer_ops) if n not in fixed_set]
    groups: dict[str, list[str]] = {}
    for n in layers:
        groups.setdefault(block_of(n) if granularity == "block" else n, []).append(n)
    batches = list(batches)
    ranking = batches[:max(1, rank_batches)]
    session = _session(proto, threads)
    name_in = session.get_inputs()[0].name
    # per image, the classes each pixel may take and still agree: the reference's own (raw), or every
    # class within delta of its best (a C×H×W mask; bool, so 19 bytes a pixel rather than 76)
    accepted = []
    for b in batches:
        ref = session.run(None, {name_in: b})[0][0]
        accepted.append(labels_of(ref[None])[0] if delta is None else ref >= ref.max(axis=0) - np.float32(delta))
    ref_logits = _run_all(session, ranking)  # full logits only where the logit error is needed
    del session
    ref_var = float(np.mean([r.var() for r in ref_logits])) or 1.0
    trials: list[dict] = []

    def agrees(labels: np.ndarray, ok: np.ndarray) -> float:
        if delta is None:
            return 100.0 * float((labels == ok).mean())
        return 100.0 * float(np.take_along_axis(ok, labels[None].astype(np.intp), axis=0).mean())

    def agreement(q: Any) -> float:
        s = _session(q, threads)
        return float(np.mean([agrees(labels_of(s.run(None, {name_in: b})[0])[0], ok)
                              for b, ok in zip(batches, accepted)]))

    def trial_graph(exclude: Iterable[str]) -> Any:
        q = quantize_qdq(proto, cache, target=target, exclude=list(exclude), op_types=op_types,
                         reduce_range=reduce_range)
        return finish(q) if finish is not None else q

    def sensitivity(exclude: Iterable[str]) -> tuple[float, float]:
        q = trial_graph(exclude)
        outs = _run_all(_session(q, threads), ranking)
        agree = float(np.mean([label_agreement(r, o) for r, o in zip(ref_logits, outs)]))
        err = float(np.mean([np.mean((r - o) ** 2) for r, o in zip(ref_logits, outs)])) / ref_var
        return agree, err

    def measure(exclude: Iterable[str]) -> tuple[float, float]:
        return agreement(trial_graph(exclude)), 0.0

    def result(keep: dict[str, str], agree: float, sens: list[LayerSensitivity]) -> SearchResult:
        return SearchResult(fp32_nodes=keep, agreement=agree, target=target_agreement,
                            met=agree >= target_agreement, sensitivities=sens, trials=trials,
                            seconds=round(time.perf_counter() - started, 1), granularity=granularity)

    fixed = {n: "kept fp32 on request" for n in always_fp32}
    say("search: all layers int8", 0, 1)
    agree_all, _ = measure(fixed)
    say("search: all layers int8", 1, 1)
    trials.append({"fp32_layers": len(fixed), "agreement": agree_all})
    if agree_all >= target_agreement:
        return result(fixed, agree_all, [])

    stage = f"search: {granularity} sensitivity"
    sens: list[LayerSensitivity] = []
    for i, (group, members) in enumerate(groups.items()):
        say(stage, i, len(groups))
        quantized = set(members)
        others = [n for n in layers if n not in quantized] + list(always_fp32)
        agree, err = sensitivity(others)
        op = ops[members[0]] if len(members) == 1 else f"{len(members)} layers"
        sens.append(LayerSensitivity(node=group, op_type=op, score=err, agreement=agree))
    say(stage, len(groups), len(groups))
    macs = node_macs(proto)
    total = sum(macs.get(n, 0.0) for n in layers) or 1.0
    share = {g: sum(macs.get(n, 0.0) for n in members) / total for g, members in groups.items()}
    for s in sens:
        s.mac_share = round(share[s.node], 5)
    ranked = sorted(sens, key=lambda s: s.score / (share[s.node] + COST_FLOOR), reverse=True)

    def members_of(k: int) -> list[str]:
        return [n for s in ranked[:k] for n in groups[s.node]]

    cache_k: dict[int, float] = {0: agree_all}

    def agreement_at(k: int) -> float:
        if k not in cache_k:
            say("search: smallest fp32 set", len(trials) - 1, len(trials))
            kept = members_of(k)
            cache_k[k] = measure(kept + list(always_fp32))[0]
            trials.append({"fp32_layers": len(kept) + len(fixed), f"fp32_{granularity}s": k,
                           "agreement": cache_k[k]})
            say("search: smallest fp32 set", len(trials) - 1, len(trials) - 1)
        return cache_k[k]

    lo, hi = 0, 1  # invariant: agreement_at(lo) < target
    while hi < len(ranked) and agreement_at(hi) < target_agreement:
        lo, hi = hi, min(2 * hi, len(ranked))
    if agreement_at(hi) < target_agreement:  # even everything in fp32 does not (cannot happen but say so)
        keep = dict(fixed) | {n: f"sensitivity {s.score:.2e}" for s in ranked for n in groups[s.node]}
        return result(keep, agreement_at(hi), ranked)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if agreement_at(mid) >= target_agreement:
            hi = mid
        else:
            lo = mid
    keep = dict(fixed)
    for rank, s in enumerate(ranked[:hi], 1):
        what = f"block {s.node} " if granularity == "block" else ""
        for n in groups[s.node]:
            keep[n] = (f"{what}rank {rank}/{len(ranked)}: alone it costs {s.score:.2e} relative logit MSE, "
                       f"{100 - s.agreement:.3f}% pixels; {100 * share[s.node]:.1f}% of the MACs")
    return result(keep, agreement_at(hi), ranked)
