"""``build_engine``: an fp32 ONNX export → an FP16 or calibrated INT8 engine, with its manifest.

backend × precision:

================  ===========================================  ============================================
                  ``onnxruntime`` (default)                      ``tensorrt``
================  ===========================================  ============================================
``fp16``          fp16 ONNX with fp32 islands (ORT CPU runs it   the same fp16 ONNX, parsed into a strongly
                  for accuracy only — it is *not* faster on     typed network → serialised engine
                  CPU; ORT CUDA / TensorRT EP run it for speed)
``int8``          QDQ ONNX; ``target="cpu"``: uint8             the QDQ ONNX (``target="tensorrt"``: int8
                  activations (ORT's VNNI kernels)              activations, zero point 0) → engine
================  ===========================================  ============================================

Every engine gets a manifest (``X.json``; ONNX engines also embed it) with the precision, the
calibration (method, cache sha256, image-set sha256), the weight rounding (GPTQ or nearest), the
layers kept in fp32 and why, the target, and the parity measured at build time against the fp32
graph in ONNX Runtime on held-out images:
generated scenes (seeds ``data.samples.HELDOUT_SEED``…, disjoint from calibration's) with their labels
(so the mIoU drop is known too) and the shipped real photographs. Parity is recorded, not enforced:
``icnet-deploy check`` is the gate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, IcnetDeployError
from .fileio import atomic_path, check_file_target, refuse_overwriting
from .machine import library_versions
from .manifest import Manifest, embed_manifest, manifest_path, portable_path, read_manifest, write_manifest
from .progress import StageProgress, no_progress
from .quantization import Int8Options

__all__ = ["BACKENDS", "PRECISIONS", "BuildOptions", "build_engine", "held_out_parity"]

PRECISIONS = ("fp16", "int8")
BACKENDS = ("onnxruntime", "tensorrt")
DEFAULT_SIZE = (1024, 2048)  # calibration/parity size for dynamic exports
PARITY_SCENES = 3


@dataclass(frozen=True)
class BuildOptions:
    """What ``build_engine`` makes: precision × backend, the INT8 recipe, parity and TensorRT settings."""

    precision: str = "int8"
    backend: str = "onnxruntime"
    target: str | None = None  # int8: "cpu" (onnxruntime default) or "tensorrt" (tensorrt default)
    # the INT8 recipe: Int8Options' fields, with its defaults
    calib: str | Path | None = Int8Options.calib
    calib_method: str = Int8Options.calib_method
    calib_cache: str | Path | None = Int8Options.calib_cache
    calib_limit: int | None = Int8Options.calib_limit
    percentile: float | None = Int8Options.percentile
    tail_cap: float | None = Int8Options.tail_cap
    target_agreement: float | None = Int8Options.target_agreement
    fp32_layers: tuple[str, ...] | None = Int8Options.fp32_layers
    weight_rounding: str = Int8Options.weight_rounding
    bias_correction: bool | None = Int8Options.bias_correction
    search_images: int = Int8Options.search_images
    parity_scenes: int = PARITY_SCENES
    size: tuple[int, int] | None = None
    workspace_mib: int = 4096
    timing_cache: str | Path | None = None
    threads: int | None = None

    def int8(self) -> Int8Options:
        """The INT8 recipe these options ask for, validated."""
        names = {f.name for f in fields(Int8Options)}
        target = self.target or ("tensorrt" if self.backend == "tensorrt" else "cpu")
        values = {k: getattr(self, k) for k in names if k != "target"}
        return Int8Options(target=target, **values).checked()


# --------------------------------------------------------------------------------------------
# parity on held-out images
# --------------------------------------------------------------------------------------------
def held_out_parity(reference: Any, candidate: Any, *, precision: str, mean: Sequence[float], std: Sequence[float],
                    height: int, width: int, scenes: int = PARITY_SCENES, threads: int | None = None,
                    progress: StageProgress | None = None) -> dict[str, Any]:
    """``candidate``'s parity with ``reference`` (ONNX paths, bytes or protos; logits graphs, both
    in ONNX Runtime CPU) on held-out generated scenes (with labels) and the real photos, judged by
    ``check``'s gate for ``precision`` (``compare.gate``): per set raw and within-δ agreement
    (pooled and worst image), near ties, max/mean |Δlogit|, mIoU and class IoU drops; the
    verdict in ``passed``."""
    from .compare import SetStats, default_thresholds, gate, gate_passed
    from .data.samples import held_out
    from .data.transforms import preprocess
    from .ort_session import create_session

    say = progress or no_progress

    def session(model: Any) -> Any:
        data = model if isinstance(model, (str, Path, bytes)) else model.SerializeToString()
        return create_session(data, threads=threads)

    thresholds = default_thresholds(precision)
    ref, cand = session(reference), session(candidate)
    name_in, cand_in = ref.get_inputs()[0].name, cand.get_inputs()[0]
    images = held_out(height, width, scenes)
    stats: dict[str, SetStats] = {}
    for i, (name, set_name, image, labels) in enumerate(images):
        say("parity on held-out images", i, len(images))
        x = preprocess(image, mean, std)
        a = ref.run(None, {name_in: x})[0][0].astype(np.float32)
        b = cand.run(None, {cand_in.name: x.astype(np.float16) if cand_in.type == "tensor(float16)" else x})[0][0]
        st = stats.setdefault(set_name, SetStats(set_name, a.shape[0], thresholds.delta))
        st.add(name, b.astype(np.float32), a, "logits", (height, width), labels)
    say("parity on held-out images", len(images), len(images))
    sets = [{k: v for k, v in st.result().items() if k != "per_class"} for st in stats.values()]
    checks = gate(sets, thresholds)
    return {"reference": "fp32 ONNX in ONNX Runtime (CPU)", "size": [height, width],
            "max_abs_logit_error": max((s.get("max_abs_logit_error", 0.0) for s in sets), default=0.0),
            "thresholds": asdict(thresholds), "sets": sets, "checks": checks, "passed": gate_passed(checks)}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _write_onnx(output: Path, proto: Any, manifest: Manifest) -> None:
    """ONNX file (manifest embedded) and sidecar; neither is left behind if either fails."""
    embed_manifest(proto, manifest)
    with atomic_path(output) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    try:
        write_manifest(output, manifest)
    except BaseException:
        output.unlink(missing_ok=True)
        manifest_path(output).unlink(missing_ok=True)
        raise


def _source(model: str | Path, backend: str) -> tuple[Path, Manifest, Any]:
    """The fp32 export to build from, its manifest and its logits graph (an export that ends in the
    UpsampleArgmax plugin gives the graph with the final Resize back: ``plugin_graph``)."""
    import onnx

    path = Path(model)
    if not path.is_file():
        raise ArtifactError(f"{path}: ONNX model not found")
    manifest = read_manifest(path)
    if manifest.format != "onnx":
        raise ArtifactError(f"{path}: is a {manifest.format} artifact; build-engine starts from an fp32 ONNX export")
    if manifest.precision != "fp32":
        raise ArtifactError(f"{path}: is already {manifest.precision}; build-engine starts from the fp32 export")
    batch = manifest.input_shape[0] if manifest.input_shape else None
    if isinstance(batch, int) and batch > 1:
        raise ArtifactError(f"{path}: is a static batch-{batch} export; build engines from a batch-1 or dynamic one "
                            "(icnet-deploy export --batch 1, or --dynamic): calibration and parity feed single images")
    plugin = manifest.details.get("plugin")
    if plugin and backend != "tensorrt":
        from .backends.onnxruntime import refuse_plugin_graph

        refuse_plugin_graph(path, manifest)
    if manifest.output_kind != "logits" and not plugin:
        raise ArtifactError(f"{path}: outputs {manifest.output_kind}; build engines from a logits export "
                            "(ArgMax has no gradient of error to calibrate or compare against)")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if plugin:
        from .plugin_graph import without_upsample_argmax

        proto = without_upsample_argmax(proto)
    return path, manifest, proto


def _engine_manifest(src: Manifest, src_path: Path, *, fmt: str, precision: str, target: str, details: dict,
                     versions: dict, output: Path) -> Manifest:
    from .hashing import sha256_file

    return replace(
        src, format=fmt, precision=precision, target=target, parent_sha256=src.sha256 or sha256_file(src_path),
        sha256=None, created="", versions=versions,
        details={"parent": portable_path(src_path, output), "opset": src.details.get("opset"), **details},
    )


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def build_engine(model: str | Path, output: str | Path, options: BuildOptions | None = None, *,
                 progress: StageProgress | None = None, **option_fields: Any) -> Manifest:
    """Build an FP16 or INT8 engine from the fp32 ONNX export ``model``; returns its manifest.

    ``options`` (a ``BuildOptions``; keyword fields override it, so ``build_engine(m, o, precision="fp16")``
    works too). ``precision``: ``"fp16"`` or ``"int8"``. ``backend``: ``"onnxruntime"`` (writes an ONNX
    engine) or ``"tensorrt"`` (a serialised engine; needs ``tensorrt`` and a GPU). ``target`` (int8):
    ``"cpu"`` (uint8 activations, ORT CPU) or ``"tensorrt"`` (int8 activations with zero point 0);
    default: ``cpu`` for onnxruntime, ``tensorrt`` for tensorrt.

    INT8 calibration: images from ``calib`` (default: the shipped ``calib/``; the first
    ``calib_limit``), ``calib_method`` ``percentile`` | ``entropy`` | ``minmax``; percentile
    ranges are capped at ``tail_cap`` × the 99th percentile (default ``DEFAULT_TAIL_CAP``; 0 turns the
    cap off). ``calib_cache``: reused when the file exists (refused if made for another model, method
    or image set), else written there; default: ``OUTPUT.calib.json`` beside the engine (always rewritten).

    FP16 keeps the ``FP16_KEEP_OPS`` types in fp32, plus ``fp32_layers`` if given, else the nodes of
    ``FP16_KEEP_BLOCKS``.

    INT8 layers kept in fp32: ``fp32_layers`` (node names) if given; else by default (``target_agreement``
    None) the fixed rule (``default_fp32_nodes``: the convs that read the image, the classifier and
    what follows it); else the sensitivity search keeps whole blocks, cheapest per unit of
    sensitivity first, until the agreement within δ logit with fp32 reaches ``target_agreement``
    (percent, or a fraction ≤ 1: 0.998 = 99.8) on ``search_images`` calibration images. The search
    costs one graph build and run per block (28 for ICNet, ~100 s at 1024×2048 on 2 CPU cores).
    ``weight_rounding``: ``"gptq"`` (default; GPTQ on the first calibration images) or ``"nearest"``.
    ``bias_correction``: remove the mean shift each quantized conv adds (default: only with nearest
    rounding — GPTQ already fits each conv's bias with its weights).

    ``size``: calibration and parity size for a dynamic export (default 1024×2048).
    """
    from . import quantization as Q

    opts = replace(options or BuildOptions(), **option_fields)
    say = progress or no_progress
    started = time.perf_counter()
    if opts.precision not in PRECISIONS:
        raise IcnetDeployError(f"precision must be one of {', '.join(PRECISIONS)}, got {opts.precision!r}")
    if opts.backend not in BACKENDS:
        raise IcnetDeployError(f"unknown backend {opts.backend!r}; use one of {', '.join(BACKENDS)}")
    int8 = opts.int8()
    if opts.backend == "tensorrt" and opts.precision == "int8" and int8.target != "tensorrt":
        raise IcnetDeployError("TensorRT needs symmetric int8 activations: use target 'tensorrt' (the default) with backend tensorrt")
    output = Path(output)
    check_file_target(output, "icnet_int8.onnx")
    refuse_overwriting([output, manifest_path(output)], [model, manifest_path(model), opts.calib_cache])
    if opts.backend == "tensorrt":
        from .backends import tensorrt as trt_backend

        trt_backend.require()  # fail before any work when TensorRT or the GPU is missing

    src_path, src, proto32 = _source(model, opts.backend)
    height, width = src.input_hw or tuple(opts.size or DEFAULT_SIZE)
    details: dict[str, Any] = {"backend": opts.backend}
    versions = library_versions("onnx", "onnxruntime", "numpy")
    loader = None
    if opts.precision == "int8":  # find bad calibration folders before any slow work
        loader = Q.image_loader(int8, height=height, width=width, mean=src.mean, std=src.std)

    # an exact rewrite (see quantization.commute_classifier_resize); parity is still measured
    # against the untouched export
    graph32, moved = Q.commute_classifier_resize(proto32)
    details["graph_rewrites"] = [f"classifier before its Resize (exact): {n}" for n in moved]

    with tempfile.TemporaryDirectory(prefix="icnet_build_") as tmpdir:
        if opts.precision == "fp16":
            engine_proto = _fp16(graph32, opts.fp32_layers, src_path, details, say)
        else:
            engine_proto, int8_details = Q.quantize_int8(graph32, proto32, loader, int8, source=src_path, output=output,
                                                         height=height, width=width, workdir=Path(tmpdir), progress=say)
            details.update(int8_details)
        details["parity"] = held_out_parity(proto32, engine_proto, precision=opts.precision, mean=src.mean, std=src.std,
                                            height=height, width=width, scenes=opts.parity_scenes, threads=opts.threads,
                                            progress=say)
        if opts.backend == "onnxruntime":
            details["build_seconds"] = round(time.perf_counter() - started, 1)
            # an fp16 graph has no CPU/TensorRT flavour: ORT CPU checks it, ORT CUDA/TensorRT run it fast
            manifest = _engine_manifest(src, src_path, fmt="onnx", precision=opts.precision,
                                        target=int8.target if opts.precision == "int8" else "any", details=details,
                                        versions=versions, output=output)
            _write_onnx(output, engine_proto, manifest)
            return manifest
        return _tensorrt_engine(engine_proto, src, src_path, output, opts, details, versions, started,
                                Path(tmpdir), height, width, say)


def _fp16(graph32: Any, fp32_layers: Sequence[str] | None, src_path: Path, details: dict, say: StageProgress) -> Any:
    """The fp16 graph with its fp32 islands; its record goes into ``details``."""
    from . import quantization as Q

    say("converting to fp16", 0, 1)
    keep_nodes = list(fp32_layers) if fp32_layers is not None else Q.default_fp16_fp32_nodes(graph32)
    Q.require_nodes(keep_nodes, graph32, src_path)
    engine_proto = Q.convert_fp16(graph32, keep_nodes=keep_nodes)
    kept = {n.name: "fp32 island: Resize/MatMul (resampling, pyramid pooling reductions)"
            for n in engine_proto.graph.node if n.op_type in Q.FP16_KEEP_OPS}
    why = "kept fp32 on request" if fp32_layers is not None else \
        f"fp32 block ({', '.join(Q.FP16_KEEP_BLOCKS)}: the first layers; photo parity)"
    kept.update({n: why for n in keep_nodes})
    details.update(
        converter="onnxruntime.transformers.float16.convert_float_to_float16 (keep_io_types)",
        fp32_ops=list(Q.FP16_KEEP_OPS),
        fp32_layers=kept,
        io_dtype="float32",
        note="ONNX Runtime CPU runs fp16 graphs for accuracy checks only (no fp16 kernels: not faster on CPU)",
    )
    say("converting to fp16", 1, 1)
    return engine_proto


def _tensorrt_engine(engine_proto: Any, src: Manifest, src_path: Path, output: Path, opts: BuildOptions, details: dict,
                     versions: dict, started: float, tmp: Path, height: int, width: int, say: StageProgress) -> Manifest:
    """Compile the precision-carrying ONNX graph with TensorRT and write the engine with its manifest."""
    from .backends import tensorrt as trt_backend
    from .onnx_graph import final_resize_source

    plugin = bool(src.details.get("plugin"))
    onnx_path = tmp / "engine_input.onnx"
    if plugin:  # the export's ending again: labels from the UpsampleArgmax plugin
        from .plugin_graph import with_upsample_argmax

        onnx_path.write_bytes(with_upsample_argmax(engine_proto).SerializeToString())
    else:
        onnx_path.write_bytes(engine_proto.SerializeToString())
    say("building the TensorRT engine", 0, 1)  # one opaque step: TensorRT reports no progress
    info = trt_backend.build_serialized_engine(
        onnx_path, dynamic=src.dynamic, shape=(src.input_shape, (height, width)), workspace_mib=opts.workspace_mib,
        timing_cache=Path(opts.timing_cache) if opts.timing_cache else output.with_name("tensorrt.timing.cache"),
        coarse_output=None if plugin else final_resize_source(engine_proto), plugin=plugin,
    )
    details.update(info.details)
    details["build_seconds"] = round(time.perf_counter() - started, 1)
    versions.update(info.versions)
    manifest = _engine_manifest(src, src_path, fmt="tensorrt", precision=opts.precision, target="tensorrt",
                                details=details, versions=versions, output=output)
    with atomic_path(output) as out_tmp:
        out_tmp.write_bytes(info.engine)
    try:
        write_manifest(output, manifest)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return manifest
