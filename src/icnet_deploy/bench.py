"""Latency, throughput and memory of engines, always side by side with the eager baseline.

``bench(["build/icnet_int8.onnx"])`` measures the eager model and each engine **in the same run**:

* **Interleaved, round-robin.** After ``warmup`` calls each, every iteration runs every engine
  once, in an order that rotates each iteration, so background load (a training job, a browser,
  thermal throttling) hits all engines alike instead of whichever happened to run last.
* **Two timings.** ``compute``: ``runner.infer`` on a ready float32 N×3×H×W batch (the engine and
  its host↔device copies). ``end_to_end``: from uint8 H×W×3 images at ``size`` to uint8 labels at
  ``size`` — resize to the engine's input, normalise, infer up to the logits before the model's
  final upsample where the backend can stop there (``Runner.infer_for_labels``), then the exact
  labels of that upsample at ``size`` (``Runner.predict_labels``: the UpsampleArgmax op, on the
  CPU — ``environment["label_path"]`` says whether the C kernel or the numpy reference — or on
  the GPU for CUDA runners with the Triton kernel).
* **Spread, not the best run.** p50/p90/p99, mean, std, min and max in ms; ``cv`` (std/mean) and
  a ``noisy`` flag when it exceeds 10 %; the 1-minute load average before and after the run, and
  the machine (CPU model and ISA flags, threads, versions: ``machine.describe_machine``).
  Throughput is images/s from the *mean* latency (batch · 1000 / mean ms).
* **Memory, each engine in a fresh process.** A process's peak RSS only ever grows, so engines
  measured in one process would hide each other. ``measure_memory`` starts
  ``python -m icnet_deploy.bench --probe ENGINE`` per engine; the probe imports torch and
  onnxruntime, reads its high-water mark (``VmHWM`` in ``/proc/self/status``; ``ru_maxrss`` where
  there is no /proc), loads the engine, runs warm-up and a few calls, and reads it again.
  ``peak_rss_mib`` is the absolute peak; ``engine_rss_mib`` the growth over the post-import
  baseline, i.e. what the engine (weights, workspace, activations, arena) costs. On CUDA the
  probe also reports ``torch.cuda.max_memory_allocated`` (torch-allocated memory: eager, and
  buffers of runners that allocate through torch) and the growth of device memory in use
  (``cudaMemGetInfo``, which also sees ONNX Runtime's and TensorRT's own allocations, and any
  other process's).
* **ONNX Runtime threads do not spin** (``session.intra_op.allow_spinning=0``) in the bench:
  interleaving several sessions in one process, each session's busy-waiting threads took the
  cores from the next one (measured on 2 cores: every ORT engine 10–15% slower interleaved than
  alone; without spinning, interleaved = alone, and alone is as fast as with spinning).
* **Ratios vs eager**: speed-up (eager p50 / engine p50, compute and end-to-end), the same
  ratio taken round by round (``*_speedup_paired``: median and interquartile range of eager ms /
  engine ms within each interleaved round, see ``paired_speedup``), and memory.
* **Ratios vs a baseline engine** (``baseline``, one of the engines benched, e.g. ONNX Runtime
  fp32 when the question is what INT8 buys over it): the same ratios in ``vs_baseline``, from
  the same interleaved rounds, so no second run is needed to compare two engines.

Default size: the first static engine's input size, else 1024×2048. An engine with a static
input runs compute-only at its own size whatever ``size`` says (the table shows it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Runner
from .errors import IcnetDeployError

__all__ = ["bench", "BenchReport", "latency_stats", "measure_memory", "DEFAULT_SIZE", "NOISY_CV"]

DEFAULT_SIZE = (1024, 2048)
NOISY_CV = 0.10
SCENE_SEED = 960_000
PROBE_ITERS = 3

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def latency_stats(ms: Sequence[float], batch: int = 1) -> dict[str, float]:
    """p50/p90/p99, mean, std, min, max (ms), cv and throughput (images/s from the mean) of samples."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        raise IcnetDeployError("no timing samples")
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)), "mean_ms": mean, "std_ms": std,
        "min_ms": float(a.min()), "max_ms": float(a.max()), "cv": std / mean if mean > 0 else 0.0,
        "images_per_s": batch * 1000.0 / mean if mean > 0 else 0.0, "samples": int(a.size),
        "noisy": bool(mean > 0 and std / mean > NOISY_CV),
    }


def paired_speedup(base_ms: Sequence[float], engine_ms: Sequence[float]) -> dict[str, float] | None:
    """Speed-up round by round (base / engine, timed in the same interleaved round): median and
    interquartile range. Load that changes between rounds cancels out of each ratio, so this
    spread says how sure the speed-up is, which the ratio of two p50s cannot."""
    n = min(len(base_ms), len(engine_ms))
    if n == 0:
        return None
    r = np.asarray(base_ms[:n], dtype=np.float64) / np.asarray(engine_ms[:n], dtype=np.float64)
    return {"median": float(np.median(r)), "p25": float(np.percentile(r, 25)), "p75": float(np.percentile(r, 75))}


# --------------------------------------------------------------------------------------------
# memory: one fresh process per engine
# --------------------------------------------------------------------------------------------
def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _probe(spec: str, size: tuple[int, int], batch: int, device: str, provider: str | None, threads: int | None,
           warmup: int, iters: int, checkpoint: str | None, like: str | None = None) -> dict[str, Any]:
    """Run in a fresh process: the peak memory of loading and running one engine."""
    try:  # both imported for the baseline whichever engine runs, so baselines are comparable
        import torch
    except ImportError:  # an ONNX runtime without torch: engines only
        torch = None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    from .backends.loader import eager_precision, eager_reference, load

    cuda = torch is not None and device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.init()
        free_before = torch.cuda.mem_get_info()[0]
        torch.cuda.reset_peak_memory_stats()
    baseline = _peak_rss_mib()
    precision = eager_precision(spec)
    if precision is not None:
        from .manifest import read_manifest

        manifest = read_manifest(like) if like else None  # the same weights/config the timed baseline used
        runner = eager_reference(manifest, checkpoint, like, strict=False, device=device, precision=precision,
                                 threads=threads)
    else:
        runner = load(spec, device=device, provider=provider, threads=threads)
    with runner:
        image = _image(size)
        # the label path first: the peak only grows, so this high-water mark is what a caller
        # that wants labels (``infer``, end-to-end) needs; then the full output's (``runner.infer``)
        for _ in range(warmup + iters):
            _end_to_end(runner, [image] * batch)
        labels_peak = _peak_rss_mib()
        x = _batch_for(runner, image, batch)
        for _ in range(warmup + iters):
            runner.infer(x)
        result = {"baseline_rss_mib": baseline, "peak_rss_mib": _peak_rss_mib(),
                  "labels_peak_rss_mib": labels_peak, "labels_engine_rss_mib": labels_peak - baseline}
        if cuda:
            torch.cuda.synchronize()
            result["torch_device_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            result["device_in_use_delta_mib"] = (free_before - torch.cuda.mem_get_info()[0]) / 2**20
    result["engine_rss_mib"] = result["peak_rss_mib"] - baseline
    return result


def measure_memory(spec: str, *, size: tuple[int, int], batch: int = 1, device: str = "cpu",
                   provider: str | None = None, threads: int | None = None, warmup: int = 1,
                   iters: int = PROBE_ITERS, checkpoint: str | Path | None = None, like: str | Path | None = None,
                   timeout: float = 600) -> dict[str, Any]:
    """Peak host (and device) memory of one engine, measured in a fresh Python process (MiB).

    For ``spec="eager"``, ``checkpoint`` and ``like`` (an artifact) choose the weights as ``bench`` does.
    """
    args = [sys.executable, "-m", "icnet_deploy.bench", "--probe", str(spec), "--size", f"{size[0]}x{size[1]}",
            "--batch", str(batch), "--device", device, "--warmup", str(warmup), "--iters", str(iters)]
    if provider:
        args += ["--provider", provider]
    if threads:
        args += ["--threads", str(threads)]
    if checkpoint:
        args += ["--checkpoint", str(checkpoint)]
    if like:
        args += ["--like", str(like)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"memory probe exited {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def _image(size: tuple[int, int]) -> np.ndarray:
    from .data.synthetic import generate_scene

    return generate_scene(SCENE_SEED, *size)[0]


def _batch_for(runner: Runner, image: np.ndarray, batch: int) -> np.ndarray:

    n = runner.batch_size or batch
    return np.repeat(runner.prepare(image), n, axis=0)


def _end_to_end(runner: Runner, images: list[np.ndarray]) -> None:
    runner.label_images(images)


@dataclass
class BenchReport:
    """Per engine: what it is, compute and end-to-end latency stats, memory, ratios vs eager."""

    engines: list[dict]
    size: list[int]
    batch: int
    iters: int
    warmup: int
    device: str
    environment: dict
    method: dict = field(default_factory=dict)
    baseline: str | None = None  # the name of the engine ``vs_baseline`` compares with, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def engine(self, name: str) -> dict:
        for e in self.engines:
            if e["name"] == name or e["spec"] == name:
                return e
        raise KeyError(name)


def _environment(device: str) -> dict[str, Any]:
    import platform

    from .machine import describe_machine

    from .plugins import label_path

    env = describe_machine(device) | {"cpus": os.cpu_count(), "python": platform.python_version(),
                                      "label_path": label_path()}
    try:
        env["loadavg_before"] = os.getloadavg()[0]
    except OSError:
        pass
    return env


def _default_size(runners: Sequence[Runner]) -> tuple[int, int]:
    for r in runners:
        if r.input_height is not None:
            return int(r.input_height), int(r.input_width)
    return DEFAULT_SIZE


def bench(
    engines: Sequence[str | Path] = (),
    *,
    size: tuple[int, int] | None = None,
    batch: int = 1,
    iters: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    provider: str | None = None,
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    memory: bool = True,
    end_to_end: bool = True,
    baseline: str | Path | None = None,
    eager: bool | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Benchmark ``engines`` next to the eager baseline (measured and listed first, unless ``eager``
    is False; None: when torch is installed, so an ONNX runtime without torch benches its engines alone).

    ``engines``: artifact paths (or ``"eager-fp16"`` on CUDA). ``size``: the H×W of the images
    (default: see the module docstring). ``batch``: images per call (engines with a static batch
    use theirs). ``iters`` timed calls per engine and mode after ``warmup``. ``threads``: CPU
    threads for every engine alike (None: each framework's default). ``checkpoint``: the eager
    baseline's weights (default: the first engine's own checkpoint when found — same config —
    else the shipped one). ``memory``: also measure each engine's peak memory in a fresh process
    (slower: one process start and model load per engine). ``baseline``: one of ``engines`` (or
    ``"eager"``) that every engine is also compared with, in ``vs_baseline``.
    """
    import importlib.util

    from .backends.loader import EAGER, eager_precision, eager_reference, load

    if iters < 1 or warmup < 0 or batch < 1:
        raise IcnetDeployError(f"need iters ≥ 1, warmup ≥ 0, batch ≥ 1 (got {iters}, {warmup}, {batch})")
    if eager is None:
        eager = importlib.util.find_spec("torch") is not None
    specs = [str(e) for e in engines if str(e) != EAGER]
    if not eager and not specs:
        raise IcnetDeployError("nothing to bench: give at least one engine (the eager baseline is off)")
    baseline_index = _baseline_index(baseline, specs, eager)  # before any engine loads: a typo fails fast
    runners: list[Runner] = []
    for spec in specs:
        if eager_precision(spec) is not None:
            runners.append(load(None, device=device, precision=eager_precision(spec), threads=threads, name=spec))
        else:
            runners.append(load(spec, device=device, provider=provider, threads=threads))
    first_manifest = next((r.manifest for r in runners if r.manifest is not None), None)
    first_artifact = next((s for s, r in zip(specs, runners) if r.manifest is not None), None)
    if eager:
        runners.insert(0, eager_reference(first_manifest, checkpoint, first_artifact, strict=False, device=device,
                                          threads=threads, name=EAGER))
        specs.insert(0, EAGER)
    # engines are named by their file (two fp32 ONNX files would otherwise both be "onnx-fp32")
    names = _unique_names([s if s.startswith(EAGER) else Path(s).name for s in specs])
    size = tuple(size) if size else _default_size(runners)  # type: ignore[assignment]
    env = _environment(device)
    if threads and "threads" in env["label_path"]:  # the C kernel runs on the engines' thread count
        env["label_path"]["threads"] = threads

    results = [{"name": n, "spec": s} for n, s in zip(names, specs)]
    for res, runner in zip(results, runners):
        if runner.batch_size is not None and runner.batch_size != batch:
            res["note"] = f"static batch {runner.batch_size} (asked {batch})"
        if hasattr(runner, "spinning"):  # ONNX Runtime: idle threads of one session must not slow the next
            runner.spinning = False
        runner.activate()
    try:
        image = _image(size)
        images = [image] * batch
        inputs = [_batch_for(r, image, batch) for r in runners]
        for res, r, x in zip(results, runners, inputs):
            res["describe"] = r.describe()
            res["input_size"] = list(x.shape[2:])
            res["batch"] = int(x.shape[0])
            if tuple(x.shape[2:]) != tuple(size):  # compute-only then runs at another size than eager: say so
                res["note"] = (res.get("note", "") + "; " if res.get("note") else "") + \
                    f"static input {x.shape[2]}×{x.shape[3]}, images are {size[0]}×{size[1]}"
        modes = ["compute"] + (["end_to_end"] if end_to_end else [])
        samples: dict[str, list[list[float]]] = {m: [[] for _ in runners] for m in modes}
        total = (warmup + iters) * len(runners) * len(modes)
        done = 0
        for it in range(warmup + iters):
            shift = it % len(runners)
            order = list(range(shift, len(runners))) + list(range(shift))  # rotate who goes first
            for mode in modes:
                for k in order:
                    r = runners[k]
                    t = time.perf_counter()
                    if mode == "compute":
                        r.infer(inputs[k])
                    else:
                        _end_to_end(r, images)
                    ms = (time.perf_counter() - t) * 1e3
                    if it >= warmup:
                        samples[mode][k].append(ms)
                    done += 1
                    if progress:
                        progress("warm-up" if it < warmup else "timing", done, total)
    finally:
        for r in runners:
            r.deactivate()
    try:
        env["loadavg_after"] = os.getloadavg()[0]
    except OSError:
        pass
    for k, res in enumerate(results):
        for mode in modes:
            res[mode] = latency_stats(samples[mode][k], res["batch"])
            res[mode]["times_ms"] = [round(v, 3) for v in samples[mode][k]]  # per round, for paired ratios

    if memory:
        for k, (res, spec) in enumerate(zip(results, specs)):
            if progress:
                progress("memory", k, len(results))
            is_eager = spec == EAGER
            res["memory"] = measure_memory(spec, size=size, batch=batch, device=device, provider=provider, threads=threads,
                                           checkpoint=checkpoint if is_eager else None,
                                           like=first_artifact if is_eager else None)
    for res in results:
        if eager:
            res["vs_eager"] = _ratios(results[0], res, modes)
        if baseline_index is not None:
            res["vs_baseline"] = _ratios(results[baseline_index], res, modes)
    return BenchReport(
        engines=results, size=list(size), batch=batch, iters=iters, warmup=warmup, device=device, environment=env,
        method={
            "order": "round-robin, rotating the first engine each iteration; warm-up calls not timed",
            "compute": "runner.infer on a ready float32 N×3×H×W batch (includes host↔device copies)",
            "end_to_end": "uint8 images at size → resize/normalise → infer (to the 1/4-resolution logits where the backend can) → exact labels at size (UpsampleArgmax: see environment.label_path)",
            "throughput": "images/s = batch·1000 / mean latency",
            "memory": "fresh process per engine: VmHWM after imports vs after load + warm-up + "
                      f"{PROBE_ITERS} end-to-end calls (labels_engine_rss_mib = the growth: what a caller that "
                      f"wants labels needs), then {PROBE_ITERS} runner.infer calls (engine_rss_mib: with the "
                      "full-resolution logits); CUDA: torch.cuda.max_memory_allocated and the growth of device "
                      "memory in use",
            "threads": threads or "framework default",
            "onnxruntime_spinning": "off: with it on, the spinning threads of the engine timed before slow the next "
                                    "one down 10-15% on 2 cores (one engine alone: same speed either way)",
        },
        baseline=results[baseline_index]["name"] if baseline_index is not None else None,
    )


def _baseline_index(baseline: str | Path | None, specs: Sequence[str], eager: bool = True) -> int | None:
    """Where ``baseline`` sits among the results (eager first when benched, then ``specs``), or None."""
    from .backends.loader import EAGER

    if baseline is None:
        return None
    if str(baseline) == EAGER:
        if not eager:
            raise IcnetDeployError("baseline eager: the eager baseline is not benched in this run (no torch here, or turned off)")
        return 0
    wanted = Path(baseline).resolve()
    for k, spec in enumerate(specs):
        if not spec.startswith(EAGER) and Path(spec).resolve() == wanted:
            return k + int(eager)
    raise IcnetDeployError(f"baseline {baseline}: not one of the engines benched (give it with --engine too, or use eager)")


def _ratios(base: dict, res: dict, modes: Sequence[str]) -> dict[str, Any]:
    """Speed-ups (p50 over p50, and round by round) and memory ratios of ``res`` against ``base``."""
    vs: dict[str, Any] = {}
    for mode in modes:
        vs[f"{mode}_speedup"] = base[mode]["p50_ms"] / res[mode]["p50_ms"] if res[mode]["p50_ms"] > 0 else None
        vs[f"{mode}_speedup_paired"] = paired_speedup(base[mode]["times_ms"], res[mode]["times_ms"])
    mem, base_mem = res.get("memory") or {}, base.get("memory") or {}
    if "engine_rss_mib" in mem and base_mem.get("engine_rss_mib"):
        vs["rss_ratio"] = mem["engine_rss_mib"] / base_mem["engine_rss_mib"]
    if "labels_engine_rss_mib" in mem and base_mem.get("labels_engine_rss_mib"):
        vs["labels_rss_ratio"] = mem["labels_engine_rss_mib"] / base_mem["labels_engine_rss_mib"]
    return vs


def _unique_names(labels: Sequence[str]) -> list[str]:
    names: list[str] = []
    for base in labels:
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m icnet_deploy.bench --probe ENGINE …``: the fresh-process memory probe (prints JSON)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m icnet_deploy.bench")
    parser.add_argument("--probe", required=True)
    parser.add_argument("--size", default="1024x2048")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--provider")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=PROBE_ITERS)
    parser.add_argument("--checkpoint")
    parser.add_argument("--like")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    try:
        result = _probe(args.probe, (h, w), args.batch, args.device, args.provider, args.threads, args.warmup,
                        args.iters, args.checkpoint, args.like)
    except IcnetDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
