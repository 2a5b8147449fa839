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
generated scenes (seeds ``check.HELDOUT_SEED``…, disjoint from calibration's) with their labels
(so the mIoU drop is known too) and the shipped real photographs. Parity is recorded, not enforced:
``icnet-deploy check`` is the gate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bias_correction import BIAS_CORRECTION_IMAGES, correct_biases
from .errors import ArtifactError, IcnetDeployError
from .fileio import atomic_path, refuse_overwriting
from .machine import cpu_identity
from .metrics import DEFAULT_DELTA
from .manifest import Manifest, embed_manifest, manifest_path, read_manifest, write_manifest
from .machine import library_versions
from .range_learning import RANGE_LEARNING_IMAGES, RANGE_LEARNING_ITERATIONS, Unreplicable, learn_ranges
from .weight_rounding import WEIGHT_ROUNDING_IMAGES, apply_rounding, round_weights

__all__ = ["BACKENDS", "DEFAULT_TARGET_AGREEMENT", "PRECISIONS", "WEIGHT_ROUNDINGS", "build_engine", "held_out_parity"]

PRECISIONS = ("fp16", "int8")
BACKENDS = ("onnxruntime", "tensorrt")
# percent, agreement within δ logit (metrics.DEFAULT_DELTA) on calibration images: what the
# opt-in sensitivity search aims for. check's INT8 gate asks 99.5 pooled and 99.0 on the worst
# held-out image; the search judges on (generated) calibration images, easier than photographs,
# so it aims higher to leave a margin.
DEFAULT_TARGET_AGREEMENT = 99.95
DEFAULT_SIZE = (1024, 2048)  # calibration/parity size for dynamic exports
PARITY_SCENES = 3
SEARCH_IMAGES = 8  # calibration images the fp32 set is judged on
WEIGHT_ROUNDINGS = ("gptq", "nearest")  # INT8 weight rounding (weight_rounding.py)
RANK_IMAGES = 2  # of those, the ones each layer's sensitivity is measured on (one run per layer)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _noop(_stage: str, _done: int, _total: int) -> None:
    pass


# --------------------------------------------------------------------------------------------
# parity on held-out images
# --------------------------------------------------------------------------------------------
def _held_out(height: int, width: int, scenes: int) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(name, set, uint8 image at height×width, labels or None): generated scenes + real photos."""
    from .assets import real_photos
    from .check import heldout_scenes
    from .data.folders import read_rgb
    from .data.transforms import resize_image, resize_labels

    out = []
    for name, image, labels in heldout_scenes(scenes, height, width) if scenes else []:
        out.append((name, "generated", image, resize_labels(labels, (height, width))))
    for path in real_photos():
        out.append((path.name, "photos", np.ascontiguousarray(resize_image(read_rgb(path), (height, width))), None))
    return out


def held_out_parity(reference: Any, candidate: Any, *, precision: str, mean: Sequence[float], std: Sequence[float],
                    height: int, width: int, scenes: int = PARITY_SCENES, threads: int | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """``candidate``'s parity with ``reference`` (ONNX paths, bytes or protos; logits graphs, both
    in ONNX Runtime CPU) on held-out generated scenes (with labels) and the real photos, judged by
    ``check``'s gate for ``precision`` (``compare.gate``): per set raw and within-δ agreement
    (pooled and worst image), near ties, max/mean |Δlogit|, mIoU and class IoU drops; the
    verdict in ``passed``."""
    from .backends.onnxruntime import create_session
    from .compare import SetStats, default_thresholds, gate, gate_passed
    from .data.transforms import preprocess

    say = progress or _noop

    def session(model: Any) -> Any:
        data = model if isinstance(model, (str, Path, bytes)) else model.SerializeToString()
        return create_session(data, threads=threads)

    thresholds = default_thresholds(precision)
    ref, cand = session(reference), session(candidate)
    name_in, cand_in = ref.get_inputs()[0].name, cand.get_inputs()[0]
    images = _held_out(height, width, scenes)
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
def _require_nodes(names: Sequence[str], proto: Any, src_path: Any) -> None:
    """Refuse an ``fp32_layers`` name that is not a node of ``proto`` (a typo would keep nothing)."""
    present = {n.name for n in proto.graph.node}
    unknown = [n for n in names if n not in present]
    if unknown:
        raise IcnetDeployError(f"fp32 layer {unknown[0]!r} is not a node of {src_path}")


def _check_output(output: Path) -> None:
    if output.is_dir():
        raise IcnetDeployError(f"{output}: is a directory; give a file name like icnet_int8.onnx")
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise IcnetDeployError(f"{output}: cannot write here: {parent} is a file, not a directory")
            break


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
                     versions: dict) -> Manifest:
    from .hashing import sha256_file

    return replace(
        src, format=fmt, precision=precision, target=target, parent_sha256=src.sha256 or sha256_file(src_path),
        sha256=None, created="", versions=versions,
        details={"parent": str(src_path), "opset": src.details.get("opset"), **details},
    )


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def build_engine(
    model: str | Path,
    output: str | Path,
    *,
    precision: str,
    backend: str = "onnxruntime",
    target: str | None = None,
    calib: str | Path | None = None,
    calib_method: str = "percentile",
    calib_cache: str | Path | None = None,
    calib_limit: int | None = None,
    percentile: float | None = None,
    tail_cap: float | None = None,
    target_agreement: float | None = None,
    fp32_layers: Sequence[str] | None = None,
    weight_rounding: str = "gptq",
    bias_correction: bool | None = None,
    range_learning: bool | None = None,
    range_iterations: int = RANGE_LEARNING_ITERATIONS,
    search_images: int = SEARCH_IMAGES,
    parity_scenes: int = PARITY_SCENES,
    size: tuple[int, int] | None = None,
    workspace_mib: int = 4096,
    timing_cache: str | Path | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Build an FP16 or INT8 engine from the fp32 ONNX export ``model``; returns its manifest.

    ``precision``: ``"fp16"`` or ``"int8"``. ``backend``: ``"onnxruntime"`` (writes an ONNX
    engine) or ``"tensorrt"`` (a serialised engine; needs ``tensorrt`` and a GPU). ``target``
    (int8): ``"cpu"`` (uint8 activations, ORT CPU) or ``"tensorrt"`` (int8 activations with zero
    point 0); default: ``cpu`` for onnxruntime, ``tensorrt`` for tensorrt.

    INT8 calibration: images from ``calib`` (default: the shipped ``calib/``; the first
    ``calib_limit``), ``calib_method`` ``percentile`` | ``entropy`` | ``minmax``; percentile
    ranges are capped at ``tail_cap`` × the 99th percentile (default ``quantize.DEFAULT_TAIL_CAP``;
    0 turns the cap off). ``calib_cache``:
    reused when the file exists (refused if made for another model, method or image set), else
    written there; default: ``OUTPUT.calib.json`` beside the engine (always rewritten).

    FP16 keeps the ``quantize.FP16_KEEP_OPS`` types in fp32, plus ``fp32_layers`` if given, else
    the nodes of ``quantize.FP16_KEEP_BLOCKS``.

    INT8 layers kept in fp32: ``fp32_layers`` (node names) if given; else by default (``target_agreement``
    None) the fixed rule (``quantize.default_fp32_nodes``: the convs that read the image, the
    classifier and what follows it); else the sensitivity search keeps whole blocks, cheapest per
    unit of sensitivity first, until the agreement within δ logit with fp32 reaches
    ``target_agreement`` (percent, or a fraction ≤ 1: 0.998 = 99.8) on ``search_images`` calibration
    images (each block's sensitivity measured on the first two of them). The search costs
    one graph build and run per block (28 for ICNet, ~100 s at 1024×2048 on 2 CPU cores).
    ``weight_rounding``: ``"gptq"`` (default; ``weight_rounding.round_weights`` on the first
    ``WEIGHT_ROUNDING_IMAGES`` calibration images: the fixed rule's graph itself, or for the search
    the all-int8 graph once, applied to every trial and to the result) or ``"nearest"``.
    ``bias_correction``: after Q/DQ insertion (and rounding), remove the mean shift each quantized
    conv adds, measured on the first ``BIAS_CORRECTION_IMAGES`` calibration images
    (``bias_correction.correct_biases``; the search measures its candidates without it). Default
    (None): only with nearest rounding — GPTQ already fits each conv's bias with its weights.
    ``range_learning``: last, fit every activation's scale so the engine's logits match fp32 on the
    first ``RANGE_LEARNING_IMAGES`` calibration images (``range_learning.learn_ranges``,
    ``range_iterations`` Adam steps, ~2 s each at 1024×2048 on 2 cores); the search measures its
    candidates without it. Only scales change: the engine's speed does not. Off by default: it
    costs minutes, and the default engine passes the gate without it.

    ``size``: calibration and parity size for a dynamic export (default 1024×2048).
    """
    from . import quantize as Q

    say = progress or _noop
    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise IcnetDeployError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend not in BACKENDS:
        raise IcnetDeployError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    target = target or ("tensorrt" if backend == "tensorrt" else "cpu")
    if target not in Q.TARGETS:
        raise IcnetDeployError(f"unknown target {target!r}; use one of {', '.join(Q.TARGETS)}")
    if backend == "tensorrt" and precision == "int8" and target != "tensorrt":
        raise IcnetDeployError("TensorRT needs symmetric int8 activations: use target 'tensorrt' (the default) with backend tensorrt")
    if calib_method not in Q.CALIB_METHODS:
        raise IcnetDeployError(f"unknown calibration method {calib_method!r}; use one of {', '.join(Q.CALIB_METHODS)}")
    if target_agreement is not None and 0 < target_agreement <= 1:
        target_agreement = 100.0 * target_agreement  # "0.995" as in the examples
    if target_agreement is not None and not 0 < target_agreement <= 100:
        raise IcnetDeployError(f"target agreement is a percentage in (0, 100], got {target_agreement}")
    if weight_rounding not in WEIGHT_ROUNDINGS:
        raise IcnetDeployError(f"unknown weight rounding {weight_rounding!r}; use one of {', '.join(WEIGHT_ROUNDINGS)}")
    if bias_correction is None:
        bias_correction = weight_rounding == "nearest"
    if calib_limit is not None and calib_limit < 1:
        raise IcnetDeployError(f"calib_limit must be at least 1, got {calib_limit}")
    range_learning = bool(range_learning) and precision == "int8"
    if range_iterations < 1:
        raise IcnetDeployError(f"range_iterations must be at least 1, got {range_iterations}")
    output = Path(output)
    _check_output(output)
    refuse_overwriting([output, manifest_path(output)], [model, manifest_path(model), calib_cache])
    if backend == "tensorrt":
        from .backends import tensorrt as trt_backend

        trt_backend.require()  # fail before any work when TensorRT or the GPU is missing

    src_path, src, proto32 = _source(model, backend)
    plugin = bool(src.details.get("plugin"))
    height, width = src.input_hw or tuple(size or DEFAULT_SIZE)
    details: dict[str, Any] = {"backend": backend}
    versions = library_versions("onnx", "onnxruntime", "numpy")

    loader = None
    if precision == "int8":  # find bad calibration folders before any slow work
        reuse = calib_cache is not None and Path(calib_cache).is_file()
        if (not reuse or calib is not None or bias_correction or range_learning or weight_rounding != "nearest"
                or (target_agreement is not None and fp32_layers is None)):
            loader = Q.ImageBatches.from_folder(calib, height=height, width=width, mean=src.mean, std=src.std,
                                                limit=calib_limit)

    # an exact rewrite (see quantize.commute_classifier_resize); parity is still measured
    # against the untouched export
    graph32, moved = Q.commute_classifier_resize(proto32)
    details["graph_rewrites"] = [f"classifier before its Resize (exact): {n}" for n in moved]

    with tempfile.TemporaryDirectory(prefix="icnet_build_") as tmpdir:
        tmp = Path(tmpdir)
        if precision == "fp16":
            say("converting to fp16", 0, 1)
            keep_nodes = list(fp32_layers) if fp32_layers is not None else Q.default_fp16_fp32_nodes(graph32)
            _require_nodes(keep_nodes, graph32, src_path)
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
        else:
            say("pre-processing (quant_pre_process)", 0, 1)
            pre_path = Q.prepare_for_quantization(graph32, tmp / "pre.onnx")
            say("pre-processing (quant_pre_process)", 1, 1)
            import onnx

            pre = onnx.load(str(pre_path))
            gsha = Q.graph_sha256(proto32)
            cache, cache_path = _calibration(
                Q, pre, gsha, loader, output=output, explicit_calib=calib is not None, method=calib_method,
                cache_path=calib_cache, percentile=percentile, tail_cap=tail_cap, height=height, width=width,
                progress=say)
            build_cpu = cpu_identity()
            reduce_range, reduce_range_why = Q.reduce_range_for(target, build_cpu["int8_kernel"])
            rounding = None
            gptq_images = [b for _, b in zip(range(WEIGHT_ROUNDING_IMAGES), loader)] if weight_rounding == "gptq" else []
            if gptq_images and fp32_layers is None and target_agreement is not None:
                # the search: once, on the all-int8 graph; every trial and the result reuse it
                _, rounding = round_weights(Q.quantize_qdq(pre, cache, target=target, reduce_range=reduce_range), pre, gptq_images,
                                            threads=threads, progress=say)
            if fp32_layers is not None:
                _require_nodes(fp32_layers, pre, src_path)
                keep = {n: "kept fp32 on request" for n in fp32_layers}
                search = None
            elif target_agreement is not None:
                batches = [b for _, b in zip(range(search_images), loader)]
                finish = (lambda q: apply_rounding(q, rounding)) if rounding is not None else None
                result = Q.sensitivity_search(pre, cache, batches, target_agreement=target_agreement, target=target,
                                              rank_batches=RANK_IMAGES, finish=finish, delta=DEFAULT_DELTA,
                                              reduce_range=reduce_range,
                                              threads=threads, progress=say)
                keep = result.fp32_nodes
                search = {k: v for k, v in result.to_dict().items() if k != "sensitivities"}
                search["images"] = len(batches)
                search["metric"] = f"agreement within δ={DEFAULT_DELTA:g} logit, mean over the images"
                search["rank_images"] = min(RANK_IMAGES, len(batches))
                search["sensitivities"] = [
                    {"node": s.node, "op": s.op_type, "score": s.score, "agreement_pct": round(s.agreement, 4),
                     "mac_share": s.mac_share}
                    for s in sorted(result.sensitivities, key=lambda s: -s.score)[:20]
                ]
            else:
                keep = Q.default_fp32_nodes(pre)
                search = None
            say("inserting Q/DQ (onnxruntime QDQQuantizer)", 0, 1)
            engine_proto = Q.quantize_qdq(pre, cache, target=target, exclude=keep, reduce_range=reduce_range)
            say("inserting Q/DQ (onnxruntime QDQQuantizer)", 1, 1)
            if weight_rounding == "gptq":
                if rounding is not None:
                    engine_proto = apply_rounding(engine_proto, rounding)
                else:
                    engine_proto, rounding = round_weights(engine_proto, pre, gptq_images, threads=threads, progress=say)
            corrected = None
            if bias_correction:
                images = [b for _, b in zip(range(BIAS_CORRECTION_IMAGES), loader)]
                engine_proto, corrected = correct_biases(engine_proto, pre, images, threads=threads, progress=say)
            ranges: dict | None = None
            if range_learning:
                images = [b for _, b in zip(range(RANGE_LEARNING_IMAGES), loader)]
                try:
                    engine_proto, learned = learn_ranges(engine_proto, pre, images, iterations=range_iterations,
                                                         threads=threads, progress=say)
                    ranges = learned.to_dict()
                except Unreplicable as exc:  # e.g. a dynamic export's computed sizes: calibrated ranges stay
                    ranges = {"skipped": str(exc)}
            details.update(
                quantizer="onnxruntime.quantization.QDQQuantizer (QDQ, per-channel)",
                weights="int8, symmetric, per output channel" + (" (7-bit: reduce_range)" if reduce_range else ""),
                reduce_range={"enabled": reduce_range, "why": reduce_range_why},
                cpu=build_cpu,
                activations="uint8, asymmetric (ORT CPU VNNI)" if target == "cpu" else "int8, symmetric, zero point 0 (TensorRT)",
                activation_dtype="uint8" if target == "cpu" else "int8",
                calibration={
                    "method": cache.method, "percentile": cache.percentile, "tail_cap": cache.tail_cap,
                    "cache": str(cache_path) if cache_path else None,
                    "cache_sha256": cache.sha256(), "image_set_sha256": cache.image_set_sha256,
                    "images": cache.images, "size": cache.input_size, "tensors": len(cache.ranges),
                },
                fp32_layers=keep,
                fp32_rule="explicit" if fp32_layers is not None else ("sensitivity search" if search else "fixed rule"),
                sensitivity_search=search,
                target_agreement=target_agreement,
                weight_rounding=rounding.to_dict() if rounding else {"method": "nearest"},
                bias_correction=corrected.to_dict() if corrected else None,
                range_learning=ranges,
            )
        parity = held_out_parity(proto32, engine_proto, precision=precision, mean=src.mean, std=src.std, height=height, width=width,
                                 scenes=parity_scenes, threads=threads, progress=say)
        details["parity"] = parity

        if backend == "onnxruntime":
            details["build_seconds"] = round(time.perf_counter() - started, 1)
            # an fp16 graph has no CPU/TensorRT flavour: ORT CPU checks it, ORT CUDA/TensorRT run it fast
            manifest = _engine_manifest(src, src_path, fmt="onnx", precision=precision,
                                        target=target if precision == "int8" else "any", details=details, versions=versions)
            _write_onnx(output, engine_proto, manifest)
            return manifest

        from .backends import tensorrt as trt_backend
        from .backends.onnxruntime import final_resize_source

        onnx_path = tmp / "engine_input.onnx"
        if plugin:  # the export's ending again: labels from the UpsampleArgmax plugin
            from .plugin_graph import with_upsample_argmax

            onnx_path.write_bytes(with_upsample_argmax(engine_proto).SerializeToString())
        else:
            onnx_path.write_bytes(engine_proto.SerializeToString())
        say("building the TensorRT engine", 0, 1)  # one opaque step: TensorRT reports no progress
        info = trt_backend.build_serialized_engine(
            onnx_path, dynamic=src.dynamic, shape=(src.input_shape, (height, width)), workspace_mib=workspace_mib,
            timing_cache=Path(timing_cache) if timing_cache else output.with_name("tensorrt.timing.cache"),
            coarse_output=None if plugin else final_resize_source(engine_proto), plugin=plugin,
        )
        details.update(info.details)
        details["build_seconds"] = round(time.perf_counter() - started, 1)
        versions.update(info.versions)
        manifest = _engine_manifest(src, src_path, fmt="tensorrt", precision=precision, target="tensorrt",
                                    details=details, versions=versions)
        with atomic_path(output) as out_tmp:
            out_tmp.write_bytes(info.engine)
        try:
            write_manifest(output, manifest)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        return manifest


def _calibration(Q: Any, pre: Any, gsha: str, loader: Any, *, output: Path, explicit_calib: bool, method: str,
                 cache_path: str | Path | None, percentile: float | None, tail_cap: float | None, height: int,
                 width: int, progress: Progress) -> tuple[Any, Path]:
    """(calibration cache, where it is): an existing ``cache_path`` is reused (after checks),
    otherwise ``loader``'s images are calibrated and the cache written."""
    pct = Q.DEFAULT_PERCENTILE if percentile is None else percentile
    cap = Q.DEFAULT_TAIL_CAP if tail_cap is None else (tail_cap or None)  # --tail-cap 0: no cap (None)
    if cache_path is not None and Path(cache_path).is_file():
        cache = Q.CalibrationCache.load(cache_path, graph_sha256=gsha, method=method, model=pre)
        if list(cache.input_size) != [height, width]:
            raise ArtifactError(f"{cache_path}: calibration cache was made at {cache.input_size[0]}×{cache.input_size[1]}, "
                                f"this model takes {height}×{width}")
        if explicit_calib and loader.image_set_sha256() != cache.image_set_sha256:
            raise ArtifactError(f"{cache_path}: calibration cache was made from another image set than the --calib "
                                "folder; delete the cache or leave out --calib to reuse it")
        # an explicit --percentile / --tail-cap must match the cache (both only shape percentile ranges)
        for flag, given, want, have in (("--percentile", percentile, pct, cache.percentile),
                                        ("--tail-cap", tail_cap, cap, cache.tail_cap)):
            if cache.method == "percentile" and given is not None and want != have:
                raise ArtifactError(f"{cache_path}: calibration cache was made with {flag} {have or 0:g}, this build "
                                    f"asks for {want or 0:g}; delete the cache or leave out {flag} to reuse it")
        return cache, Path(cache_path)
    cache = Q.calibrate(pre, loader, method, percentile=pct, tail_cap=cap, image_set_sha256=loader.image_set_sha256(),
                        source_graph_sha256=gsha, progress=progress)
    where = Path(cache_path) if cache_path is not None else output.with_name(output.name + ".calib.json")
    cache.save(where)
    return cache, where
