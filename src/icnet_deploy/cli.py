"""The ``icnet-deploy`` command line: a thin typer layer over the library.

Each command parses its options, calls one library function and prints. Results go to
stdout as JSON with ``--json``; tables, progress and messages go to stderr. Exit codes:
0 success, 1 a check that failed (parity, thresholds), 2 bad usage or bad input.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import IcnetDeployError, ParityError

console = Console(stderr=True)
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    help="ICNet from a PyTorch checkpoint to verified, benchmarked FP16/INT8 engines.",
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """ICNet from a PyTorch checkpoint to verified, benchmarked FP16/INT8 engines."""
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _cli_errors(func: Callable) -> Callable:
    """Map library exceptions to one clear line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ParityError as exc:
            console.print(f"[bold red]check failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except IcnetDeployError as exc:  # one line: no wrapping at the terminal width, no markup in messages
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' (or 1024×2048, 1024,2048) -> (1024, 2048)."""
    for sep in ("x", "X", "×", ","):
        if sep in text:
            parts = text.split(sep)
            break
    else:
        parts = [text]
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size like 1024x2048") from None
    if h < 64 or w < 64:
        raise typer.BadParameter(f"{text!r}: height and width must be at least 64")
    return h, w


def emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _load_model_quietly(checkpoint: Optional[Path], config: Optional[str] = None):
    from .model.weights import load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(checkpoint, config)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    return model


@app.command()
@_cli_errors
def info(
    checkpoint: Optional[Path] = typer.Option(None, help="Weights (.safetensors or .pth); default: the shipped checkpoint."),
    config: Optional[str] = typer.Option(None, help="Model config name (icnet_r50_half, icnet_r50); default: the checkpoint's."),
    size: str = typer.Option("1024x2048", help="Input size HxW for GFLOPs and branch sizes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Describe a model: config, parameters, GFLOPs, branch sizes, provenance.

    Example: `icnet-deploy info --size 1025x2049`
    """
    from .model.summary import model_summary

    h, w = parse_size(size)
    summary = model_summary(_load_model_quietly(checkpoint, config), h, w)
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"ICNet · {summary['config']['name']}", show_header=False)
    table.add_row("checkpoint", str(summary["checkpoint"] or "none (random weights)"))
    if summary["sha256"]:
        table.add_row("sha256", summary["sha256"])
    table.add_row("classes", str(summary["config"]["num_classes"]))
    table.add_row("parameters", f"{summary['parameters'] / 1e6:.2f} M ({summary['inference_parameters'] / 1e6:.2f} M at inference)")
    table.add_row(f"compute at {h}×{w}", f"{summary['gflops']:.1f} GFLOPs ({summary['gmacs']:.1f} GMACs)")
    for name, (bh, bw) in summary["branches"].items():
        table.add_row(f"size {name}", f"{bh}×{bw}")
    table.add_row("normalisation", f"mean {summary['config']['mean']} std {summary['config']['std']} (RGB, 0..255)")
    prov = summary["provenance"]
    if prov:
        table.add_row("provenance", json.dumps(prov)[:300])
    console.print(table)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )


@app.command()
@_cli_errors
def synth(
    out: Path = typer.Option(..., "--out", help="Dataset root to write (Cityscapes layout)."),
    count: int = typer.Option(16, min=1, help="Number of scenes."),
    seed: int = typer.Option(0, help="Seed of the first scene; scene i uses seed+i."),
    size: str = typer.Option("1024x2048", help="Scene size HxW."),
    split: str = typer.Option("val", help="Split folder name (train, val, test)."),
    images_only: bool = typer.Option(False, "--images-only", help="Write plain JPEGs without labels (calibration sets)."),
    quality: int = typer.Option(95, min=50, max=100, help="JPEG quality with --images-only."),
) -> None:
    """Generate procedural street scenes with pixel-exact Cityscapes labels.

    Example: `icnet-deploy synth --out data/val --count 12 --seed 900000`
    (calibration images: `icnet-deploy synth --out calib --count 32 --seed 700000 --images-only`)
    """
    from .data.synthetic import write_dataset, write_images

    h, w = parse_size(size)
    with _progress() as bar:
        task = bar.add_task("synth", total=count, status="")
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        if images_only:
            paths = write_images(out, count, seed, (h, w), quality=quality, progress=advance)
        else:
            paths = write_dataset(out, count, seed, (h, w), split=split, progress=advance)
    console.print(f"wrote {len(paths)} scenes ({h}×{w}, seeds {seed}..{seed + count - 1}) to {out}")


@app.command()
@_cli_errors
def train(
    data: Path = typer.Option(..., help="Dataset root with leftImg8bit/train (and val) in the Cityscapes layout."),
    out: Path = typer.Option(..., help="Checkpoint to write (.safetensors); the resume state sits beside it."),
    config: str = typer.Option("icnet_r50_half", help="Model config."),
    iters: int = typer.Option(6000, min=1, help="Training iterations."),
    batch: int = typer.Option(8, min=1, help="Crops per iteration."),
    crop: str = typer.Option("256x512", help="Crop size HxW."),
    lr: float = typer.Option(2e-3, help="Peak AdamW learning rate (warm-up, then poly decay)."),
    val_every: int = typer.Option(500, min=1, help="Validate (full resolution) every N iterations."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: int = typer.Option(0, help="torch threads (0 = default)."),
    init: Optional[Path] = typer.Option(None, help="Start from these weights (fine-tuning)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the saved state beside --out."),
) -> None:
    """Train ICNet with cascade label guidance (AdamW, poly decay, rare-class crops).

    Example: `icnet-deploy train --data data/synth --out models/mine.safetensors --iters 6000 --resume`
    """
    from .train import TrainConfig, train as run_training

    cfg = TrainConfig(
        data=str(data), out=str(out), config=config, iters=iters, batch=batch, crop=parse_size(crop), lr=lr,
        val_every=val_every, seed=seed, threads=threads, init=str(init) if init else None,
    )
    with _progress() as bar:
        task = bar.add_task("train", total=iters, status="")
        last_val: dict = {}

        def update(it: int, stats: dict) -> None:
            if "val_miou" in stats:
                last_val["miou"] = stats["val_miou"]
            val = f" val mIoU {last_val['miou']:.1f}%" if last_val else ""
            bar.update(task, completed=it, status=f"loss {stats['loss']:.3f} {stats['sec_per_iter']:.2f}s/it{val}")

        summary = run_training(cfg, resume=resume, progress=update)
    console.print(f"checkpoint: {summary['checkpoint']} ({summary['train_seconds']} s of training)")


@app.command()
@_cli_errors
def evaluate(
    data: Path = typer.Option(..., help="Dataset root (Cityscapes layout, real or synthetic)."),
    split: str = typer.Option("val", help="Split to evaluate."),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights; default: the shipped checkpoint."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N images."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """mIoU, per-class IoU and pixel accuracy (official protocol: ignored pixels excluded).

    Example: `icnet-deploy synth --out val --count 12 --seed 900000 && icnet-deploy evaluate --data val --json`
    """
    import numpy as np
    import torch

    from .data.folders import CityscapesDataset
    from .data.labels import CLASS_NAMES
    from .data.transforms import preprocess
    from .evaluate import evaluate_predictions

    model = _load_model_quietly(checkpoint)
    dataset = CityscapesDataset(data, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))

    def predict(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(preprocess(image, model.config.mean, model.config.std))
            return model(x).argmax(1)[0].numpy().astype(np.uint8)

    with _progress() as bar:
        task = bar.add_task("evaluate", total=n, status="")
        scores = evaluate_predictions(predict, (dataset[i] for i in range(n)), model.config.num_classes,
                                      progress=lambda k: bar.advance(task, k))
    result = scores.to_dict() | {"images": n, "checkpoint": model.checkpoint_info.get("path")}
    if as_json:
        emit_json(result)
    table = Table(title=f"mIoU {scores.miou:.2f}%  ·  pixel accuracy {scores.pixel_accuracy:.2f}%  ·  {n} images")
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name in CLASS_NAMES:
        iou = scores.per_class.get(name)
        table.add_row(name, "—" if iou is None else f"{iou:.1f}")
    console.print(table)


def _parity_table(parity: dict, title: str) -> Table:
    verdict = "[green]passed[/]" if parity["passed"] else "[bold red]FAILED[/]"
    table = Table(title=f"{title}: ONNX Runtime ({parity['provider']}) vs eager PyTorch — {verdict}")
    for name, justify in (("image", "left"), ("kind", "left"), ("size", "right"), ("max |Δlogit|", "right"),
                          ("mean |Δlogit|", "right"), ("agreement %", "right")):
        table.add_column(name, justify=justify)
    for row in parity["images"]:
        table.add_row(row["image"], row["kind"], f"{row['size'][0]}×{row['size'][1]}", f"{row['max_abs_logit_error']:.2e}",
                      f"{row['mean_abs_logit_error']:.2e}", f"{row['agreement_pct']:.4f}")
    table.caption = (
        f"worst agreement {parity['agreement_pct']:.4f}% (min {parity['min_agreement_pct']}%) · max |Δlogit| "
        f"{parity['max_abs_logit_error']:.2e} (bound {parity['logit_error_bound']:.2e}; peak |logit| "
        f"{parity['peak_abs_logit']:.3g}) · {parity['seconds']} s"
    )
    return table


@app.command("export")
@_cli_errors
def export_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write; its manifest goes to OUTPUT.json beside it."),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights (.safetensors or .pth); default: the shipped checkpoint."),
    height: int = typer.Option(1024, help="Input height (the tracing height with --dynamic); at least 64."),
    width: int = typer.Option(2048, help="Input width (the tracing width with --dynamic); at least 64."),
    batch: int = typer.Option(1, help="Batch size of a static graph."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Dynamic batch, height and width (verified at two sizes)."),
    opset: int = typer.Option(17, help="ONNX opset, 17..20."),
    outputs: str = typer.Option("logits", help="logits (N×C×H×W float32) or labels (N×H×W uint8: ArgMax in the graph)."),
    verify_images: int = typer.Option(4, help="Images to verify on: generated scenes + real photos (at least one)."),
    min_agreement: float = typer.Option(99.99, help="Minimum pixel agreement with eager PyTorch, percent (worst image)."),
    max_logit_error: float = typer.Option(1e-3, help="Maximum |Δlogit| vs eager PyTorch (grows with logits beyond ±100)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the ONNX Runtime vs eager verification."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and the parity result as JSON on stdout."),
) -> None:
    """Export to ONNX (BN folded, simplified, checked), verify it against eager PyTorch, write a manifest.

    Example: `icnet-deploy export --output build/icnet.onnx` (shipped checkpoint, 1024×2048, fp32 logits);
    `icnet-deploy export --dynamic --outputs labels --height 512 --width 1024 -o build/icnet_labels.onnx`
    """
    import time

    from .export import export as run_export
    from .manifest import manifest_path

    start = time.perf_counter()
    try:
        with console.status("exporting") as status, warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)  # e.g. "no shipped checkpoint: random weights", shown at once
            warnings.showwarning = lambda message, *_a, **_k: console.print(f"[yellow]warning:[/] {message}")
            manifest = run_export(
                checkpoint, output, height=height, width=width, batch=batch, dynamic=dynamic, opset=opset, outputs=outputs,
                verify=not no_verify, verify_images=verify_images, min_agreement=min_agreement,
                max_logit_error=max_logit_error, progress=lambda msg: status.update(msg),
            )
    except ParityError as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            console.print(_parity_table(report.to_dict(), str(output)))
        raise
    seconds = round(time.perf_counter() - start, 1)
    parity = manifest.details.get("export_parity")
    if parity:
        console.print(_parity_table(parity, str(output)))
    size_mb = output.stat().st_size / 1e6
    console.print(f"wrote {output} ({size_mb:.1f} MB, opset {opset}, {manifest.output_kind} {manifest.output_dtype}"
                  f"{', dynamic' if dynamic else ''}) and {manifest_path(output).name} in {seconds} s", highlight=False)
    if as_json:
        emit_json({"output": str(output), "manifest_path": str(manifest_path(output)), "seconds": seconds,
                   "size_bytes": output.stat().st_size, "parity": parity, "manifest": manifest.to_dict()})


def _not_yet(command: str, issue: str) -> None:
    console.print(f"[bold red]error:[/] `icnet-deploy {command}` is not available yet ({issue} has not landed)")
    raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
