#!/usr/bin/env python3
"""Score checkpoints on many unseen generated sets (12 scenes each), the way the model card does.

    python benchmarks/unseen_sets.py --ckpt shipped=models/icnet_r50_half_synthetic.safetensors \\
        --sets 900000:10 1000000:2 --state sets.npz

A set ``S`` is the scenes ``S … S+11``, exactly what ``icnet-deploy synth --count 12 --seed S``
writes and ``icnet-deploy evaluate`` scores (this script's number for a set equals the CLI's);
``START:COUNT[:STRIDE]`` names COUNT sets STRIDE apart (default 10000). Each checkpoint is loaded
once and run through ``TorchRunner`` + ``infer.predict``; every scene is generated once and shown
to all checkpoints. The confusion matrices go to ``--state`` after each set (``fileio.atomic_path``), so an
interrupted run resumes (with each checkpoint's sha256, so a name reused for other weights is
refused), and ``--report`` prints the summary of a state file without scoring. Bad arguments or
files: one line naming the problem, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path


def parse_sets(specs: list[str]) -> list[int]:
    seeds: list[int] = []
    for spec in specs:
        try:
            parts = [int(x) for x in spec.split(":")]
        except ValueError:
            parts = []
        if not 2 <= len(parts) <= 3 or parts[0] < 0 or parts[1] < 1 or (len(parts) == 3 and parts[2] < 1):
            raise ValueError(f"--sets: expected START:COUNT[:STRIDE] (integers, COUNT and STRIDE ≥ 1), got {spec!r}")
        start, count, stride = parts[0], parts[1], parts[2] if len(parts) == 3 else 10000
        seeds += [start + i * stride for i in range(count)]
    return sorted(set(seeds))


def load_state(path: Path | None) -> dict:
    import numpy as np

    if not path or not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return dict(data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a state file of this script ({exc})".splitlines()[0]) from None


def set_keys(state: dict, name: str) -> dict[int, object]:
    """The confusion matrices of one checkpoint, by set seed (the sha256 entry left out)."""
    return {int(k.split("/")[1]): v for k, v in state.items() if k.split("/")[0] == name and k.split("/")[1].isdigit()}


def save_state(path: Path | None, state: dict) -> None:
    import numpy as np

    from icnet_deploy.fileio import atomic_path

    if path is None:
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **state)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", nargs="+", default=[], metavar="NAME=PATH", help="checkpoints to score")
    ap.add_argument("--sets", nargs="+", metavar="START:COUNT[:STRIDE]",
                    help="sets to score (default 900000:10, the model card's ten) or to report (default: all in --state)")
    ap.add_argument("--scenes", type=int, default=12, help="scenes per set (the done-when uses 12)")
    ap.add_argument("--size", default="1024x2048", help="scene size HxW")
    ap.add_argument("--state", type=Path, help="npz of confusion matrices: resume from it, save to it")
    ap.add_argument("--report", action="store_true", help="only summarise --state (all of it, or --sets)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--json", action="store_true", help="summary as JSON on stdout")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from icnet_deploy.evaluate import generated_set_confusion, summarise_sets

    console = Console(stderr=True)
    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size: expected HxW, got {args.size!r}")
    try:
        seeds = parse_sets(args.sets or ["900000:10"])
        state = load_state(args.state)
    except ValueError as exc:
        ap.error(str(exc))
    specs = [spec.partition("=") for spec in args.ckpt]
    for spec, (name, _, path) in zip(args.ckpt, specs, strict=True):
        if not name or not path or "/" in name:
            ap.error(f"--ckpt: expected NAME=PATH with a NAME without '/', got {spec!r}")
    names = [name for name, _, _ in specs]
    if args.report and not args.state:
        ap.error("--report needs --state")
    if not args.report:
        if not args.ckpt:
            ap.error("--ckpt NAME=PATH is needed to score (or --report --state F)")
        import numpy as np
        import torch

        from icnet_deploy.backends.torch_eager import TorchRunner
        from icnet_deploy.errors import IcnetDeployError
        from icnet_deploy.model.weights import load_model

        if args.threads:
            torch.set_num_threads(args.threads)
        runners = {}
        for name, _, path in specs:
            try:
                model = load_model(path)
            except (IcnetDeployError, OSError) as exc:
                ap.error(str(exc).splitlines()[0])
            sha = str(model.checkpoint_info.get("sha256"))
            known = state.get(f"{name}/sha256")
            if known is not None and str(known) != sha:
                ap.error(f"{args.state}: holds {name!r} for other weights (sha256 {str(known)[:8]}…, "
                         f"{path} is {sha[:8]}…); use another name or state file")
            state[f"{name}/sha256"] = np.array(sha)
            runners[name] = TorchRunner(model=model, threads=args.threads or None).activate()
        for seed in seeds:
            todo = {n: r for n, r in runners.items() if f"{n}/{seed}" not in state}
            if not todo:
                continue
            start = time.perf_counter()
            predictors = {n: (lambda image, r=r: r.predict([image])[0]) for n, r in todo.items()}
            matrices = generated_set_confusion(predictors, seed, args.scenes, (height, width))
            for n, m in matrices.items():
                state[f"{n}/{seed}"] = m.matrix
            save_state(args.state, state)
            line = "  ".join(f"{n} {m.scores().miou:.2f}" for n, m in matrices.items())
            console.print(f"set {seed}: {line}  ({time.perf_counter() - start:.0f} s)")

    names = names or sorted({k.split("/")[0] for k in state})
    summaries = {}
    for n in names:
        have = set_keys(state, n)
        if not args.report or args.sets:
            have = {s: v for s, v in have.items() if s in seeds}
        if have:
            summaries[n] = summarise_sets(have)
    table = Table(title=f"unseen generated sets ({args.scenes} scenes each, {height}×{width})")
    for col in ("checkpoint", "sets", "mean mIoU %", "sets ≥ 75%", "pooled %", "min %", "below 75%"):
        table.add_column(col, justify="left" if col in ("checkpoint", "below 75%") else "right")
    for n, s in summaries.items():
        below = ", ".join(f"{k} {v:.2f}" for k, v in s["below"].items()) or "—"
        table.add_row(n, str(s["sets"]), f"{s['mean']:.2f}", f"{s['at_least']} of {s['sets']}", f"{s['pooled']:.2f}",
                      f"{s['min']:.2f}", below)
    console.print(table)
    if args.json:
        print(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
