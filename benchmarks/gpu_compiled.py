"""The GPU table for compiled PyTorch engines, in one run of under five minutes.

    PYTHONPATH=src python benchmarks/gpu_compiled.py [--checkpoint models/icnet_r50_half_synthetic.safetensors]
                                                     [--out results.json] [--variants]

Needs only torch (CUDA), numpy, onnx and onnxruntime (CPU is enough); no pip install, no network.
Without Pillow or safetensors (a bare GPU box) it loads the library's subpackages without the
package's top-level conveniences and reads the checkpoint with a 20-line safetensors reader.

What it measures, ICNet at 1024×2048 on one GPU (fp16 = half-precision weights and activations):

* **latency, batch 1**: eager fp32 (torch's defaults: cuDNN convolutions may use TF32), eager
  fp16, compiled fp16 (``torch.compile``,
  ``reduce-overhead`` = Inductor + CUDA graphs), each call followed by a synchronize; tensors
  already on the GPU (the engine, not PCIe). p50/p90 over interleaved rounds: every round runs
  each engine a few times, in rotating order, so clock and thermal drift hit all alike.
* **throughput, batch 8**: eager fp32/fp16 and compiled fp16, back-to-back calls, one synchronize
  per block: images/s.
* **peak device memory** per engine: ``torch.cuda.max_memory_allocated`` while it is set up,
  warmed up and run, minus what was allocated before (weights + activations + CUDA-graph pool).
* **through the Runner** (numpy in, numpy logits out, as ``infer``/``bench`` see it): the engine
  written by ``compile_engine`` and loaded by ``CompiledTorchRunner`` — adds the host↔device copies.
* **startup**: the build's compile in an empty Inductor cache (cold) and, in fresh processes, the
  engine's start from its cache artefacts in another empty cache directory and a second start
  in that (now warm) directory.
* **parity**: compiled fp16 vs eager fp32 (pixel agreement, worst image; gate ≥ 99.9 %) and the
  max |Δlogit| vs eager fp16.
* **ONNX Runtime**: the same model exported to ONNX (TorchScript exporter, opset 17) on the
  CUDA execution provider when onnxruntime has it, else on the CPU (batch 1 only, few runs).

``--variants`` adds compiled fp16 with Inductor freezing (BatchNorm folded into the convolution
weights) and with ``max-autotune`` (Triton templates + CUDA graphs); allow 5–10 more minutes.
Goals: batch 1 fp16 ≤ 1.0 ms; batch 8 ≥ 1500 images/s. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1024, 2048)
GOAL_B1_MS = 1.0
GOAL_B8_IPS = 1500.0


# --------------------------------------------------------------------------------------------
# the library, with or without Pillow/safetensors
# --------------------------------------------------------------------------------------------
def import_library() -> str:
    """Import icnet_deploy; on a bare box register the package without running its __init__."""
    try:
        import icnet_deploy  # noqa: F401

        return "full"
    except ImportError:  # PIL or safetensors missing: the model, backends and compile need neither
        for name in [n for n in sys.modules if n == "icnet_deploy" or n.startswith("icnet_deploy.")]:
            del sys.modules[name]
        src = ROOT / "src" / "icnet_deploy"
        if not src.is_dir():
            sys.exit(f"cannot find {src}: run from a checkout with PYTHONPATH=src")
        pkg = types.ModuleType("icnet_deploy")
        pkg.__path__ = [str(src)]  # type: ignore[attr-defined]
        pkg.__version__ = "checkout"  # type: ignore[attr-defined]
        sys.modules["icnet_deploy"] = pkg
        if not _has("safetensors"):  # the eager runner imports model.weights: give it this file's reader
            import icnet_deploy.model  # noqa: F401  (the subpackage itself needs only torch)

            weights = types.ModuleType("icnet_deploy.model.weights")
            weights.load_model = lambda checkpoint=None, config=None: load_icnet(
                Path(checkpoint) if checkpoint else None)
            weights.shipped_checkpoint = lambda: None
            sys.modules["icnet_deploy.model.weights"] = weights
        return "bare (no Pillow/safetensors)"


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    """State dict and metadata of a .safetensors file, without the safetensors package."""
    import torch

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
              "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    state = {}
    for key, spec in header.items():
        start, end = spec["data_offsets"]
        raw = bytearray(blob[base + start:base + end])
        t = torch.frombuffer(raw, dtype=dtypes[spec["dtype"]]) if raw else torch.empty(0, dtype=dtypes[spec["dtype"]])
        state[key] = t.reshape(spec["shape"]).clone()
    return state, meta


def load_icnet(checkpoint: Path | None):
    """ICNet in eval mode with ``checkpoint_info`` (path, sha256) — random seeded weights without a checkpoint."""
    import torch

    from icnet_deploy.model.config import ICNetConfig, get_config
    from icnet_deploy.model.icnet import ICNet

    if checkpoint is None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = ICNet(get_config("icnet_r50_half")).eval()
        model.checkpoint_info = {"path": None, "sha256": None}
        return model
    if _has("safetensors"):
        from icnet_deploy.model.weights import load_model

        return load_model(checkpoint)
    else:
        state, meta = _read_safetensors(checkpoint)
        stored = meta.get("icnet_deploy.config")
        config = ICNetConfig.from_json(stored) if stored else get_config("icnet_r50_half")
        model = ICNet(config).eval()
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model.checkpoint_info = {"path": str(checkpoint), "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}
        return model


def smooth_images(count: int, mean, std, seed: int = 1234):
    """Preprocessed float32 1×3×H×W batches of smooth random colour fields (no Pillow needed)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        low = torch.randint(0, 256, (1, 3, SIZE[0] // 32, SIZE[1] // 32), generator=g).float()
        img = F.interpolate(low, size=SIZE, mode="bilinear", align_corners=False).clamp(0, 255).round()
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        out.append(((img - m) / s).numpy().astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def _warm_rounds(fns: dict, rounds: int, warmup: int):
    """Warm every engine up, then yield each round's engine order (rotating who goes first)."""
    import torch

    for fn, x in fns.values():
        for _ in range(warmup):
            fn(x)
    torch.cuda.synchronize()
    names = list(fns)
    for r in range(rounds):
        yield names[r % len(names):] + names[:r % len(names)]


def interleaved_latency(fns: dict, rounds: int = 12, per_round: int = 5, warmup: int = 10) -> dict:
    """ms per call (call + synchronize), engines interleaved in rotating order."""
    import torch

    samples = {n: [] for n in fns}
    for order in _warm_rounds(fns, rounds, warmup):
        for n in order:
            fn, x = fns[n]
            for _ in range(per_round):
                t = time.perf_counter()
                fn(x)
                torch.cuda.synchronize()
                samples[n].append((time.perf_counter() - t) * 1e3)
    return {n: _stats(v) for n, v in samples.items()}


def interleaved_throughput(fns: dict, batch: int, rounds: int = 6, per_block: int = 10, warmup: int = 5) -> dict:
    """images/s from blocks of back-to-back calls with one synchronize per block."""
    import torch

    blocks = {n: [] for n in fns}
    for order in _warm_rounds(fns, rounds, warmup):
        for n in order:
            fn, x = fns[n]
            t = time.perf_counter()
            for _ in range(per_block):
                fn(x)
            torch.cuda.synchronize()
            blocks[n].append((time.perf_counter() - t) * 1e3 / per_block)
    return {n: {"ms_per_batch_p50": statistics.median(v), "images_per_s": batch * 1000.0 / statistics.median(v),
                "blocks": len(v)} for n, v in blocks.items()}


def _stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    pct = lambda q: ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]  # noqa: E731
    return {"p50_ms": statistics.median(ms), "p90_ms": pct(0.9), "min_ms": ms[0], "mean_ms": statistics.fmean(ms),
            "samples": len(ms)}


def measured_setup(make):
    """Run ``make()`` (set up + warm up an engine); returns (result, peak MiB above what was allocated before)."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = make()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    resident = (torch.cuda.memory_allocated() - before) / 2**20
    return result, {"peak_mib": round(peak, 1), "resident_mib": round(resident, 1), "setup_s": round(seconds, 2)}


# --------------------------------------------------------------------------------------------
# the pieces
# --------------------------------------------------------------------------------------------
def eager_fn(model, precision: str):
    import torch

    net = copy.deepcopy(model).cuda().to(memory_format=torch.channels_last)
    if precision == "fp16":
        net = net.half()
    dtype = torch.float16 if precision == "fp16" else torch.float32

    @torch.inference_mode()
    def run(x):
        return net(x.to(dtype))

    return run


def compiled_fn(model, precision: str, mode: str, batch: int, freezing: bool = False):
    """Compile exactly as CompiledTorchRunner does (``compile_module`` of ``forward_coarse``, then the
    model's final upsample eager, as its ``infer``), warm it up at ``batch``."""
    import torch
    import torch._inductor.config as inductor_config

    from icnet_deploy.backends.torch_compiled import coarse_logits_module, compile_module
    from icnet_deploy.model.icnet import upsample_logits

    net = copy.deepcopy(model).cuda().to(memory_format=torch.channels_last)
    if precision == "fp16":
        net = net.half()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    if freezing:
        inductor_config.freezing = True
    try:
        coarse = compile_module(coarse_logits_module(net), mode, "cuda")

        def step(x):
            return upsample_logits(coarse(x), (x.shape[-2], x.shape[-1]))

        x = torch.zeros(batch, 3, *SIZE, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        t = time.perf_counter()
        with torch.inference_mode():
            step(x)
            torch.cuda.synchronize()
            first = time.perf_counter() - t
            for _ in range(3):
                step(x)
        torch.cuda.synchronize()
    finally:
        if freezing:
            inductor_config.freezing = False

    @torch.inference_mode()
    def run(x):
        return step(x.to(dtype))

    run.compile_s = round(first, 1)  # type: ignore[attr-defined]
    return run


def onnxruntime_row(model, x_np) -> dict:
    """ONNX Runtime fp32 at batch 1: CUDA EP if this onnxruntime has it, else CPU (few runs)."""
    try:
        import onnxruntime as ort
        import torch
    except ImportError as exc:
        return {"skipped": f"onnxruntime not importable: {exc}"}
    providers = ort.get_available_providers()
    provider = "CUDAExecutionProvider" if "CUDAExecutionProvider" in providers else "CPUExecutionProvider"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "icnet.onnx"
        net = copy.deepcopy(model).float().cpu().eval()
        t = time.perf_counter()
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (torch.from_numpy(x_np),), str(path), input_names=["image"],
                                  output_names=["logits"], opset_version=17, do_constant_folding=True, dynamo=False)
        except Exception as exc:  # an exporter problem is a finding, not a crash of the whole table
            return {"skipped": f"ONNX export failed: {type(exc).__name__}: {str(exc)[:200]}"}
        export_s = time.perf_counter() - t
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        runs = 20 if provider == "CUDAExecutionProvider" else 5
        session.run(None, {"image": x_np})
        ms = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, {"image": x_np})
            ms.append((time.perf_counter() - t) * 1e3)
    return {"provider": provider, "onnxruntime": ort.__version__, "export_s": round(export_s, 1),
            "note": "numpy in/out (includes host↔device copies on CUDA)", **_stats(ms)}


def start_in_fresh_process(engine: Path, cache: Path, checkpoint: Path | None) -> dict:
    """Start the engine in a new process with TORCHINDUCTOR_CACHE_DIR=cache; returns its startup record."""
    env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, __file__, "--child-start", str(engine)]
    args += ["--checkpoint", str(checkpoint)] if checkpoint else []
    t = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["process_s"] = round(time.perf_counter() - t, 1)
    return record


def child_start(engine: Path, checkpoint: Path | None) -> None:
    import_library()
    from icnet_deploy.backends.torch_compiled import CompiledTorchRunner

    t = time.perf_counter()
    model = load_icnet(checkpoint)
    with CompiledTorchRunner(engine, model=model) as runner:
        print(json.dumps(runner.startup | {"activate_s": round(time.perf_counter() - t, 2)}))


# --------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="weights (default: models/icnet_r50_half_synthetic.safetensors if present, else random)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the results as JSON here (default: $OUT/gpu_compiled.json when $OUT is set)")
    parser.add_argument("--variants", action="store_true", help="also freezing and max-autotune (5-10 more minutes)")
    parser.add_argument("--no-cudnn-benchmark", action="store_true", help="leave torch.backends.cudnn.benchmark off")
    parser.add_argument("--child-start", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_start:
        child_start(args.child_start, args.checkpoint)
        return 0

    started = time.perf_counter()
    # A fresh Inductor cache: the build's compile below is a true cold compile.
    cache_root = Path(tempfile.mkdtemp(prefix="icnet_gpu_compiled_"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_root / "build")
    mode_of_import = import_library()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark is for the GPU machine (the CPU numbers come from the tests/report)")
        return 2
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    # several compiled engines share one forward(): let each keep its own compiled code
    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    from icnet_deploy.backends.torch_compiled import CompiledTorchRunner, device_identity
    from icnet_deploy.compile import compile_engine

    checkpoint = args.checkpoint
    if checkpoint is None:
        shipped = ROOT / "models" / "icnet_r50_half_synthetic.safetensors"
        checkpoint = shipped if shipped.is_file() else None
    model = load_icnet(checkpoint)
    ident = device_identity("cuda")
    results: dict = {"device": ident, "library": mode_of_import, "size": list(SIZE),
                     "checkpoint": str(checkpoint) if checkpoint else "random weights (seed 0)",
                     "cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "goals": {"b1_fp16_ms": GOAL_B1_MS, "b8_images_per_s": GOAL_B8_IPS}}
    print(f"{ident['device_name']} · torch {ident['torch']} · CUDA {ident['cuda']} · {results['checkpoint']} · "
          f"library {mode_of_import}", flush=True)

    inputs = smooth_images(4, model.config.mean, model.config.std)
    xb1 = [torch.from_numpy(x).cuda().contiguous(memory_format=torch.channels_last) for x in inputs]
    xb8 = torch.cat([xb1[k % len(xb1)] for k in range(8)]).contiguous(memory_format=torch.channels_last)
    xh1, xh8 = xb1[0].half(), xb8.half()  # fp16 engines get fp16 inputs: no cast inside the timed call
    memory: dict = {}

    # 1. the library path: build the engine (cold compile), load it through the Runner.
    engine = cache_root / "icnet_fp16_b1.torch"
    t = time.perf_counter()
    manifest = compile_engine(model, engine, precision="fp16", mode="reduce-overhead", batch=1, height=SIZE[0],
                              width=SIZE[1], device="cuda", inputs=inputs, min_agreement=0.0,  # reported, not gated
                              progress=lambda m: print(f"  build: {m}", flush=True))
    results["build"] = {"seconds": round(time.perf_counter() - t, 1), "compile_s": manifest.details["build_compile_s"],
                        "fx_graph_cache": manifest.details["build_fx_graph_cache"],
                        "engine_bytes": engine.stat().st_size, "cache_artifacts": manifest.details["cache_artifacts"],
                        "parity_vs_eager_fp32": manifest.details["build_parity"]}
    print(f"  build: cold compile {manifest.details['build_compile_s']} s; agreement vs eager fp32 "
          f"{manifest.details['build_parity']['agreement_pct']}%", flush=True)
    runner = CompiledTorchRunner(engine, model=copy.deepcopy(model))
    with runner:
        results["runner_start_same_process"] = runner.startup
        ms = []
        for k in range(25):
            s = time.perf_counter()
            runner.infer(inputs[k % len(inputs)])
            ms.append((time.perf_counter() - s) * 1e3)
        results["runner_b1_numpy"] = _stats(ms[5:])
    del runner
    torch.cuda.empty_cache()
    print("  startup in fresh processes …", flush=True)
    results["start_fresh_cache_from_engine"] = start_in_fresh_process(engine, cache_root / "fresh", checkpoint)
    results["start_second_same_cache"] = start_in_fresh_process(engine, cache_root / "fresh", checkpoint)

    # 2. device-resident latency and throughput, interleaved.
    print("  eager and compiled engines …", flush=True)
    e32, memory["eager-fp32"] = measured_setup(lambda: _warm(eager_fn(model, "fp32"), xb1[0]))
    e16, memory["eager-fp16"] = measured_setup(lambda: _warm(eager_fn(model, "fp16"), xb1[0]))
    c16, memory["compiled-fp16"] = measured_setup(lambda: compiled_fn(model, "fp16", "reduce-overhead", 1))
    b1 = {"eager-fp32": (e32, xb1[0]), "eager-fp16": (e16, xh1), "compiled-fp16": (c16, xh1)}
    variants = {}
    if args.variants:
        for name, kw in (("compiled-fp16-freezing", {"mode": "reduce-overhead", "freezing": True}),
                         ("compiled-fp16-max-autotune", {"mode": "max-autotune"})):
            print(f"  {name} …", flush=True)
            fn, memory[name] = measured_setup(lambda kw=kw: compiled_fn(model, "fp16", batch=1, **kw))
            b1[name] = (fn, xh1)
            variants[name] = {"compile_s": fn.compile_s}
    results["compile_s_b1"] = {"compiled-fp16": c16.compile_s, **{k: v["compile_s"] for k, v in variants.items()}}
    results["latency_b1"] = interleaved_latency(b1)

    with torch.inference_mode():  # parity on all four inputs
        from_e32 = [e32(x).float() for x in xb1]
        from_e16 = [e16(x).float() for x in xb1]
        par = {}
        for name, (fn, _) in b1.items():
            outs = [fn(x).float().clone() for x in xb1]
            agree = min(float((o.argmax(1) == r.argmax(1)).float().mean()) * 100 for o, r in zip(outs, from_e32))
            par[name] = {"agreement_vs_eager_fp32_pct": round(agree, 4),
                         "max_abs_vs_eager_fp32": max(float((o - r).abs().max()) for o, r in zip(outs, from_e32)),
                         "max_abs_vs_eager_fp16": max(float((o - r).abs().max()) for o, r in zip(outs, from_e16))}
        results["parity_b1"] = par

    print("  batch 8 …", flush=True)
    del b1
    c8, memory["compiled-fp16-b8"] = measured_setup(lambda: compiled_fn(model, "fp16", "reduce-overhead", 8))
    results["compile_s_b8"] = c8.compile_s
    results["throughput_b8"] = interleaved_throughput({"eager-fp32": (e32, xb8), "eager-fp16": (e16, xh8),
                                                       "compiled-fp16": (c8, xh8)}, batch=8)
    # eager peaks at batch 8: activations above the resident weights, plus those weights (as compiled-fp16-b8 has)
    for name, fn, x in (("eager-fp32", e32, xb8), ("eager-fp16", e16, xh8)):
        _, mem = measured_setup(lambda fn=fn, x=x: _warm(fn, x, 2))
        mem["peak_mib"] = round(mem["peak_mib"] + memory[name]["resident_mib"], 1)
        memory[name + "-b8"] = mem
    results["peak_memory"] = memory

    print("  ONNX Runtime …", flush=True)
    results["onnxruntime_b1"] = onnxruntime_row(model, inputs[0])
    results["seconds"] = round(time.perf_counter() - started, 1)
    lat, thr = results["latency_b1"], results["throughput_b8"]
    results["goals_met"] = {"b1_fp16_ms": lat["compiled-fp16"]["p50_ms"] <= GOAL_B1_MS,
                            "b8_images_per_s": thr["compiled-fp16"]["images_per_s"] >= GOAL_B8_IPS,
                            "fp16_agreement_99_9": results["parity_b1"]["compiled-fp16"]["agreement_vs_eager_fp32_pct"]
                            >= 99.9}
    _print_table(results)
    out = args.out or (Path(os.environ["OUT"]) / "gpu_compiled.json" if os.environ.get("OUT") else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {out}")
    else:
        print(json.dumps(results, default=str))
    return 0


def _warm(fn, x, n: int = 5):
    for _ in range(n):
        fn(x)
    return fn


def _print_table(r: dict) -> None:
    lat, thr, mem, par = r["latency_b1"], r["throughput_b8"], r["peak_memory"], r["parity_b1"]
    base = lat["eager-fp32"]["p50_ms"]
    print(f"\n{r['device']['device_name']}, ICNet {SIZE[0]}×{SIZE[1]}, tensors on the GPU (compute only)")
    print(f"{'engine':28} {'b1 p50 ms':>10} {'p90':>7} {'vs fp32':>8} {'b8 img/s':>9} {'peak MiB b1':>12} "
          f"{'agree %':>8} {'|Δ| vs fp16':>11}")
    for name, s in lat.items():
        b8 = thr.get(name, {}).get("images_per_s")
        print(f"{name:28} {s['p50_ms']:10.3f} {s['p90_ms']:7.3f} {base / s['p50_ms']:7.2f}× "
              f"{(f'{b8:9.0f}' if b8 else '        —')} {mem.get(name, {}).get('peak_mib', float('nan')):12.0f} "
              f"{par[name]['agreement_vs_eager_fp32_pct']:8.3f} {par[name]['max_abs_vs_eager_fp16']:11.2e}")
    ort = r["onnxruntime_b1"]
    if "p50_ms" in ort:
        label = f"onnxruntime-fp32 ({ort['provider'].removesuffix('ExecutionProvider')})"
        print(f"{label:28} {ort['p50_ms']:10.3f} "
              f"{ort['p90_ms']:7.3f} {base / ort['p50_ms']:7.2f}×   (numpy in/out)")
    else:
        print(f"onnxruntime: {ort.get('skipped')}")
    rb = r["runner_b1_numpy"]
    print(f"{'compiled-fp16 via Runner':28} {rb['p50_ms']:10.3f} {rb['p90_ms']:7.3f}"
          "           (numpy in, float32 logits out)")
    print("peak MiB at batch 8: " + ", ".join(f"{k} {v['peak_mib']:.0f}" for k, v in mem.items() if k.endswith("b8")))
    b, fresh, second = r["build"], r["start_fresh_cache_from_engine"], r["start_second_same_cache"]
    print(f"compile: build (cold cache) {b['compile_s']} s; batch 8 {r['compile_s_b8']} s; "
          f"fresh process from the engine's artefacts {fresh.get('compile_s', fresh)} s; "
          f"second start, same cache {second.get('compile_s', second)} s")
    g = r["goals_met"]
    b1_ms, b8_ips = lat["compiled-fp16"]["p50_ms"], thr["compiled-fp16"]["images_per_s"]
    print(f"goals: b1 fp16 ≤ {GOAL_B1_MS} ms: {'met' if g['b1_fp16_ms'] else 'MISSED'} ({b1_ms:.3f} ms); "
          f"b8 ≥ {GOAL_B8_IPS:.0f} img/s: {'met' if g['b8_images_per_s'] else 'MISSED'} ({b8_ips:.0f}); "
          f"fp16 agreement ≥ 99.9%: {'met' if g['fp16_agreement_99_9'] else 'MISSED'}"
          + (" (random weights: not meaningful)" if r["checkpoint"].startswith("random") else ""))
    print(f"total {r['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
