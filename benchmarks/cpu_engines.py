#!/usr/bin/env python3
"""CPU engines side by side: eager fp32 vs ONNX Runtime fp32 vs ORT INT8 (QDQ) vs ORT FP16, 1024×2048.

    python benchmarks/cpu_engines.py                                   # export + build into build/cpu_bench/
    python benchmarks/cpu_engines.py --onnx build/icnet.onnx --int8 build/icnet_int8.onnx \\
        --fp16 build/icnet_fp16.onnx --iters 5 --threads 2 --json cpu_engines.json

One run, interleaved: ``icnet_deploy.bench`` runs every engine once per iteration, rotating who
goes first, so background load (a training job on the same cores) hits all engines alike; the
p50 and the minimum of ``--iters`` timed calls after one warm-up call each are printed, with the
ratios against eager fp32 and against ORT fp32 (the INT8 goals on a VNNI CPU: ≥ 2× ORT fp32 — 2.5×
hoped — and ≥ 6× eager). Missing engines are built first (``export`` / ``build_engine``: shipped
checkpoint, shipped ``calib/``) and their build-time parity (agreement with fp32 on held-out
scenes and real photos, mIoU drop) is printed from their manifests next to the timings.

FP16 is in the table for completeness: ONNX Runtime's CPU provider has no fp16 kernels, so the
fp16 graph runs through casts and is *slower* than fp32 here; it exists for accuracy checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _ensure(args: argparse.Namespace) -> dict[str, Path]:
    from icnet_deploy import build_engine, export

    out = Path(args.out)
    paths = {"fp32": Path(args.onnx) if args.onnx else out / "icnet.onnx",
             "int8": Path(args.int8[0]) if args.int8 else out / "icnet_int8.onnx",
             "fp16": Path(args.fp16) if args.fp16 else out / "icnet_fp16.onnx"}
    if not paths["fp32"].exists():
        print(f"exporting {paths['fp32']} …", file=sys.stderr)
        export(args.checkpoint, paths["fp32"], height=1024, width=2048, verify=False)
    for precision in ("int8", "fp16"):
        if not paths[precision].exists() and precision not in args.skip:
            print(f"building {paths[precision]} …", file=sys.stderr)
            t = time.perf_counter()
            build_engine(paths["fp32"], paths[precision], precision=precision, calib=args.calib,
                         target_agreement=args.target_agreement if precision == "int8" else None)
            print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr)
    paths = {k: v for k, v in paths.items() if k not in args.skip}
    for i, extra in enumerate((args.int8 or [])[1:], 2):
        paths[f"int8_{i}"] = Path(extra)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", help="fp32 ONNX export (default: export the shipped checkpoint)")
    parser.add_argument("--int8", action="append", help="INT8 QDQ engine(s) (repeatable; default: build one)")
    parser.add_argument("--fp16", help="FP16 engine (default: build one)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["int8", "fp16"], help="leave these out")
    parser.add_argument("--checkpoint", help="eager weights (default: the engines' own checkpoint / the shipped one)")
    parser.add_argument("--calib", help="calibration folder when building INT8 (default: calib/)")
    parser.add_argument("--target-agreement", type=float, default=None, help="INT8 sensitivity search target, agreement within δ (%%; default: the fixed rule)")
    parser.add_argument("--out", default="build/cpu_bench", help="where missing engines are written")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every engine (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    from icnet_deploy.bench import bench
    from icnet_deploy.manifest import read_manifest

    paths = _ensure(args)
    order = [paths["fp32"]] + [v for k, v in paths.items() if k.startswith("int8")] + ([paths["fp16"]] if "fp16" in paths else [])
    report = bench(order, size=(1024, 2048), iters=args.iters, warmup=1, threads=args.threads,
                   checkpoint=args.checkpoint, memory=False, end_to_end=False,
                   baseline=paths["fp32"])
    rows = report.engines  # eager first, then the engines in `order`
    print(f"1024×2048, batch 1, {args.iters} interleaved calls each after 1 warm-up; threads "
          f"{args.threads or 'default'}; load average {report.environment.get('loadavg_before', '?')} → "
          f"{report.environment.get('loadavg_after', '?')}")
    print(f"{'engine':28s} {'p50 ms':>9s} {'min ms':>9s} {'vs eager':>9s} {'vs ORT fp32':>12s} {'per round (IQR)':>17s}"
          "  build-time parity")
    summary = []
    for row, spec in zip(rows, ["eager"] + [str(p) for p in order]):
        c = row["compute"]
        parity = ""
        if spec != "eager":
            m = read_manifest(spec, verify=False)
            sets = (m.details.get("parity") or {}).get("sets") or []
            parity = "  ".join(
                f"{s['set']} {s['agreement_pct']:.2f}% (within δ {s['agreement_within_delta_pct']:.2f}%)"
                + (f" (mIoU {-s['ground_truth']['miou_drop']:+.2f})" if s.get("ground_truth") else "")
                for s in sets)
        name = row["name"] if spec == "eager" else f"{row['name']} ({read_manifest(spec, verify=False).precision})"
        # vs ORT fp32 round by round too: it and this engine ran in the same interleaved rounds
        vs_eager, vs_ort = row["vs_eager"]["compute_speedup"], row["vs_baseline"]["compute_speedup"]
        rounds = row["vs_baseline"]["compute_speedup_paired"]
        spread = f"{rounds['p25']:.2f}–{rounds['p75']:.2f}×" if rounds else "—"
        print(f"{name:28s} {c['p50_ms']:9.1f} {c['min_ms']:9.1f} {vs_eager:8.2f}× {vs_ort:11.2f}× {spread:>17s}  {parity}")
        summary.append({"engine": name, "p50_ms": c["p50_ms"], "min_ms": c["min_ms"], "vs_eager": vs_eager,
                        "vs_ort_fp32": vs_ort, "vs_ort_fp32_per_round": rounds, "parity": parity})
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "report": report.to_dict()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())
