"""PyTorch → ONNX: one verified graph with a manifest.

``export()`` turns an ICNet (a checkpoint, the shipped one by default) into an ONNX file that
every later stage (fp16/int8 transforms, ONNX Runtime, TensorRT) starts from:

1. **Trace** with ``torch.onnx.export(..., dynamo=False)`` — the TorchScript exporter — in eval
   mode with constant folding, which folds every BatchNorm into the preceding Conv. Why not
   the (default) dynamo exporter: it needs ``onnxscript`` (one more heavy dependency) and it
   exports this model no better: the TorchScript graph is already plain Conv/Relu/Add/Resize/
   MatMul after simplification. Its deprecation warning is filtered here. Its highest opset
   in torch 2.13 is 20, so the supported opsets are **17..20** (17 is the default: the oldest
   opset with everything we need, read by TensorRT 8.6+ and every current ONNX Runtime).
2. **Simplify** with onnxslim: constant folding of the shape arithmetic (the pyramid
   pooling's averaging matrices become MatMul with constant matrices), dead-node and
   Identity removal. onnxslim rather than onnx-simplifier: it is maintained, installs as pure
   Python (no native build), and does not pin or depend on a particular onnxruntime version
   (onnx-simplifier evaluates constants with onnxruntime and ties the two together).
3. **Check**: strict shape inference, ``onnx.checker.check_model(full_check=True)``, only
   standard-domain ops, no BatchNormalization (folded), no Loop/If/Scan, and for static
   graphs no Gather at all (dynamic graphs keep a few Shape→Gather index look-ups on shape
   vectors, never on feature maps).
4. **Verify** (``verify_onnx``): ONNX Runtime CPU runs the graph next to the eager model on
   generated street scenes and real photographs at the export size (two or more sizes and
   batch 2 for ``dynamic``); max |Δlogit| and pixel agreement must meet the thresholds, or the
   export fails with ``ParityError`` and writes nothing.
5. **Write** atomically: the ONNX file (manifest embedded in its metadata under
   ``icnet_deploy.manifest``) is renamed into place only after verification passed, then the
   JSON sidecar; if the sidecar cannot be written the ONNX file is removed again.

``outputs="labels"`` bakes ArgMax (then Cast to uint8, since ICNet has ≤ 255 classes) into the
graph: N×H×W uint8 instead of N×19×H×W float32 — 19× fewer values, 76× fewer bytes to copy off the device.
With ``plugin=True`` the labels come instead from one custom-domain node, ``icnet_deploy:UpsampleArgmax``
(``plugin_graph``), that replaces the final Resize and the ArgMax: the engine never writes the
19×H×W resized logits. Only TensorRT runs it (its plugin registered by ``build-engine --backend
tensorrt``); the logits graph is verified before its ending is replaced, and the manifest records
the op's name, version and the sha256 of its plugin sources (``details["plugin"]``).

Size rule: the model is exact at any H, W ≥ 64 (every stride-2 step is ceil(n/2) and every
upsampling targets a measured size, see ``model/icnet.py``), and a dynamic graph was checked
to match eager at odd and even sizes alike, so the manifest says ``min 64, multiple_of 1``.

The logit bound: fp32 round-off between two correct implementations grows with the size of
the logits. A trained ICNet's logits stay well inside ±100, where the bound is the plain
``max_logit_error`` (1e-3). Untrained (random) weights give logits in the thousands; there the
bound grows in proportion, ``max_logit_error · peak|logit| / 100`` (1e-5 relative), which is
still orders of magnitude below what a real export bug (wrong resize, wrong folding) causes.
"""

from __future__ import annotations

import collections
import io
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .data.samples import verification_images
from .errors import IcnetDeployError, ModelError, ParityError
from .fileio import atomic_path, check_file_target, refuse_overwriting
from .labels import class_names_and_palette
from .machine import library_versions
from .manifest import ONNX_METADATA_KEY, Manifest, embed_manifest, manifest_path, portable_path, write_manifest
from .model.config import MIN_SIZE

__all__ = [
    "export",
    "verify_onnx",
    "ParityReport",
    "op_histogram",
    "SUPPORTED_OPSETS",
    "INPUT_NAME",
]

SUPPORTED_OPSETS = range(17, 21)  # 17..20: torch 2.13's TorchScript exporter stops at 20
OUTPUT_KINDS = ("logits", "labels")
INPUT_NAME = "image"
LOGIT_SCALE_REF = 100.0  # logits beyond ±this (untrained weights) scale the logit bound
FORBIDDEN_OPS = ("BatchNormalization", "Loop", "If", "Scan")
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------
@dataclass
class ParityReport:
    """ONNX Runtime vs eager PyTorch on the same inputs (what ``export_parity`` records)."""

    images: list[dict]  # per image and size: name, kind, size, max/mean |Δlogit|, agreement % (raw and within δ)
    max_abs_logit_error: float
    mean_abs_logit_error: float
    peak_abs_logit: float  # max |eager logit|: the scale the logit bound adapts to
    agreement_pct: float  # worst single image
    pooled_agreement_pct: float  # all pixels of all images together
    pooled_within_delta_pct: float  # the same, within metrics.DEFAULT_DELTA logit (reported, not gated: fp32)
    min_agreement_pct: float  # thresholds
    max_logit_error: float
    logit_error_bound: float  # the bound actually applied (see the module docstring)
    sizes: list[list[int]]
    batch_sizes: list[int]
    provider: str
    onnxruntime: str
    seconds: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        return (
            f"agreement {self.agreement_pct:.4f}% (min {self.min_agreement_pct}%), max |Δlogit| "
            f"{self.max_abs_logit_error:.3g} (bound {self.logit_error_bound:.3g}) on {len(self.images)} image runs"
        )


def _logits_output(proto) -> str | None:
    """Name of the logits tensor feeding the ArgMax of a labels graph (None for a logits graph)."""
    for node in proto.graph.node:
        if node.op_type == "ArgMax":
            return node.input[0]
    return None


def _with_extra_output(proto, name: str):
    """A copy of ``proto`` that also outputs the intermediate tensor ``name`` (float32)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return copy


def _batches(items: list, size: int) -> list[list]:
    """Groups of ``size``; the last group is padded by repeating its items (static batch)."""
    groups = [items[i:i + size] for i in range(0, len(items), size)]
    if groups and len(groups[-1]) < size:
        last = groups[-1]
        groups[-1] = last + [last[k % len(last)] for k in range(size - len(last))]
    return groups


def verify_onnx(
    onnx_model: Any,
    model: Any,
    *,
    sizes: Sequence[tuple[int, int]],
    batch: int = 1,
    images: int = 4,
    min_agreement: float = 99.99,
    max_logit_error: float = 1e-3,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ParityReport:
    """Run ``onnx_model`` (path, bytes or ModelProto) in ONNX Runtime next to eager ``model``.

    Each of ``sizes`` gets ``images`` inputs (see ``verification_images``), run in batches of
    ``batch``. Labels graphs are checked on their internal logits *and* their labels output.
    Returns the report; ``report.failures`` lists the thresholds missed (empty = passed).
    ``min_agreement`` is a percentage. ``threads`` defaults to torch's thread count.
    """
    import onnx
    import torch

    from .compare import SetStats
    from .data.transforms import preprocess
    from .ort_session import create_session

    start = time.perf_counter()
    if isinstance(onnx_model, (str, Path)):
        proto = onnx.load(str(onnx_model))
    elif isinstance(onnx_model, bytes):
        proto = onnx.load_from_string(onnx_model)
    else:
        proto = onnx_model
    logits_name = _logits_output(proto)
    output_name = proto.graph.output[0].name
    if logits_name is not None:
        proto = _with_extra_output(proto, logits_name)
    session = create_session(proto.SerializeToString(), providers=providers, threads=threads or torch.get_num_threads())
    fetch = [output_name] + ([logits_name] if logits_name else [])
    device = next(model.parameters()).device
    mean, std = model.config.mean, model.config.std

    stats = SetStats("verification", model.config.num_classes)
    peak = 0.0
    for h, w in sizes:
        inputs = verification_images(images, h, w)
        for group in _batches(inputs, batch):
            x = np.concatenate([preprocess(im, mean, std) for _, _, im in group], axis=0)
            if progress:
                progress(f"verifying {', '.join(n for n, _, _ in group)} at {h}×{w}")
            outs = session.run(fetch, {INPUT_NAME: x})
            with torch.inference_mode():
                ref = model(torch.from_numpy(x).to(device)).float().cpu().numpy()
            got_logits = outs[0] if logits_name is None else outs[1]
            if got_logits.shape != ref.shape:
                raise ParityError(f"ONNX logits have shape {got_logits.shape}, eager gives {ref.shape}")
            if logits_name is not None and outs[0].shape != (ref.shape[0], *ref.shape[2:]):
                raise ParityError(f"labels output has shape {outs[0].shape}, expected {(ref.shape[0], *ref.shape[2:])}")
            for k, (name, kind, _) in enumerate(group):
                if logits_name is None:
                    stats.add(name, got_logits[k], ref[k], "logits", (h, w), None)
                else:  # a labels graph: its labels judged, its internal logits measured
                    stats.add(name, outs[0][k], ref[k], "labels", (h, w), None, eng_logits=got_logits[k])
                stats.images[-1]["kind"] = kind
                peak = max(peak, float(np.abs(ref[k]).max()))
    result = stats.result()
    rows, max_err = result["per_image"], result["max_abs_logit_error"]
    bound = max_logit_error * max(1.0, peak / LOGIT_SCALE_REF)
    worst = result["worst_image"]
    report = ParityReport(
        images=rows,
        max_abs_logit_error=max_err,
        mean_abs_logit_error=result["mean_abs_logit_error"],
        peak_abs_logit=peak,
        agreement_pct=worst["agreement_pct"],
        pooled_agreement_pct=result["agreement_pct"],
        pooled_within_delta_pct=result["agreement_within_delta_pct"],
        min_agreement_pct=float(min_agreement),
        max_logit_error=float(max_logit_error),
        logit_error_bound=bound,
        sizes=[[h, w] for h, w in sizes],
        batch_sizes=[batch],
        provider=session.get_providers()[0],
        onnxruntime=_ort_version(),
        seconds=round(time.perf_counter() - start, 2),
    )
    if report.agreement_pct < min_agreement:
        report.failures.append(
            f"pixel agreement {report.agreement_pct:.4f}% < {min_agreement}% ({worst['image']} at {worst['size'][0]}×{worst['size'][1]})"
        )
    if max_err > bound:
        report.failures.append(f"max |Δlogit| {max_err:.3g} > {bound:.3g}")
    return report


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:  # pragma: no cover - create_session already refused
        return "unknown"


# --------------------------------------------------------------------------------------------
# graph building
# --------------------------------------------------------------------------------------------
def op_histogram(onnx_model: Any) -> dict[str, int]:
    """Op type → count for a ModelProto or a path (top-level graph; ours has no subgraphs)."""
    import onnx

    proto = onnx.load(str(onnx_model), load_external_data=False) if isinstance(onnx_model, (str, Path)) else onnx_model
    return dict(sorted(collections.Counter(n.op_type for n in proto.graph.node).items(), key=lambda kv: (-kv[1], kv[0])))


def _labels_head(model: Any, dtype: Any) -> Any:
    """Wrap an ICNet so its graph ends in ArgMax + Cast to ``dtype``."""
    import torch

    class LabelsHead(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).argmax(1).to(dtype)

    return LabelsHead(model).eval()


def _trace(model: Any, *, height: int, width: int, batch: int, dynamic: bool, opset: int, outputs: str,
           labels_dtype: Any) -> Any:
    """torch → ONNX ModelProto (in memory) with the TorchScript exporter."""
    import onnx
    import torch

    net = _labels_head(model, labels_dtype) if outputs == "labels" else model
    device = next(model.parameters()).device
    dummy = torch.zeros(batch, 3, height, width, device=device)
    dynamic_axes = None
    if dynamic:
        out_axes = {0: "batch", 2: "height", 3: "width"} if outputs == "logits" else {0: "batch", 1: "height", 2: "width"}
        dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, outputs: out_axes}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                net, (dummy,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[outputs], dynamic_axes=dynamic_axes, do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL, export_params=True,
            )
        except Exception as exc:  # an exporter failure is not the user's fault, but say what failed
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"torch.onnx.export failed (opset {opset}): {message}") from exc
    return onnx.load_from_string(buffer.getvalue())


def _set_io_shapes(proto: Any, input_dims: list, output_dims: list) -> None:
    """Name the dynamic axes and pin the class axis the Resize left symbolic."""
    for value, dims in ((proto.graph.input[0], input_dims), (proto.graph.output[0], output_dims)):
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d


def _simplify_and_check(proto: Any, *, dynamic: bool, input_dims: list, output_dims: list) -> Any:
    import onnx
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = onnxslim.slim(proto)
    _set_io_shapes(proto, input_dims, output_dims)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"exported graph fails the ONNX checker: {str(exc).splitlines()[0]}") from exc
    ops = op_histogram(proto)
    foreign = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    bad = [op for op in FORBIDDEN_OPS if op in ops] + ([] if dynamic else [op for op in ("Gather",) if op in ops])
    if foreign or bad:
        raise ModelError(f"exported graph has ops the deployment targets should not get: {bad or foreign}")
    return proto


def _with_plugin(proto: Any) -> tuple[Any, dict]:
    """The verified logits graph with its final Resize (+ the labels' ArgMax) as the UpsampleArgmax op,
    checked; and what the manifest records about the op."""
    import onnx

    from .plugin_graph import with_upsample_argmax
    from .plugins import op_record

    labelled = with_upsample_argmax(proto)
    try:
        onnx.checker.check_model(labelled)  # the custom domain's node itself has no schema to check
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"graph with the plugin fails the ONNX checker: {str(exc).splitlines()[0]}") from exc
    record = op_record() | {
        "replaces": "the final Resize of the logits and the labels' ArgMax",
        "runs_on": "TensorRT (build-engine --backend tensorrt registers the plugin); ONNX Runtime has no kernel for it",
        "verified": "the logits graph it ends, before the replacement (export_parity); the op's labels equal those "
                    "of that Resize + ArgMax (plugins/README.md)",
    }
    return labelled, record


def _embed(proto: Any, manifest: Manifest) -> None:
    embed_manifest(proto, manifest)
    proto.doc_string = f"ICNet ({manifest.model_config.get('name')}), exported by icnet-deploy: see metadata {ONNX_METADATA_KEY}"


def _resolve_model(model_or_checkpoint: Any, config: Any) -> Any:
    import torch

    if isinstance(model_or_checkpoint, torch.nn.Module):
        if not hasattr(model_or_checkpoint, "config"):
            raise ModelError("export needs an icnet_deploy ICNet (a module with a .config)")
        return model_or_checkpoint
    from .model.weights import load_model

    return load_model(model_or_checkpoint, config)


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOptions:
    """How an fp32 ONNX export is made and verified (see ``export``)."""

    height: int = 1024
    width: int = 2048
    batch: int = 1
    dynamic: bool = False
    opset: int = 17
    outputs: str = "logits"
    verify: bool = True
    verify_images: int = 4
    verify_sizes: tuple[tuple[int, int], ...] | None = None
    min_agreement: float = 99.99
    max_logit_error: float = 1e-3
    threads: int | None = None
    config: Any = None
    plugin: bool = False


def export(
    model_or_checkpoint: Any = None,
    output: str | Path = "icnet.onnx",
    options: ExportOptions | None = None,
    *,
    progress: Progress | None = None,
    **option_fields: Any,
) -> Manifest:
    """Export ICNet to a verified ONNX file plus its manifest; returns the manifest.

    ``model_or_checkpoint``: an ``ICNet`` module, a checkpoint path, or None for the shipped
    checkpoint (random weights with a warning when the checkout has none). ``height``/``width``/
    ``batch`` fix the input shape, or are the tracing size with ``dynamic=True`` (then batch,
    height and width are all dynamic, verified at ``verify_sizes`` — default: the export size
    and an odd size near ¾ of it — with batch 2). ``outputs="labels"`` ends the graph in ArgMax
    + Cast to uint8; with ``plugin=True`` the graph ends instead in the UpsampleArgmax op
    (``plugin_graph.with_upsample_argmax``: a TensorRT plugin, no resized logits), after the
    logits graph it replaces the ending of was verified; ONNX Runtime cannot run that graph, TensorRT
    can (``build_engine(..., backend="tensorrt")``). ``min_agreement`` is a percentage; see the module docstring for how the
    ``max_logit_error`` bound is applied. Raises ``IcnetDeployError`` for bad arguments or
    files (nothing written) and ``ParityError`` (with ``.report``) when verification fails.
    """
    opts = replace(options or ExportOptions(), **option_fields)
    import torch

    say = progress or (lambda _msg: None)
    output = Path(output)
    if opts.opset not in SUPPORTED_OPSETS:
        raise IcnetDeployError(
            f"opset {opts.opset} is not supported: use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
            "(the range of torch's TorchScript ONNX exporter that this graph is tested with)"
        )
    if opts.outputs not in OUTPUT_KINDS:
        raise IcnetDeployError(f"outputs must be one of {', '.join(OUTPUT_KINDS)}, got {opts.outputs!r}")
    if opts.plugin and opts.outputs != "labels":
        raise IcnetDeployError("the UpsampleArgmax plugin outputs labels: use it with outputs labels (--outputs labels --plugin)")
    if opts.height < MIN_SIZE or opts.width < MIN_SIZE:
        raise IcnetDeployError(f"export size {opts.height}×{opts.width}: height and width must be at least {MIN_SIZE}")
    if opts.batch < 1:
        raise IcnetDeployError(f"batch must be at least 1, got {opts.batch}")
    if opts.verify and opts.verify_images < 1:
        raise IcnetDeployError(f"verify_images must be at least 1, got {opts.verify_images}")
    if not 0.0 <= opts.min_agreement <= 100.0:
        raise IcnetDeployError(f"min_agreement is a percentage (0..100), got {opts.min_agreement}")
    if opts.max_logit_error < 0:
        raise IcnetDeployError(f"max_logit_error must be ≥ 0, got {opts.max_logit_error}")
    size = (opts.height, opts.width)
    if opts.verify_sizes is not None and not opts.dynamic and any(tuple(s) != size for s in opts.verify_sizes):
        raise IcnetDeployError("verify_sizes other than the export size need a dynamic export")
    for h, w in opts.verify_sizes or ():
        if h < MIN_SIZE or w < MIN_SIZE:
            raise IcnetDeployError(f"verification size {h}×{w} is below the minimum {MIN_SIZE}×{MIN_SIZE}")
    check_file_target(output, "model.onnx", manifest_path(output))
    if isinstance(model_or_checkpoint, (str, Path)):
        refuse_overwriting([output, manifest_path(output)], [model_or_checkpoint])

    started = time.perf_counter()
    with atomic_path(output) as tmp:  # creates the temp file now: an unwritable place fails before the work
        say("loading the model")
        model = _resolve_model(model_or_checkpoint, opts.config)
        was_training = model.training
        model.eval()
        try:
            num_classes = model.config.num_classes
            if opts.plugin and num_classes > 255:
                raise IcnetDeployError(f"the UpsampleArgmax plugin writes uint8 labels: at most 255 classes, "
                                       f"this model has {num_classes}")
            labels_dtype = torch.uint8 if num_classes <= 255 else torch.int32
            out_dtype = "float32" if opts.outputs == "logits" else str(labels_dtype).removeprefix("torch.")
            traced = "logits" if opts.plugin else opts.outputs  # the plugin replaces the logits graph's ending after verification
            if opts.dynamic:
                input_dims: list = ["batch", 3, "height", "width"]
            else:
                input_dims = [opts.batch, 3, opts.height, opts.width]
            output_dims = (
                [input_dims[0], num_classes, input_dims[2], input_dims[3]] if traced == "logits"
                else [input_dims[0], input_dims[2], input_dims[3]]
            )

            say(f"tracing at {opts.batch}×3×{opts.height}×{opts.width} "
                f"(opset {opts.opset}{', dynamic' if opts.dynamic else ''})")
            proto = _trace(model, height=opts.height, width=opts.width, batch=opts.batch, dynamic=opts.dynamic,
                           opset=opts.opset, outputs=traced, labels_dtype=labels_dtype)
            say("simplifying (onnxslim) and checking")
            proto = _simplify_and_check(proto, dynamic=opts.dynamic, input_dims=input_dims, output_dims=output_dims)

            parity = None
            if opts.verify:
                if opts.dynamic:
                    sizes = list(opts.verify_sizes) if opts.verify_sizes else [
                        size, (max(MIN_SIZE, opts.height * 3 // 4) | 1, max(MIN_SIZE, opts.width * 3 // 4) | 1)
                    ]
                    run_batch = 2 if opts.verify_images >= 2 else 1
                else:
                    sizes, run_batch = [(opts.height, opts.width)], opts.batch
                report = verify_onnx(
                    proto, model, sizes=sizes, batch=run_batch, images=opts.verify_images,
                    min_agreement=opts.min_agreement, max_logit_error=opts.max_logit_error, threads=opts.threads, progress=say,
                )
                if not report.passed:
                    error = ParityError(f"ONNX export fails verification against eager PyTorch: {'; '.join(report.failures)}")
                    error.report = report  # type: ignore[attr-defined]
                    raise error
                parity = report.to_dict()
            plugin_record = None
            if opts.plugin:
                proto, plugin_record = _with_plugin(proto)
                output_dims = [input_dims[0], input_dims[2], input_dims[3]]
        finally:
            model.train(was_training)

        import onnxslim

        info = getattr(model, "checkpoint_info", None) or {}
        names, palette = class_names_and_palette(num_classes)
        size_rule = {"min": MIN_SIZE, "multiple_of": 1, "dynamic": bool(opts.dynamic)}
        if not opts.dynamic:
            size_rule.update(height=opts.height, width=opts.width)
        manifest = Manifest(
            format="onnx",
            precision="fp32",
            input_name=INPUT_NAME,
            input_shape=list(input_dims),
            input_dtype="float32",
            output_name=opts.outputs,
            output_kind=opts.outputs,
            output_dtype=out_dtype,
            num_classes=num_classes,
            class_names=names,
            palette=palette,
            mean=[float(v) for v in model.config.mean],
            std=[float(v) for v in model.config.std],
            size_rule=size_rule,
            model_config=json.loads(model.config.to_json()),
            checkpoint_sha256=info.get("sha256"),
            checkpoint_path=portable_path(info["path"], output) if info.get("path") else None,
            target="tensorrt" if opts.plugin else "any",
            versions=library_versions("torch", "onnx", "onnxruntime", "onnxslim"),
            details={
                "opset": opts.opset,
                "ir_version": int(proto.ir_version),
                "exporter": EXPORTER,
                "simplifier": f"onnxslim {onnxslim.__version__}",
                "output_shape": list(output_dims),
                "batchnorm_folded": True,
                "op_histogram": op_histogram(proto),
                "weights": "random" if info.get("sha256") is None else "checkpoint",
                "verified": parity is not None,
                "export_parity": parity,
                "export_seconds": round(time.perf_counter() - started, 2),
                **({"plugin": plugin_record} if plugin_record else {}),
            },
        )
        _embed(proto, manifest)
        say(f"writing {output}")
        tmp.write_bytes(proto.SerializeToString())
    try:
        write_manifest(output, manifest)
    except BaseException:
        output.unlink(missing_ok=True)  # never an ONNX file without its manifest (nor a stale one)
        manifest_path(output).unlink(missing_ok=True)
        raise
    return manifest
