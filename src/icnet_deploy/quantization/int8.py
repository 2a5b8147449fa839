"""The INT8 pipeline: calibrate → keep layers in fp32 (fixed rule, explicit list or search) → Q/DQ →
GPTQ weight rounding → bias correction. One entry, ``quantize_int8``, taking a frozen ``Int8Options``.

The fixed rule with GPTQ is the default: it passes ``check``'s INT8 gate at the speed of the
all-int8 graph but for the image-reading convs and the classifier. The search (``target_agreement``)
and nearest rounding with bias correction are opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, IcnetDeployError
from ..machine import cpu_identity
from ..metrics import DEFAULT_DELTA
from ..onnx_graph import graph_sha256
from ..progress import StageProgress, no_progress
from .bias import BIAS_CORRECTION_IMAGES, correct_biases
from .calibration import CALIB_METHODS, DEFAULT_PERCENTILE, DEFAULT_TAIL_CAP, CalibrationCache, ImageBatches, calibrate
from .qdq import TARGETS, default_fp32_nodes, prepare_for_quantization, quantize_qdq, reduce_range_for
from .rounding import WEIGHT_ROUNDING_IMAGES, apply_rounding, round_weights
from .search import sensitivity_search

__all__ = ["DEFAULT_TARGET_AGREEMENT", "Int8Options", "RANK_IMAGES", "SEARCH_IMAGES", "WEIGHT_ROUNDINGS", "quantize_int8"]

# percent, agreement within δ logit (metrics.DEFAULT_DELTA) on calibration images: what the
# opt-in sensitivity search aims for. check's INT8 gate asks 99.5 pooled and 99.0 on the worst
# held-out image; the search judges on (generated) calibration images, easier than photographs,
# so it aims higher to leave a margin.
DEFAULT_TARGET_AGREEMENT = 99.95
SEARCH_IMAGES = 8  # calibration images the search judges on
RANK_IMAGES = 2  # of those, the ones each block's sensitivity is measured on (one run per block)
WEIGHT_ROUNDINGS = ("gptq", "nearest")


@dataclass(frozen=True)
class Int8Options:
    """How an INT8 engine is made (see ``build.build_engine`` for each field's meaning)."""

    target: str = "cpu"  # "cpu": uint8 activations (ORT CPU); "tensorrt": int8, zero point 0
    calib: str | Path | None = None  # image folder; None: the shipped calib/
    calib_method: str = "percentile"
    calib_cache: str | Path | None = None  # reused when it exists, else written there
    calib_limit: int | None = None
    percentile: float | None = None
    tail_cap: float | None = None  # 0: no cap
    target_agreement: float | None = None  # None: the fixed rule; a percent: the search
    fp32_layers: tuple[str, ...] | None = None  # explicit node names kept fp32
    weight_rounding: str = "gptq"
    bias_correction: bool | None = None  # None: only with nearest rounding
    search_images: int = SEARCH_IMAGES
    threads: int | None = None

    def checked(self) -> "Int8Options":
        """These options, validated, with the defaults that depend on others filled in."""
        if self.target not in TARGETS:
            raise IcnetDeployError(f"unknown target {self.target!r}; use one of {', '.join(TARGETS)}")
        if self.calib_method not in CALIB_METHODS:
            raise IcnetDeployError(f"unknown calibration method {self.calib_method!r}; use one of {', '.join(CALIB_METHODS)}")
        agreement = self.target_agreement
        if agreement is not None and 0 < agreement <= 1:
            agreement = 100.0 * agreement  # a fraction: 0.995 = 99.5 %
        if agreement is not None and not 0 < agreement <= 100:
            raise IcnetDeployError(f"target agreement is a percentage in (0, 100], got {agreement}")
        if self.weight_rounding not in WEIGHT_ROUNDINGS:
            raise IcnetDeployError(f"unknown weight rounding {self.weight_rounding!r}; use one of {', '.join(WEIGHT_ROUNDINGS)}")
        if self.calib_limit is not None and self.calib_limit < 1:
            raise IcnetDeployError(f"calib_limit must be at least 1, got {self.calib_limit}")
        bias = self.weight_rounding == "nearest" if self.bias_correction is None else self.bias_correction
        layers = tuple(self.fp32_layers) if self.fp32_layers is not None else None
        return replace(self, target_agreement=agreement, bias_correction=bias, fp32_layers=layers)

    def needs_images(self) -> bool:
        """Whether the build reads calibration images (a reused cache alone may be enough)."""
        reuse = self.calib_cache is not None and Path(self.calib_cache).is_file()
        return (not reuse or self.calib is not None or bool(self.bias_correction) or self.weight_rounding != "nearest"
                or (self.target_agreement is not None and self.fp32_layers is None))


def require_nodes(names: Any, proto: Any, source: Any) -> None:
    """Refuse a layer name that is not a node of ``proto`` (a typo would keep nothing)."""
    present = {n.name for n in proto.graph.node}
    unknown = [n for n in names if n not in present]
    if unknown:
        raise IcnetDeployError(f"fp32 layer {unknown[0]!r} is not a node of {source}")


def image_loader(options: Int8Options, *, height: int, width: int, mean: Any, std: Any) -> ImageBatches | None:
    """The calibration images, opened (and checked) before any slow work; None when a cache alone is enough."""
    if not options.needs_images():
        return None
    return ImageBatches.from_folder(options.calib, height=height, width=width, mean=mean, std=std,
                                    limit=options.calib_limit)


def quantize_int8(graph32: Any, export_proto: Any, loader: ImageBatches | None, options: Int8Options, *, source: Path,
                  output: Path, height: int, width: int, workdir: Path,
                  progress: StageProgress | None = None) -> tuple[Any, dict]:
    """(QDQ engine graph, manifest details) from ``graph32``, the fp32 graph (exactly rewritten) of the
    export ``export_proto`` read from ``source`` (its graph hash keys the calibration cache). ``output``
    places the default cache (``OUTPUT.calib.json``); ``workdir`` holds the pre-processed graph."""
    import onnx

    say = progress or no_progress
    say("pre-processing (quant_pre_process)", 0, 1)
    pre = onnx.load(str(prepare_for_quantization(graph32, workdir / "pre.onnx")))
    say("pre-processing (quant_pre_process)", 1, 1)
    cache, cache_path = _calibration(pre, graph_sha256(export_proto), loader, options, output=output, height=height,
                                     width=width, progress=say)
    build_cpu = cpu_identity()
    reduce_range, reduce_range_why = reduce_range_for(options.target, build_cpu["int8_kernel"])
    gptq_images = _first(loader, WEIGHT_ROUNDING_IMAGES) if options.weight_rounding == "gptq" else []
    rounding = None
    search = None
    if options.fp32_layers is not None:
        require_nodes(options.fp32_layers, pre, source)
        keep = {n: "kept fp32 on request" for n in options.fp32_layers}
    elif options.target_agreement is not None:
        if gptq_images:  # once, on the all-int8 graph; every trial and the result reuse it
            _, rounding = round_weights(quantize_qdq(pre, cache, target=options.target, reduce_range=reduce_range), pre,
                                        gptq_images, threads=options.threads, progress=say)
        keep, search = _search(pre, cache, _first(loader, options.search_images), options, rounding, reduce_range, say)
    else:
        keep = default_fp32_nodes(pre)
    say("inserting Q/DQ (onnxruntime QDQQuantizer)", 0, 1)
    engine = quantize_qdq(pre, cache, target=options.target, exclude=keep, reduce_range=reduce_range)
    say("inserting Q/DQ (onnxruntime QDQQuantizer)", 1, 1)
    if options.weight_rounding == "gptq":
        if rounding is not None:
            engine = apply_rounding(engine, rounding)
        else:
            engine, rounding = round_weights(engine, pre, gptq_images, threads=options.threads, progress=say)
    corrected = None
    if options.bias_correction:
        engine, corrected = correct_biases(engine, pre, _first(loader, BIAS_CORRECTION_IMAGES), threads=options.threads,
                                           progress=say)
    cpu_target = options.target == "cpu"
    details = dict(
        quantizer="onnxruntime.quantization.QDQQuantizer (QDQ, per-channel)",
        weights="int8, symmetric, per output channel" + (" (7-bit: reduce_range)" if reduce_range else ""),
        reduce_range={"enabled": reduce_range, "why": reduce_range_why},
        cpu=build_cpu,
        activations="uint8, asymmetric (ORT CPU VNNI)" if cpu_target else "int8, symmetric, zero point 0 (TensorRT)",
        activation_dtype="uint8" if cpu_target else "int8",
        calibration={
            "method": cache.method, "percentile": cache.percentile, "tail_cap": cache.tail_cap,
            "cache": cache_path.name if cache_path else None,
            "cache_sha256": cache.sha256(), "image_set_sha256": cache.image_set_sha256,
            "images": cache.images, "size": cache.input_size, "tensors": len(cache.ranges),
        },
        fp32_layers=keep,
        fp32_rule="explicit" if options.fp32_layers is not None else ("sensitivity search" if search else "fixed rule"),
        sensitivity_search=search,
        target_agreement=options.target_agreement,
        weight_rounding=rounding.to_dict() if rounding else {"method": "nearest"},
        bias_correction=corrected.to_dict() if corrected else None,
    )
    return engine, details


def _first(loader: ImageBatches | None, n: int) -> list:
    """The first ``n`` calibration batches (GPTQ, bias correction and the search each read their own)."""
    return [b for _, b in zip(range(n), loader or [])]


def _search(pre: Any, cache: CalibrationCache, batches: list, options: Int8Options, rounding: Any, reduce_range: bool,
            say: StageProgress) -> tuple[dict[str, str], dict]:
    """The opt-in search: the blocks to keep fp32, and its record for the manifest."""
    finish = (lambda q: apply_rounding(q, rounding)) if rounding is not None else None
    result = sensitivity_search(pre, cache, batches, target_agreement=options.target_agreement, target=options.target,
                                rank_batches=RANK_IMAGES, finish=finish, delta=DEFAULT_DELTA, reduce_range=reduce_range,
                                threads=options.threads, progress=say)
    search = {k: v for k, v in result.to_dict().items() if k != "sensitivities"}
    search["images"] = len(batches)
    search["metric"] = f"agreement within δ={DEFAULT_DELTA:g} logit, mean over the images"
    search["rank_images"] = min(RANK_IMAGES, len(batches))
    search["sensitivities"] = [
        {"node": s.node, "op": s.op_type, "score": s.score, "agreement_pct": round(s.agreement, 4), "mac_share": s.mac_share}
        for s in sorted(result.sensitivities, key=lambda s: -s.score)[:20]
    ]
    return result.fp32_nodes, search


def _calibration(pre: Any, gsha: str, loader: ImageBatches | None, options: Int8Options, *, output: Path, height: int,
                 width: int, progress: StageProgress) -> tuple[CalibrationCache, Path]:
    """(calibration cache, where it is): an existing ``calib_cache`` is reused (after checks),
    otherwise ``loader``'s images are calibrated and the cache written."""
    percentile, tail_cap, cache_path = options.percentile, options.tail_cap, options.calib_cache
    pct = DEFAULT_PERCENTILE if percentile is None else percentile
    cap = DEFAULT_TAIL_CAP if tail_cap is None else (tail_cap or None)  # a tail cap of 0: no cap (None)
    if cache_path is not None and Path(cache_path).is_file():
        cache = CalibrationCache.load(cache_path, graph_sha256=gsha, method=options.calib_method, model=pre)
        if list(cache.input_size) != [height, width]:
            raise ArtifactError(f"{cache_path}: calibration cache was made at {cache.input_size[0]}×{cache.input_size[1]}, "
                                f"this model takes {height}×{width}")
        if options.calib is not None and loader.image_set_sha256() != cache.image_set_sha256:
            raise ArtifactError(f"{cache_path}: calibration cache was made from another image set than the --calib "
                                "folder; delete the cache or leave out --calib to reuse it")
        # an explicit --percentile / --tail-cap must match the cache (both only shape percentile ranges)
        for flag, given, want, have in (("--percentile", percentile, pct, cache.percentile),
                                        ("--tail-cap", tail_cap, cap, cache.tail_cap)):
            if cache.method == "percentile" and given is not None and want != have:
                raise ArtifactError(f"{cache_path}: calibration cache was made with {flag} {have or 0:g}, this build "
                                    f"asks for {want or 0:g}; delete the cache or leave out {flag} to reuse it")
        return cache, Path(cache_path)
    cache = calibrate(pre, loader, options.calib_method, percentile=pct, tail_cap=cap,
                      image_set_sha256=loader.image_set_sha256(), source_graph_sha256=gsha, progress=progress)
    where = Path(cache_path) if cache_path is not None else output.with_name(output.name + ".calib.json")
    cache.save(where)
    return cache, where
