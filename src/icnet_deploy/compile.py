"""Compiled PyTorch engines (``build-engine --backend torch``) and picking the fastest engine.

``compile_engine()`` compiles ICNet with ``torch.compile`` for one static shape on this
machine's GPU (or CPU: Inductor's C++ backend), checks it against eager fp32, and writes the
engine — the compiler's cache artefacts — plus a manifest (see
``backends/torch_compiled.py`` for the format and what a second start saves).

``select_engine()`` answers ``--engine auto``: among candidate engines, the fastest one on
this machine that loads here and meets the parity thresholds against eager fp32, with the
reason it won (and why each other candidate lost).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends.torch_compiled import (
    COMPILE_MODES,
    CompiledTorchRunner,
    device_identity,
    loaded_kernel_binaries,
    write_engine_file,
)
from .errors import ArtifactError, BackendUnavailable, IcnetDeployError, ModelError, ParityError
from .fileio import atomic_path, check_file_target, refuse_overwriting
from .labels import class_names_and_palette
from .machine import library_versions
from .manifest import Manifest, manifest_path, portable_path, write_manifest
from .model.config import MIN_SIZE

__all__ = [
    "compile_engine",
    "compile_source",
    "engine_manifest",
    "select_engine",
    "Selection",
    "Candidate",
    "engine_candidates",
    "DEFAULT_ENGINE_NAME",
]

DEFAULT_ENGINE_NAME = "icnet_compiled.torch"

Progress = Callable[[str], None]


def engine_manifest(model: Any, *, precision: str, mode: str, batch: int, height: int, width: int,
                    device: str, output: str | Path) -> Manifest:
    """The manifest of a compiled engine for ``model`` on ``device``.

    ``model``: an ICNet whose ``checkpoint_info`` names its weights (path, sha256).
    """
    info = getattr(model, "checkpoint_info", None) or {}
    names, palette = class_names_and_palette(model.config.num_classes)
    ident = device_identity(device)
    return Manifest(
        format="torch",
        precision=precision,
        input_name="image",
        input_shape=[batch, 3, height, width],
        input_dtype="float32",
        output_name="logits",
        output_kind="logits",
        output_dtype="float32",
        num_classes=model.config.num_classes,
        class_names=names,
        palette=palette,
        mean=[float(v) for v in model.config.mean],
        std=[float(v) for v in model.config.std],
        size_rule={"min": MIN_SIZE, "multiple_of": 1, "dynamic": False, "height": height, "width": width},
        model_config=json.loads(model.config.to_json()),
        checkpoint_sha256=info.get("sha256"),
        checkpoint_path=portable_path(info["path"], output) if info.get("path") else None,
        target=ident["device"],
        versions=library_versions("torch"),
        details={
            "compile_mode": mode,
            "compiler": "torch.compile (inductor), fullgraph, static shape"
                        + ("" if ident["device"] == "cuda" else ", C++ kernels with run-time thread count"),
            **ident,
            "cache_format": "zip: torch.compiler.save_cache_artifacts + Inductor C++ kernels",
        },
    )


def compile_source(path: str | Path) -> tuple[Path, tuple[int, int, int] | None]:
    """What ``build-engine --backend torch`` compiles: (checkpoint, static (N, H, W) or None).

    ``path``: a checkpoint (``.safetensors``/``.pth``/``.pt``), or an fp32 export whose manifest
    names its checkpoint (sha256-checked) and fixes the input shape.
    """
    from .backends.loader import CHECKPOINT_SUFFIXES, reference_checkpoint
    from .manifest import read_manifest

    path = Path(path)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"{path}: checkpoint not found")
        return path, None
    manifest = read_manifest(path)
    checkpoint = reference_checkpoint(manifest, None, path)
    n, _, h, w = manifest.input_shape
    static = all(isinstance(v, int) for v in (n, h, w))
    return checkpoint, ((n, h, w) if static else None)


def _check_args(precision: str, mode: str, batch: int, height: int, width: int, device: str) -> None:
    import torch

    if precision not in ("fp32", "fp16"):
        raise IcnetDeployError(f"the torch backend compiles fp32 or fp16, not {precision!r} (int8 goes through ONNX)")
    if mode not in COMPILE_MODES:
        raise IcnetDeployError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if batch < 1:
        raise IcnetDeployError(f"batch must be at least 1, got {batch}")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise IcnetDeployError(f"engine size {height}×{width}: height and width must be at least {MIN_SIZE}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable("torch backend: --device cuda was asked for but torch sees no GPU")
    elif device != "cpu":
        raise IcnetDeployError(f"device must be cpu or cuda[:N], got {device!r}")
    elif precision == "fp16":
        raise IcnetDeployError(
            "the torch backend compiles fp16 for CUDA only (CPU fp16 convolutions are slow); use fp32 on CPU"
        )


def _parity(runner: Any, reference: Any, batches: list[np.ndarray], min_agreement: float) -> dict[str, Any]:
    """Engine vs eager fp32 on the same batches (``compare.SetStats``): worst-image agreement (raw,
    gated, and within δ logit), max/mean |Δlogit|."""
    from .compare import SetStats

    stats, peak = SetStats("verification", runner.num_classes), 0.0
    for x in batches:
        got, ref = runner.infer(x), reference.infer(x)
        peak = max(peak, float(np.abs(ref).max()))
        for i in range(x.shape[0]):
            stats.add(f"image-{len(stats.images)}", got[i], ref[i], "logits", tuple(x.shape[-2:]), None)
    s = stats.result()
    worst = s["worst_image"]["agreement_pct"]
    return {
        "reference": "eager fp32", "agreement_pct": round(worst, 4), "min_agreement_pct": min_agreement,
        "agreement_within_delta_pct": round(s["worst_image_within_delta"]["agreement_within_delta_pct"], 4),
        "delta_logit": s["delta_logit"], "max_abs_logit_error": s["max_abs_logit_error"],
        "mean_abs_logit_error": s["mean_abs_logit_error"], "peak_abs_logit": peak, "images": s["images"],
        "passed": worst >= min_agreement,
    }


def _verification_batches(count: int, batch: int, height: int, width: int, mean: Sequence[float],
                          std: Sequence[float]) -> list[np.ndarray]:
    from .data.samples import verification_images
    from .data.transforms import preprocess

    xs = [preprocess(im, mean, std) for _, _, im in verification_images(count, height, width)]
    groups = [xs[i:i + batch] for i in range(0, len(xs), batch)]
    groups[-1] = groups[-1] + [groups[-1][k % len(groups[-1])] for k in range(batch - len(groups[-1]))]
    return [np.concatenate(g) for g in groups]


def compile_engine(
    model_or_checkpoint: Any = None,
    output: str | Path = DEFAULT_ENGINE_NAME,
    *,
    precision: str = "fp32",
    mode: str | None = None,
    batch: int = 1,
    height: int = 1024,
    width: int = 2048,
    device: str | None = None,
    threads: int | None = None,
    verify: bool = True,
    verify_images: int = 2,
    inputs: Sequence[np.ndarray] | None = None,
    min_agreement: float | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Compile ICNet for ``batch``×3×``height``×``width`` and write a ``torch`` engine; returns its manifest.

    ``model_or_checkpoint``: a weight file (None: the shipped checkpoint) — the engine loads it
    again at every start, by path, and refuses it if its sha256 changed — or an ICNet module
    (its ``checkpoint_info`` names the file; without one, only ``CompiledTorchRunner(...,
    model=...)`` can load the engine). ``device``: ``cuda`` when torch sees a GPU, else ``cpu``;
    ``mode``: ``reduce-overhead`` (CUDA graphs) on CUDA, ``default`` on CPU. The compiled model
    is checked against eager fp32 on ``verify_images`` generated scenes and photographs (or on
    ``inputs``: float32 batches of the engine's shape): worst-image pixel agreement ≥
    ``min_agreement`` percent (default
    ``check.DEFAULT_THRESHOLDS``: 99.9 for fp16, 99.99 for fp32), else ``ParityError`` (with
    ``.report``) and nothing is written.
    """
    import torch

    from .backends.torch_eager import TorchRunner

    say = progress or (lambda _msg: None)
    output = Path(output)
    if isinstance(model_or_checkpoint, (str, Path)):
        refuse_overwriting([output, manifest_path(output)], [model_or_checkpoint])
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    mode = mode or ("reduce-overhead" if device.startswith("cuda") else "default")
    _check_args(precision, mode, batch, height, width, device)
    if min_agreement is None:
        from .compare import default_thresholds

        min_agreement = default_thresholds(precision).min_agreement
    model = model_or_checkpoint if isinstance(model_or_checkpoint, torch.nn.Module) else None
    checkpoint = None if model is not None else model_or_checkpoint
    if model is not None and not hasattr(model, "config"):
        raise ModelError("compile_engine needs an icnet_deploy ICNet (a module with a .config)")
    if model is None and checkpoint is None:
        from .model.weights import shipped_checkpoint

        checkpoint = shipped_checkpoint()
        if checkpoint is None:
            raise ModelError(
                "a compiled torch engine reloads its weights from a checkpoint file: "
                "pass one (this checkout ships none)"
            )
    check_file_target(output, DEFAULT_ENGINE_NAME, manifest_path(output))

    started = time.perf_counter()
    with atomic_path(output) as tmp:  # an unwritable place fails before the compile
        if model is None:
            from .model.weights import load_model

            say("loading the model")
            model = load_model(checkpoint)
        model.eval()
        manifest = engine_manifest(model, precision=precision, mode=mode, batch=batch, height=height, width=width,
                                   device=device, output=output)
        say(f"compiling ({mode}, {precision}, {batch}×3×{height}×{width} on {manifest.details['device_name']})")
        # the runner converts its model in place (fp16, channels-last): the reference keeps the original
        runner = CompiledTorchRunner(None, manifest=manifest, model=copy.deepcopy(model), threads=threads,
                                     name=f"compiled-{precision}")
        with runner:
            parity = None
            if verify:
                say("checking against eager fp32")
                batches = list(inputs) if inputs is not None else _verification_batches(
                    max(1, verify_images), batch, height, width, model.config.mean, model.config.std)
                with TorchRunner(copy.deepcopy(model), device=device, precision="fp32", threads=threads) as reference:
                    parity = _parity(runner, reference, batches, min_agreement)
                if not parity["passed"]:
                    error = ParityError(
                        f"compiled {precision} engine agrees with eager fp32 on {parity['agreement_pct']:.4f}% of "
                        f"pixels (worst image), below {min_agreement}%"
                    )
                    error.report = parity  # type: ignore[attr-defined]
                    raise error
            startup = dict(runner.startup)
        saved = torch.compiler.save_cache_artifacts() if hasattr(torch.compiler, "save_cache_artifacts") else None
        data = saved[0] if saved else b""
        counts = {k: len(v) for k, v in getattr(saved[1], "artifacts", {}).items()} if saved else {}
        kernels = loaded_kernel_binaries()
        say(f"writing {output}")
        write_engine_file(tmp, data, kernels)
        manifest.details |= {
            "cache_bytes": len(data),
            "cache_artifacts": counts,
            "kernels": len(kernels),
            "cache_dir": startup.get("cache_dir"),
            "build_compile_s": startup.get("compile_s"),
            "build_fx_graph_cache": startup.get("fx_graph_cache"),
            "build_parity": parity,
            "build_seconds": round(time.perf_counter() - started, 2),
        }
    try:
        write_manifest(output, manifest)
    except BaseException:
        output.unlink(missing_ok=True)  # never an engine without its manifest (nor a stale one)
        raise
    return manifest


# --------------------------------------------------------------------------------------------
# --engine auto
# --------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One engine considered by ``select_engine`` and what happened to it."""

    name: str
    spec: str = ""  # what was asked for: a path, "eager" or "eager-fp16"
    precision: str | None = None
    available: bool = False
    latency_ms: float | None = None  # median of the timed runs, per call (``batch`` images)
    batch: int | None = None
    agreement_pct: float | None = None  # worst image, vs eager fp32
    min_agreement_pct: float | None = None
    max_abs_logit_error: float | None = None
    passed: bool = False
    note: str = ""  # why it was skipped or lost ("chosen" for the winner)

    @property
    def ms_per_image(self) -> float | None:
        return None if self.latency_ms is None or not self.batch else self.latency_ms / self.batch


@dataclass
class Selection:
    """The winner of ``select_engine`` and why; ``candidates`` in the order given."""

    chosen: int  # index into candidates
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    size: list[int] = field(default_factory=list)

    @property
    def winner(self) -> Candidate:
        return self.candidates[self.chosen]

    @property
    def spec(self) -> str:
        """What to pass to ``backends.load`` (or ``"eager"``/``"eager-fp16"``) for the winner."""
        return self.winner.spec

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.winner.name, "spec": self.spec, "reason": self.reason, "size": self.size,
                "candidates": [asdict(c) | {"ms_per_image": c.ms_per_image} for c in self.candidates]}


def _notes(results: list[Candidate]) -> str:
    return "; ".join(f"{c.name}: {c.note}" for c in results)


def engine_candidates(folder: str | Path | None = "build", *, device: str = "cpu") -> list[str]:
    """What ``--engine auto`` considers: eager fp32 (and fp16 on CUDA), and every artifact in ``folder``.

    An artifact is a file with a manifest sidecar beside it (``X`` with ``X.json``).
    """
    specs = ["eager"] + (["eager-fp16"] if device.startswith("cuda") else [])
    if folder is not None and Path(folder).is_dir():
        specs += [str(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and manifest_path(p).is_file()]
    return specs


def _open(spec: str, *, device: str, provider: str | None, threads: int | None, checkpoint: Any, like: Any) -> Any:
    from .backends.loader import eager_precision, eager_reference, load

    precision = eager_precision(spec)
    if precision is not None:
        return eager_reference(like.manifest if like is not None else None, checkpoint,
                               getattr(like, "artifact", None) or getattr(like, "path", None),
                               strict=like is not None, device=device, precision=precision, threads=threads, name=spec)
    return load(spec, device=device, provider=provider, threads=threads)


def select_engine(
    candidates: Sequence[str | Path | Any],
    *,
    size: tuple[int, int] | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    reference: Any = None,
    checkpoint: str | Path | None = None,
    min_agreement: dict[str, float] | float | None = None,
    device: str = "cpu",
    provider: str | None = None,
    threads: int | None = None,
    images: int = 2,
    warmup: int = 2,
    runs: int = 5,
    progress: Progress | None = None,
) -> Selection:
    """The fastest candidate engine that runs here and agrees with eager fp32, and why it won.

    ``candidates``: artifact paths, ``"eager"``/``"eager-fp16"``, or inactive Runners (see
    ``engine_candidates``). Each is loaded and activated; one that cannot be (``BackendUnavailable``:
    no GPU, no TensorRT; ``ArtifactError``: built for another device or torch, other weights) is
    skipped with its message, as is one whose static input size is not ``size`` (default: the
    first static engine's size, else 512×1024). Parity: ``images`` verification images at ``size``
    (or ``inputs``, float32 1×3×H×W each) through each engine and through ``reference`` (default:
    eager fp32 on the CPU with the checkpoint the engines' manifests name, sha256-checked); worst-
    image pixel agreement must reach ``min_agreement`` percent (default by precision:
    ``check.DEFAULT_THRESHOLDS``; the int8 mIoU-drop gate needs labels and is left to ``check``).
    Speed: median ms per image over ``runs`` rounds, the candidates interleaved so that a busy
    machine slows them all alike. Raises ``IcnetDeployError`` when no candidate qualifies.
    """
    from .backends.loader import eager_reference
    from .compare import SetStats, default_thresholds, gate

    say = progress or (lambda _msg: None)
    if not candidates:
        raise IcnetDeployError("select_engine: no candidate engines given")

    def thresholds(precision: str | None) -> Any:
        """check's gate for the precision, without labels; an explicit ``min_agreement`` replaces its
        raw agreement bars."""
        given = min_agreement.get(precision) if isinstance(min_agreement, dict) else min_agreement
        raw = None if given is None else float(given)
        return default_thresholds(precision or "fp32", min_agreement=raw, min_agreement_unlabelled=raw)

    results: list[Candidate] = []
    runners: dict[int, Any] = {}
    try:
        # artifacts first: an eager candidate uses the same weights as the first engine that names them
        order = sorted(range(len(candidates)), key=lambda i: str(candidates[i]).startswith("eager"))
        results = [Candidate(name="", spec=str(c) if isinstance(c, (str, Path)) else getattr(c, "name", ""))
                   for c in candidates]
        like = None
        for i in order:
            source, cand = candidates[i], results[i]
            try:
                if isinstance(source, (str, Path)):
                    runner = _open(str(source), device=device, provider=provider, threads=threads,
                                   checkpoint=checkpoint, like=like)
                else:
                    runner = source
                cand.name, cand.precision = runner.name, runner.precision
                say(f"loading {cand.spec or cand.name}")
                runner.activate()
            except (BackendUnavailable, ArtifactError) as exc:
                cand.name = cand.name or cand.spec
                cand.note = f"unavailable: {exc}"
                continue
            cand.available, runners[i] = True, runner
            if like is None and runner.manifest is not None and runner.manifest.checkpoint_sha256:
                like = runner
        if not runners:
            raise IcnetDeployError("no candidate engine can run here: " + _notes(results))

        static = [r for r in runners.values() if r.input_height is not None]
        hw = tuple(size) if size else ((static[0].input_height, static[0].input_width) if static else (512, 1024))
        if inputs is None:
            first = static[0] if static else next(iter(runners.values()))
            mean, std = first.mean or (123.675, 116.28, 103.53), first.std or (58.395, 57.12, 57.375)
            inputs = _verification_batches(max(1, images), 1, hw[0], hw[1], mean, std)
        stack = np.concatenate(list(inputs))
        hw = tuple(stack.shape[2:])
        if reference is None:
            reference = eager_reference(like.manifest if like else None, checkpoint,
                                        getattr(like, "artifact", None) or getattr(like, "path", None), strict=True,
                                        device="cpu", precision="fp32", threads=threads, name="reference")
        say("eager fp32 reference")
        with reference:
            expected = [reference.infer(stack[k:k + 1])[0] for k in range(stack.shape[0])]

        feeds: dict[int, list[np.ndarray]] = {}
        for i, runner in runners.items():
            cand = results[i]
            if runner.input_height is not None and (runner.input_height, runner.input_width) != hw:
                cand.note = (f"takes {runner.input_height}×{runner.input_width} inputs, "
                             f"the candidates are compared at {hw[0]}×{hw[1]}")
                continue
            n = runner.batch_size or 1
            cand.batch = n
            # batches of the engine's size, wrapping around the images
            feeds[i] = [np.concatenate([stack[(s + k) % len(stack)][None] for k in range(n)])
                        for s in range(0, len(stack), n)]
            stats = SetStats("verification", runner.num_classes)
            say(f"parity of {cand.name}")
            for s, x in zip(range(0, len(stack), n), feeds[i]):
                out = runner.infer(x)
                for k in range(min(n, len(stack) - s)):
                    stats.add(f"image-{s + k}", out[k], expected[s + k], runner.output_kind, hw, None)
            record = stats.result()
            cand.agreement_pct = round(record["worst_image"]["agreement_pct"], 4)
            cand.max_abs_logit_error = record.get("max_abs_logit_error", 0.0)
            gate_th = thresholds(cand.precision)
            cand.min_agreement_pct = gate_th.agreement_for(labelled=False)
            failed = [c["message"] for c in gate([record], gate_th) if not c["passed"]]
            cand.passed = not failed
            if failed:
                cand.note = "parity: " + "; ".join(failed)

        timed = [i for i in feeds if results[i].passed]
        samples: dict[int, list[float]] = {i: [] for i in timed}
        say(f"timing {len(timed)} engine(s)")
        for it in range(max(0, warmup) + max(1, runs)):
            shift = it % max(1, len(timed))
            for i in timed[shift:] + timed[:shift]:  # interleaved and rotated: background load hits all alike
                start = time.perf_counter()
                runners[i].infer(feeds[i][0])
                if it >= warmup:
                    samples[i].append((time.perf_counter() - start) * 1e3)
        for i in timed:
            results[i].latency_ms = round(statistics.median(samples[i]), 3)
    finally:
        for runner in runners.values():
            runner.deactivate()

    qualified = [i for i in range(len(results)) if results[i].passed and results[i].latency_ms is not None]
    if not qualified:
        raise IcnetDeployError("no candidate engine meets parity here: " + _notes(results))
    ranked = sorted(qualified, key=lambda i: results[i].ms_per_image)
    best = results[ranked[0]]
    label = best.name if best.spec in ("", best.name) else f"{best.name} ({best.spec})"
    reason = (f"{label}: fastest of {len(qualified)} engine(s) that run here and meet parity, "
              f"{best.ms_per_image:.2f} ms/image at {hw[0]}×{hw[1]}")
    if len(ranked) > 1:
        second = results[ranked[1]]
        reason += f", {second.ms_per_image / best.ms_per_image:.2f}× faster than {second.name}"
    reason += f"; agreement with eager fp32 {best.agreement_pct:.3f}% ≥ {best.min_agreement_pct}%"
    for i in ranked[1:]:
        results[i].note = f"slower: {results[i].ms_per_image:.2f} ms/image"
    best.note = "chosen"
    return Selection(chosen=ranked[0], reason=reason, candidates=results, size=list(hw))
