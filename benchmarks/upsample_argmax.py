#!/usr/bin/env python3
"""The UpsampleArgmax CPU kernel next to the numpy reference, on the shipped model's own logits.

    python benchmarks/upsample_argmax.py                        # 1024×2048, the 4 photos + 2 scenes
    python benchmarks/upsample_argmax.py --rounds 21 --threads 1 2 --json upsample_argmax.json
    python benchmarks/upsample_argmax.py --engine build/icnet_int8.onnx --threads 2   # + bench's end-to-end path

The shipped checkpoint (eager PyTorch) gives the 1/4-resolution logits (19×256×512) of the real
photographs (``assets/photos``, resized) and of generated street scenes; each image's labels at
1024×2048 are then made by ``upsample.bilinear_argmax`` (numpy, today's label path) and by the C
kernel (``plugins.upsample_argmax``) at each ``--threads``, **interleaved**: every round times every
implementation once on every image, the order rotating round by round, so load from other jobs on
the machine hits all alike. The labels are compared (they must be equal) and the table gives the
p50 per implementation and image, and the speed-up per round (reference ms / kernel ms in the same
round: median and interquartile range). The CPU's model name and SIMD flags, and which build of the
kernel runs (``isa``), are printed with the numbers.

``--engine E`` (repeatable) also times ``bench``'s end-to-end label path on that engine both ways in
one process, interleaved: the bench's generated scene at ``--size`` → ``prepare`` →
``Runner.infer_for_labels`` → labels by the reference or by the kernel (on the largest
``--threads``, which is also the engine's thread count): what the kernel saves per image, measured
round by round on the same engine calls (``icnet-deploy bench`` picks one implementation per
process, so two bench runs compare two moments of a shared machine instead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _cpu() -> dict:
    info = {"model": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "flags": []}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["model"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    info["flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile") if f in flags]
                    break
    except OSError:
        pass
    try:
        info["loadavg"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def _logits(size: tuple[int, int], scenes: int) -> list[tuple[str, np.ndarray]]:
    import torch

    from icnet_deploy.assets import real_photos
    from icnet_deploy.data.folders import read_rgb
    from icnet_deploy.data.synthetic import generate_scene
    from icnet_deploy.data.transforms import preprocess, resize_image
    from icnet_deploy.model.weights import load_model

    model = load_model(None).eval()
    images = [(p.name, read_rgb(p)) for p in real_photos()]
    images += [(f"scene-{960_000 + i}", generate_scene(960_000 + i, *size)[0]) for i in range(scenes)]
    out = []
    for name, image in images:
        x = preprocess(np.ascontiguousarray(resize_image(image, size)), model.config.mean, model.config.std)
        with torch.inference_mode():
            out.append((name, model.forward_coarse(torch.from_numpy(x))[0].numpy()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1024x2048", help="output size HxW (the model runs at it)")
    parser.add_argument("--scenes", type=int, default=2, help="generated scenes besides the 4 photographs")
    parser.add_argument("--rounds", type=int, default=11, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="kernel thread counts to time")
    parser.add_argument("--engine", action="append", default=[], help="also time bench's end-to-end label path on it")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    from icnet_deploy import plugins
    from icnet_deploy.upsample import bilinear_argmax

    lib = plugins.native_library()
    if lib is None:
        print(f"no C kernel here: {plugins.label_path()['reason']}", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.lower().split("x"))
    cpu = _cpu()
    print(f"logits of the shipped checkpoint at {size[0]}×{size[1]} …", file=sys.stderr)
    images = _logits(size, args.scenes)
    impls = {"numpy reference": lambda x: bilinear_argmax(x, size)}
    impls |= {f"C kernel, {t} thread{'s' if t > 1 else ''}": (lambda x, t=t: plugins.upsample_argmax(x, size, threads=t))
              for t in args.threads}
    times = {(name, impl): [] for name, _ in images for impl in impls}
    for name, logits in images:  # the labels first: every implementation must give the reference's
        ref = impls["numpy reference"](logits)
        for impl, run in impls.items():
            if not np.array_equal(run(logits), ref):
                print(f"{impl} differs from the reference on {name}", file=sys.stderr)
                return 1
    order = list(impls)
    for r in range(args.rounds + 1):
        shift = r % len(order)
        for name, logits in images:
            for impl in order[shift:] + order[:shift]:
                start = time.perf_counter()
                impls[impl](logits)
                if r:  # round 0 warms up
                    times[(name, impl)].append((time.perf_counter() - start) * 1e3)

    print(f"CPU: {cpu['model']} ({cpu['cpus']} CPUs; {' '.join(cpu['flags'])}); kernel build: {lib.isa}; "
          f"load average {cpu.get('loadavg', float('nan')):.2f} → {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} interleaved rounds, labels identical on every image")
    kernels = [k for k in impls if k != "numpy reference"]
    head = f"{'image':16s} {'boundary':>8s} {'numpy p50':>10s}" + "".join(f" {k + ' p50':>22s} {'speed-up (IQR)':>19s}" for k in kernels)
    print(head)
    rows = []
    for name, logits in images:
        from icnet_deploy.upsample import argmax_classes

        coarse = np.pad(argmax_classes(logits), ((0, 1), (0, 1)), mode="edge")
        corner = coarse[:-1, :-1]
        boundary = 100 * float((~((corner == coarse[1:, :-1]) & (corner == coarse[:-1, 1:]) & (corner == coarse[1:, 1:]))).mean())
        ref = np.asarray(times[(name, "numpy reference")])
        row = {"image": name, "boundary_cells_pct": boundary, "numpy_p50_ms": float(np.median(ref))}
        line = f"{name:16s} {boundary:7.1f}% {np.median(ref):9.1f}ms"
        for k in kernels:
            t = np.asarray(times[(name, k)])
            ratio = ref / t
            row[k] = {"p50_ms": float(np.median(t)), "speedup_median": float(np.median(ratio)),
                      "speedup_p25": float(np.percentile(ratio, 25)), "speedup_p75": float(np.percentile(ratio, 75))}
            line += (f" {np.median(t):20.2f}ms {np.median(ratio):8.1f}× ({np.percentile(ratio, 25):.1f}–"
                     f"{np.percentile(ratio, 75):.1f})")
        rows.append(row)
        print(line)
    engines = [_end_to_end(spec, size, args.rounds, max(args.threads)) for spec in args.engine]
    if args.json:
        args.json.write_text(json.dumps({"size": list(size), "rounds": args.rounds, "cpu": cpu, "kernel": plugins.label_path(),
                                         "images": rows, "end_to_end": engines}, indent=2))
    return 0


def _end_to_end(spec: str, size: tuple[int, int], rounds: int, threads: int) -> dict:
    """bench's end-to-end path on ``spec``, its labels by the reference and by the kernel, interleaved."""
    from icnet_deploy import plugins
    from icnet_deploy.backends import load
    from icnet_deploy.bench import _image
    from icnet_deploy.upsample import bilinear_argmax

    image = _image(size)
    finish = {"numpy reference": lambda out: bilinear_argmax(out, size),
              "C kernel": lambda out: plugins.upsample_argmax(out, size, threads=threads)}
    times: dict[str, list[float]] = {k: [] for k in finish}
    label_ms: dict[str, list[float]] = {k: [] for k in finish}
    runner = load(spec, threads=threads)
    if hasattr(runner, "spinning"):
        runner.spinning = False  # as bench runs ONNX Runtime
    with runner:
        for r in range(rounds + 1):
            for impl in (list(finish) if r % 2 else list(finish)[::-1]):
                start = time.perf_counter()
                out = runner.infer_for_labels(runner.prepare(image))[0]
                mid = time.perf_counter()
                finish[impl](out)
                if r:
                    times[impl].append((time.perf_counter() - start) * 1e3)
                    label_ms[impl].append((time.perf_counter() - mid) * 1e3)
    ref, ker = np.asarray(times["numpy reference"]), np.asarray(times["C kernel"])
    saved = ref - ker
    result = {"engine": spec, "threads": threads, "rounds": rounds,
              "end_to_end_p50_ms": {k: float(np.median(v)) for k, v in times.items()},
              "labels_p50_ms": {k: float(np.median(v)) for k, v in label_ms.items()},
              "saved_ms_per_round": {"median": float(np.median(saved)), "p25": float(np.percentile(saved, 25)),
                                     "p75": float(np.percentile(saved, 75))},
              "speedup_per_round_median": float(np.median(ref / ker))}
    print(f"{Path(spec).name}: end-to-end p50 {result['end_to_end_p50_ms']['numpy reference']:.1f} ms (numpy) → "
          f"{result['end_to_end_p50_ms']['C kernel']:.1f} ms (C kernel, {threads} threads); labels step "
          f"{result['labels_p50_ms']['numpy reference']:.1f} → {result['labels_p50_ms']['C kernel']:.1f} ms; saved per "
          f"round {np.median(saved):.1f} ms (IQR {np.percentile(saved, 25):.1f}–{np.percentile(saved, 75):.1f}), "
          f"{result['speedup_per_round_median']:.2f}× per round")
    return result


if __name__ == "__main__":
    sys.exit(main())
