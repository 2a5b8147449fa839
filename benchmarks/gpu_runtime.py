#!/usr/bin/env python3
"""GPU runtime benchmark: eager fp32/fp16 on CUDA and the ONNX Runtime runner on CUDA (and TensorRT EP).

A prepared script for a machine with an NVIDIA GPU (nothing here runs on a CPU-only box):

    python benchmarks/gpu_runtime.py                         # exports the shipped checkpoint first
    python benchmarks/gpu_runtime.py --onnx build/icnet.onnx --iters 50 --json gpu.json

What it measures, all through ``icnet_deploy.bench`` (interleaved round-robin, warm-up, p50/p90/p99,
peak host RSS per engine in a fresh process, ``torch.cuda.max_memory_allocated`` and device memory
in use):

1. eager PyTorch fp32 on CUDA — the baseline of every row;
2. eager PyTorch fp16 on CUDA (``model.half()``, channels-last);
3. the ONNX (fp32, and any ``--onnx`` files given: fp16 / int8 QDQ) in ONNX Runtime with the CUDA
   execution provider — only when ``onnxruntime-gpu`` is installed; the provider that really ran
   is printed (``session.get_providers()``), so a silent CPU fallback cannot pass for a GPU number;
4. the same with the TensorRT execution provider, when this onnxruntime has it (``--no-trt-ep`` skips).

Exit codes: 0 done, 2 no GPU / bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", action="append", default=[], help="ONNX engine(s) to run (default: export one)")
    parser.add_argument("--size", default="1024x2048", help="input size HxW of the export (default 1024x2048)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-engine memory probes")
    parser.add_argument("--no-trt-ep", action="store_true", help="skip ONNX Runtime's TensorRT execution provider")
    parser.add_argument("--json", type=Path, help="also write the reports as JSON here")
    args = parser.parse_args(argv)

    import torch

    from icnet_deploy.bench import bench
    from icnet_deploy.cli import _bench_table, console

    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch; this benchmark needs one", file=sys.stderr)
        return 2
    h, w = _parse_size(args.size)
    console.print(f"GPU: {torch.cuda.get_device_name()} · torch {torch.__version__} · CUDA {torch.version.cuda}")

    engines = [str(p) for p in args.onnx]
    tmp = None
    if not engines:
        from icnet_deploy.export import export

        tmp = tempfile.TemporaryDirectory(prefix="icnet_gpu_bench_")
        path = Path(tmp.name) / f"icnet_{h}x{w}.onnx"
        started = time.perf_counter()
        # verified on CPU ONNX Runtime at export (2 images): the GPU numbers below are for a checked graph
        export(None, path, height=h, width=w, batch=args.batch, verify_images=2)
        console.print(f"exported {path.name} in {time.perf_counter() - started:.1f} s")
        engines = [str(path)]

    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    console.print(f"onnxruntime providers here: {', '.join(providers) or 'none (onnxruntime not installed)'}")

    reports = {}
    runs = [("eager + ORT CUDA", "cuda")] if "CUDAExecutionProvider" in providers else [("eager", None)]
    if "TensorrtExecutionProvider" in providers and not args.no_trt_ep:
        runs.append(("eager + ORT TensorRT EP", "tensorrt"))
    for title, provider in runs:
        listed = ["eager-fp16"] + (engines if provider else [])
        if provider is None:
            console.print("[yellow]onnxruntime-gpu is not installed: only eager fp32/fp16 on CUDA are measured[/]")
        report = bench(listed, size=(h, w), batch=args.batch, iters=args.iters, warmup=args.warmup, device=args.device,
                       provider=provider, memory=not args.no_memory)
        data = report.to_dict()
        reports[title] = data
        console.print(_bench_table(data))
        for e in data["engines"]:
            console.print(f"  {e['name']}: runs on {e['describe'].get('provider')} ({e['describe'].get('device')})")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
