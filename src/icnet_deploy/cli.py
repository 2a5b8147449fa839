"""The ``icnet-deploy`` command line: a thin typer layer over the library.

Each command parses its options, calls one library function and prints. Results go to
stdout as JSON with ``--json``; tables, progress and messages go to stderr. Exit codes:
0 success, 1 a check that failed (parity, thresholds), 2 bad usage or bad input — every error,
foreseen or not, is one line on stderr (``--debug`` adds the traceback) and, with ``--json``,
``{"error": ..., "exit_code": ...}`` on stdout. Progress (``progress.py``): a live bar on a
terminal, plain throttled lines in logs; ``--quiet`` / ``--verbose``.
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
from typer.exceptions import TyperException

from .build import DEFAULT_TARGET_AGREEMENT as _DEFAULT_TARGET_AGREEMENT
from .check import HELDOUT_COUNT as _HELDOUT_COUNT
from .data.folders import DEFAULT_MAX_PIXELS as _DEFAULT_MAX_PIXELS
from .range_learning import RANGE_LEARNING_ITERATIONS as _RANGE_ITERATIONS
from .errors import DataError, IcnetDeployError, ParityError
from .fileio import refuse_overwriting
from .manifest import manifest_path
from .progress import Progress, level as progress_level, set_level, stages, status as progress_status


def _console() -> Console:
    """stderr console; logs and CI (not a terminal) get 160 columns instead of Rich's 80, so the
    wide tables (bench, check) stay readable there. COLUMNS still wins when set."""
    import os

    if sys.stderr.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=True)
    return Console(stderr=True, width=160)


console = _console()
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    help="ICNet from a PyTorch checkpoint to verified, benchmarked FP16/INT8 engines.",
)


GLOBAL_FLAGS = ("--quiet", "--verbose", "--debug")
_session = {"debug": False, "json_emitted": False}


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output (results, warnings and errors still print). "
                               "Like --verbose and --debug, it may also follow the command."),
    verbose: bool = typer.Option(False, "--verbose", help="Progress on every update (off a terminal: a plain line each, "
                                 "instead of one per 10 s)."),
    debug: bool = typer.Option(False, "--debug", help="On an error, also print the Python traceback."),
) -> None:
    """ICNet from a PyTorch checkpoint to verified, benchmarked FP16/INT8 engines."""
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if quiet and verbose:
        raise typer.BadParameter("give --quiet or --verbose, not both")
    set_level("quiet" if quiet else "verbose" if verbose else "normal")
    _session["debug"] = debug


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(code: int, label: str, exc: BaseException, as_json: bool, unexpected: bool = False) -> None:
    """Print ``label: message`` as one line (the traceback first with --debug), the JSON error with
    --json when the command printed no JSON yet, and exit with ``code``."""
    message = _one_line(str(exc)) or type(exc).__name__
    if unexpected:
        message = f"unexpected {type(exc).__name__}: {message} (a bug, or an input nothing checked; --debug shows where)"
    if _session["debug"]:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    console.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if as_json and not _session["json_emitted"]:
        emit_json({"error": message, "exit_code": code})
    raise typer.Exit(code)


def _cli_errors(func: Callable) -> Callable:
    """Map every exception to one clear line and an exit code: 1 for a failed check, 2 for the rest."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        _session["json_emitted"] = False
        try:
            return func(*args, **kwargs)
        except ParityError as exc:
            _fail(1, "check failed", exc, as_json)
        except IcnetDeployError as exc:  # one line: no wrapping at the terminal width, no markup in messages
            _fail(2, "error", exc, as_json)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except ModuleNotFoundError as exc:  # an optional framework (torch, ray, ...) this command needs
            from .optional import EXTRAS, missing_extra_message

            if not exc.name or exc.name.split(".")[0] not in EXTRAS:
                _fail(2, "error", exc, as_json, unexpected=True)
            _fail(2, "error", IcnetDeployError(missing_extra_message(exc.name, f"`{func.__name__.removesuffix('_cmd')}`")),
                  as_json)
        except TyperException as exc:  # e.g. typer.BadParameter from a command's own parsing: typer prints it
            if as_json and not _session["json_emitted"]:
                emit_json({"error": _one_line(exc.format_message()), "exit_code": exc.exit_code})
            raise
        except Exception as exc:  # noqa: BLE001 - not foreseen: still one line and exit 2, never a traceback
            _fail(2, "error", exc, as_json, unexpected=True)

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


def parse_scale_range(text: str) -> tuple[float, float]:
    """'0.6-1.4' (or 0.6,1.4) -> (0.6, 1.4): the random rescale range of training crops."""
    parts = text.replace(",", "-").split("-")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"--scale {text!r} is not a range like 0.6-1.4") from None
    if not 0.05 <= lo <= hi <= 8.0:
        raise typer.BadParameter(f"--scale {text!r}: need 0.05 <= low <= high <= 8")
    return lo, hi


def emit_json(payload: dict) -> None:
    _session["json_emitted"] = True
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
    """Describe a model: config, parameters, GFLOPs, branch sizes, provenance, and which implementation
    of the UpsampleArgmax op (logits → labels) serves the label path here.

    Example: `icnet-deploy info --size 1025x2049`
    """
    from .machine import cpu_identity, describe_cpu
    from .model.summary import model_summary
    from .plugins import cuda_available, label_path, label_path_text

    h, w = parse_size(size)
    summary = model_summary(_load_model_quietly(checkpoint, config), h, w) | {"cpu": cpu_identity()}
    cuda, why_not = cuda_available()
    summary["label_path"] = {"cpu": label_path(), "cuda": "UpsampleArgmax Triton kernel" if cuda else f"none: {why_not}"}
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
    prov = dict(summary["provenance"] or {})
    adjustment = prov.pop("logit_adjustment", None)
    if adjustment:  # its own row: the weight list would push it past the provenance row's cut
        table.add_row("logit adjustment", f"classifier bias − {adjustment['tau']:g}·log w (class weights from "
                      f"{adjustment['class_weights_from']}; made from sha256 {adjustment['source']['sha256'][:12]}…)")
    prov.pop("class_weights", None)  # 19 numbers; in --json
    if prov:
        table.add_row("provenance", json.dumps(prov)[:300])
    table.add_row("this CPU", f"{describe_cpu(summary['cpu'])}; {', '.join(summary['cpu']['isa']) or 'no SIMD flags read'}")
    table.add_row("label path (CPU)", label_path_text(summary["label_path"]["cpu"]))
    table.add_row("label path (CUDA)", summary["label_path"]["cuda"])
    console.print(table)


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
    train_prob: float = typer.Option(0.1, "--train-prob", min=0.0, max=1.0,
                                     help="Training data only: probability of a tram track (and mostly a tram)."),
    heavy: float = typer.Option(1.0, min=0.0, max=2.5, help="Training data only: multiplier on truck and bus rates."),
    two_wheelers: float = typer.Option(1.0, "--two-wheelers", min=0.0, max=3.0,
                                       help="Training data only: multiplier on motorcycles and cyclists."),
    trucks: float = typer.Option(1.0, min=0.0, max=3.0,
                                 help="Training data only: a further multiplier on the truck rate alone."),
) -> None:
    """Generate procedural street scenes with pixel-exact Cityscapes labels.

    Example: `icnet-deploy synth --out data/val --count 12 --seed 900000`
    (calibration images: `icnet-deploy synth --out calib --count 32 --seed 700000 --images-only`;
    training scenes with more of the rare vehicles: `icnet-deploy synth --out data --split train
    --count 400 --seed 8800 --heavy 2 --two-wheelers 2`, written to the city folder `synthmix`)
    """
    from .data.synthetic import SceneMix, write_dataset, write_images

    h, w = parse_size(size)
    mix = SceneMix(train=train_prob, heavy=heavy, two_wheelers=two_wheelers, trucks=trucks)
    if images_only and not mix.is_default:
        raise DataError("--train-prob/--heavy/--two-wheelers/--trucks are for labelled training scenes, not --images-only")
    mix.require_split(split)  # before the progress bar: one line, nothing written
    with Progress(console, "synth") as bar:
        task = bar.add_task("scenes", total=count)
        advance = task.advance
        if images_only:
            paths = write_images(out, count, seed, (h, w), quality=quality, progress=advance)
        else:
            paths = write_dataset(out, count, seed, (h, w), split=split, progress=advance, mix=mix)
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
    scale: str = typer.Option("0.6-1.4", help="Random rescale of the scene before cropping, LOW-HIGH "
                              "(log-uniform; 1.0 = the object scale of full-resolution inference)."),
    lr: float = typer.Option(2e-3, help="Peak AdamW learning rate (warm-up, then poly decay)."),
    val_every: int = typer.Option(500, min=1, help="Validate (full resolution) every N iterations."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: int = typer.Option(0, help="torch threads (0 = default)."),
    init: Optional[Path] = typer.Option(None, help="Start from these weights (fine-tuning)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the saved state beside --out."),
    decode_cache: Optional[Path] = typer.Option(
        None, help="Decode the training scenes once into this folder (.npy, ~8.4 MB per 1024×2048 scene) and "
        "memory-map them: for datasets larger than RAM; restarts skip the decoding."),
    ema: float = typer.Option(0.0, min=0.0, max=0.99999, help="Save an exponential moving average of the weights "
                              "with this decay (e.g. 0.999; 0 = off); the raw weights go to OUT.raw.safetensors."),
) -> None:
    """Train ICNet with cascade label guidance (AdamW, poly decay, rare-class crops).

    Example: `icnet-deploy train --data data/synth --out models/mine.safetensors --iters 6000 --resume`
    """
    from .train import TrainConfig, train as run_training

    cfg = TrainConfig(
        data=str(data), out=str(out), config=config, iters=iters, batch=batch, crop=parse_size(crop),
        scale=parse_scale_range(scale), lr=lr, val_every=val_every, seed=seed, threads=threads,
        init=str(init) if init else None, ema=ema, decode_cache=str(decode_cache) if decode_cache else None,
    )
    with Progress(console, "train") as bar:
        task = bar.add_task("iterations", total=iters)
        last_val: dict = {}

        def update(it: int, stats: dict) -> None:
            if "val_miou" in stats:
                last_val["miou"] = stats["val_miou"]
            val = f" val mIoU {last_val['miou']:.1f}%" if last_val else ""
            task.update(it, status=f"loss {stats['loss']:.3f} {stats['sec_per_iter']:.2f}s/it{val}")

        summary = run_training(cfg, resume=resume, progress=update)
    console.print(f"checkpoint: {summary['checkpoint']} ({summary['train_seconds']} s of training)")


@app.command()
@_cli_errors
def average(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more checkpoints of one config (.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Averaged checkpoint to write (.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the provenance written into it as JSON on stdout."),
) -> None:
    """Average checkpoints (weights and BatchNorm statistics, equal shares): a "model soup" of runs
    that share a start. The shipped checkpoint is one (models/README.md).

    Example: `icnet-deploy average run_a.safetensors run_b.safetensors --out models/soup.safetensors`
    """
    from .model.weights import average_checkpoints

    provenance = average_checkpoints(list(checkpoints), out)
    if as_json:
        emit_json({"checkpoint": str(out)} | provenance)
    console.print(f"wrote {out}: the average of {len(checkpoints)} checkpoints")


@app.command("adjust-logits")
@_cli_errors
def adjust_logits(
    checkpoint: Path = typer.Argument(..., help="Trained checkpoint (.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Adjusted checkpoint to write (.safetensors)."),
    data: Optional[Path] = typer.Option(None, help="Its training data (Cityscapes layout): the class weights are "
                                        "computed from the train split's labels as `train` did. Default: the "
                                        "weights the checkpoint's provenance records."),
    tau: float = typer.Option(1.0, min=0.0, max=1.0, help="Share of the class weighting to remove "
                              "(1 = all of it: the unweighted posterior)."),
    as_json: bool = typer.Option(False, "--json", help="Print the adjustment written into it as JSON on stdout."),
) -> None:
    """Remove the class weighting of training from the classifier's bias (post-hoc logit adjustment).

    Weighted cross-entropy makes each logit learn + log w_c, so rare classes win near ties: stray
    false-positive pixels of a class absent from an image. This subtracts tau·log w_c from the final
    classifier's bias; nothing else changes. The shipped checkpoint is adjusted (models/README.md).

    Example: `icnet-deploy adjust-logits work/ckpt/icnet.safetensors --data work/synth --out models/adjusted.safetensors`
    """
    from .model.weights import adjust_logits as run_adjust

    weights = None
    if data is not None:
        from .train import class_weights_of

        with Progress(console, "adjust-logits") as bar:
            task = bar.add_task("label counts")
            weights = class_weights_of(data, progress=lambda done, total: task.update(done, total=total))
    provenance = run_adjust(checkpoint, out, weights, tau, weights_source=f"labels of {data}/train" if data else "given")
    adjustment = provenance["logit_adjustment"]
    if as_json:
        emit_json({"checkpoint": str(out)} | adjustment)
    console.print(f"wrote {out}: classifier bias − {tau:g}·log w (class weights from {adjustment['class_weights_from']})")


@app.command()
@_cli_errors
def evaluate(
    data: Path = typer.Option(..., help="Dataset root (Cityscapes layout, real or synthetic)."),
    split: str = typer.Option("val", help="Split to evaluate."),
    engine: Optional[str] = typer.Option(None, "--engine", "-e", help="Engine to score (.onnx fp32/fp16/int8, .engine, .torch) or `eager`; default: eager PyTorch on --checkpoint."),
    checkpoint: Optional[Path] = typer.Option(None, help="Eager weights; default: the shipped checkpoint."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N images."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime provider: cpu, cuda or tensorrt."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """mIoU, per-class IoU and pixel accuracy of eager or any engine (official protocol: ignored pixels excluded).

    Example: `icnet-deploy synth --out val --count 12 --seed 900000 && icnet-deploy evaluate --data val --engine build/icnet_int8.onnx --json`
    """
    from .backends.loader import load
    from .data.folders import CityscapesDataset
    from .data.labels import CLASS_NAMES
    from .evaluate import evaluate_predictions
    from .infer import predict

    if engine is not None and checkpoint is not None:
        raise IcnetDeployError("give --engine or --checkpoint, not both (an engine's manifest names its checkpoint)")
    dataset = CityscapesDataset(data, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    # Through the Runner and infer.predict: the same preprocessing and label path as infer.
    runner = load(engine if engine is not None else checkpoint, device=device, provider=provider, threads=threads)
    with _ConsoleWarnings(), runner, Progress(console, "evaluate") as bar:
        task = bar.add_task("images", total=n)
        scores = evaluate_predictions(lambda image: predict(runner, [image])[0], (dataset[i] for i in range(n)),
                                      runner.num_classes, progress=task.advance)
        described = runner.describe()
        weights = (runner.manifest.checkpoint_path if runner.manifest is not None
                   else getattr(runner, "checkpoint_info", {}).get("path"))
    result = scores.to_dict() | {"images": n, "engine": described, "checkpoint": weights}
    if as_json:
        emit_json(result)
    table = Table(title=f"{escape(str(engine or checkpoint or 'eager'))}: mIoU {scores.miou:.2f}%  ·  pixel accuracy "
                        f"{scores.pixel_accuracy:.2f}%  ·  {n} images")
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
    plugin: bool = typer.Option(False, "--plugin", help="With --outputs labels: end the graph in the UpsampleArgmax op (a TensorRT plugin; no full-size logits). For build-engine --backend tensorrt; ONNX Runtime cannot run it."),
    verify_images: int = typer.Option(4, help="Images to verify on: generated scenes + real photos (at least one)."),
    min_agreement: float = typer.Option(99.99, help="Minimum pixel agreement with eager PyTorch, percent (worst image)."),
    max_logit_error: float = typer.Option(1e-3, help="Maximum |Δlogit| vs eager PyTorch (grows with logits beyond ±100)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the ONNX Runtime vs eager verification."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and the parity result as JSON on stdout."),
) -> None:
    """Export to ONNX (BN folded, simplified, checked), verify it against eager PyTorch, write a manifest.

    Example: `icnet-deploy export --output build/icnet.onnx` (shipped checkpoint, 1024×2048, fp32 logits);
    `icnet-deploy export --dynamic --outputs labels --height 512 --width 1024 -o build/icnet_labels.onnx`;
    `icnet-deploy export --outputs labels --plugin -o build/icnet_plugin.onnx` (for TensorRT)
    """
    import time

    from .export import export as run_export

    start = time.perf_counter()
    try:
        with progress_status(console, "export", "exporting") as say, warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)  # e.g. "no shipped checkpoint: random weights", shown at once
            warnings.showwarning = lambda message, *_a, **_k: console.print(f"[yellow]warning:[/] {message}")
            manifest = run_export(
                checkpoint, output, height=height, width=width, batch=batch, dynamic=dynamic, opset=opset, outputs=outputs,
                verify=not no_verify, verify_images=verify_images, min_agreement=min_agreement,
                max_logit_error=max_logit_error, plugin=plugin, progress=say,
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


# --------------------------------------------------------------------------------------------
# runtime: infer, bench, check (issue 7)
# --------------------------------------------------------------------------------------------
class _ConsoleWarnings(warnings.catch_warnings):
    """Show library warnings (e.g. "no shipped checkpoint: random weights") as one console line each."""

    def __enter__(self):
        result = super().__enter__()
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_a, **_k: console.print(f"[yellow]warning:[/] {escape(str(message))}")
        return result


def _engine_label(desc: dict) -> str:
    return f"{desc.get('backend')} · {desc.get('provider')}"


def _auto_engine(folder: Path, device: str, provider: Optional[str], threads: Optional[int]) -> str:
    """``--engine auto``: the fastest engine here that meets parity (``compile.select_engine``); says why."""
    from .compile import engine_candidates, select_engine

    with _ConsoleWarnings(), progress_status(console, "--engine auto", "comparing candidates") as say:
        sel = select_engine(engine_candidates(folder, device=device), device=device, provider=provider, threads=threads,
                            progress=say)
    table = Table(title=f"--engine auto · candidates at {sel.size[0]}×{sel.size[1]} (eager fp32 and {folder}/)")
    for name, justify in (("engine", "left"), ("precision", "left"), ("agreement %", "right"), ("ms/image", "right"),
                          ("", "left")):
        table.add_column(name, justify=justify)
    for c in sel.candidates:
        table.add_row(c.spec or c.name, c.precision or "—", "—" if c.agreement_pct is None else f"{c.agreement_pct:.3f}",
                      "—" if c.ms_per_image is None else f"{c.ms_per_image:.1f}", escape(c.note))
    console.print(table)
    console.print(f"--engine auto picked [bold]{escape(sel.spec)}[/]: {escape(sel.reason)}", highlight=False, soft_wrap=True)
    return sel.spec


@app.command("infer")
@_cli_errors
def infer_cmd(
    source: str = typer.Argument(..., help="An image, a folder (searched recursively) or a quoted glob ('photos/**/*.jpg')."),
    engine: Optional[str] = typer.Option(None, "--engine", "-e", help="Engine (.onnx, …) or checkpoint; default: the shipped checkpoint, eager PyTorch. `auto`: the fastest that meets parity here (eager or one in --engines-dir)."),
    engines_dir: Path = typer.Option(Path("build"), "--engines-dir", help="Where `--engine auto` looks for engines."),
    output: Path = typer.Option(Path("infer_out"), "--output", "-o", help="Output folder; the input tree is mirrored under it."),
    batch: int = typer.Option(1, min=1, help="Images per engine call (engines with a static batch use theirs)."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Also write NAME_overlay.jpg (palette over the photo)."),
    allow_inside: bool = typer.Option(False, "--allow-inside", help="Allow an output folder inside the input folder."),
    max_pixels: int = typer.Option(_DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Skip (and name) images whose header declares more pixels than this, without decoding them."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime provider: cpu, cuda or tensorrt (default: by --device)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads of the engine (default: the framework's; with --ray: 1 per worker)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Distribute over a Ray cluster (the [ray] extra): `--ray` alone starts a local one; `--ray ADDRESS` joins one (auto, host:6379, ray://host:10001). Put it after the folder."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="With --ray: engine workers (default: the cluster's CPUs / --threads)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Segment images: NAME_labelTrainIds.png, NAME_labelIds.png, NAME_color.png, NAME_overlay.jpg per input.

    Labels have exactly the input's size. Unreadable files and images over --max-pixels are named,
    skipped (nothing written for them) and counted; the exit code is then 2. Inputs that would share
    output names get their suffix (b_jpg_…, b_png_…) and, if still taken, _2, _3, …; with
    --no-overlay an older NAME_overlay.jpg of the same input is removed.

    With --ray the same files come from a pool of Ray workers (byte-identical to a run without it).

    Example: `icnet-deploy infer photos/ --engine build/icnet_int8.onnx -o out/` (on Ray: `... -o out/ --ray`)
    """
    from .backends.loader import load
    from .infer import infer_images

    if engine == "auto":
        engine = _auto_engine(engines_dir, device, provider, threads)
    if ray is None:
        if engine is not None and engine.startswith("eager-"):  # auto may pick eager fp16 on CUDA
            runner = load(None, device=device, precision=engine.split("-", 1)[1], threads=threads, name=engine)
        else:
            runner = load(engine, device=device, provider=provider, threads=threads)
    with _ConsoleWarnings(), Progress(console, "infer") as bar:
        task = bar.add_task("images")

        def update(done: int, total: int, info: dict) -> None:
            task.update(done, total=total,
                        status=f"{info['images_per_s']:.1f} img/s" + (f" · {info['failed']} failed" if info["failed"] else ""))

        if ray is None:
            report = infer_images(runner, source, output, batch=batch, overlay=overlay, allow_inside=allow_inside,
                                  max_pixels=max_pixels, progress=update)
        else:
            from .serve.ray import infer_images_ray

            task.update(0, status="starting Ray" if ray == "local" else f"joining Ray at {ray}")
            report = infer_images_ray(engine, source, output, address=None if ray == "local" else ray,
                                      actors=ray_workers, threads=threads, batch=batch, overlay=overlay,
                                      allow_inside=allow_inside, max_pixels=max_pixels, device=device, provider=provider,
                                      progress=update)
    for failure in report.failures:
        console.print(f"[red]skipped:[/] {escape(failure['error'])}", highlight=False, soft_wrap=True)
    if report.renamed:
        shown = ", ".join(f"{r['path']} → {r['stem']}_*" for r in report.renamed[:4])
        console.print(f"note: {len(report.renamed)} input(s) would have shared output names; written as {escape(shown)}"
                      + (", … (all in --json: renamed)" if len(report.renamed) > 4 else ""), highlight=False, soft_wrap=True)
    result = report.to_dict()
    table = Table(title=f"infer · {report.written} of {report.total} images → {output}", show_header=False)
    table.add_row("engine", f"{report.engine.get('name')} ({_engine_label(report.engine)}, {report.engine.get('precision')})")
    if "ray" in report.engine:
        r = report.engine["ray"]
        table.add_row("ray", f"{r['workers']} worker(s) × {r['threads_per_worker']} thread(s) on {r['address']} "
                             f"({r['cluster_cpus']} CPUs)")
    table.add_row("engine input", ", ".join(f"{h}×{w}" for h, w in report.engine_sizes) or "—")
    table.add_row("map back", ", ".join(f"{k}: {v}" for k, v in sorted(report.resize.items())) or "—")
    table.add_row("throughput", f"{result['images_per_s']:.2f} images/s ({report.wall_s:.2f} s wall)")
    table.add_row("engine busy", f"{result['engine_busy_pct']:.0f}% ({report.engine_s:.2f} s in the engine, batch {report.batch})")
    table.add_row("read / write", f"{report.read_s:.2f} s / {report.write_s:.2f} s over {report.readers} / {report.writers} threads")
    table.add_row("failed", str(len(report.failures)))
    console.print(table)
    if as_json:
        emit_json(result)
    if report.failures:
        unwritten = sum(f.get("stage") == "write" for f in report.failures)
        unread = len(report.failures) - unwritten  # undecodable, or over --max-pixels
        parts = [f"{unread} of {report.total} input files could not be read and were skipped"] * bool(unread)
        parts += [f"the results of {unwritten} of {report.total} could not be written"] * bool(unwritten)
        raise IcnetDeployError("; ".join(parts))


def _ms(stats: dict, key: str) -> str:
    return f"{stats[key]:.1f}"


@app.command("bench")
@_cli_errors
def bench_cmd(
    engine: list[str] = typer.Option([], "--engine", "-e", help="Engine file (repeatable); the eager baseline is always included. `auto`: the fastest that meets parity here (eager or one in --engines-dir)."),
    engines_dir: Path = typer.Option(Path("build"), "--engines-dir", help="Where `--engine auto` looks for engines."),
    size: Optional[str] = typer.Option(None, help="Image size HxW (default: the first static engine's input, else 1024x2048)."),
    batch: int = typer.Option(1, min=1, help="Images per call."),
    iters: int = typer.Option(20, min=1, help="Timed calls per engine and mode."),
    warmup: int = typer.Option(3, min=0, help="Untimed calls per engine first."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime provider: cpu, cuda or tensorrt."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for every engine alike (default: each framework's)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Eager baseline weights (default: the engines' own checkpoint)."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (a fresh process per engine)."),
    end_to_end: bool = typer.Option(True, "--e2e/--no-e2e", help="Also time pre/post-processing (end to end)."),
    parity: bool = typer.Option(False, "--parity", help="Also run `check` on each engine and add its verdict."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="Also give every engine's speed-up and memory against this one (one of the --engine files, or eager), from the same interleaved rounds."),
    eager: Optional[bool] = typer.Option(None, "--eager/--no-eager", help="Bench eager PyTorch too (default: when torch is installed; without it, the engines alone)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML report here: latency distributions, speed-up and memory bars, the machine (needs the [report] extra)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Latency p50/p90/p99, throughput and peak memory of engines next to eager PyTorch, interleaved.

    Example: `icnet-deploy bench -e build/icnet.onnx -e build/icnet_int8.onnx --iters 30 --baseline build/icnet.onnx`
    """
    from .bench import bench as run_bench

    _require_report_path(html, [Path(e) for e in engine if e != "auto"])
    if html:
        from .report import require_matplotlib

        require_matplotlib()  # before the slow part
    if "auto" in engine:
        engine = [_auto_engine(engines_dir, device, provider, threads) if e == "auto" else e for e in engine]
    with _ConsoleWarnings(), Progress(console, "bench") as bar:
        task = bar.add_task("bench")
        report = run_bench(
            engine, size=parse_size(size) if size else None, batch=batch, iters=iters, warmup=warmup, device=device,
            provider=provider, threads=threads, checkpoint=checkpoint, memory=memory, end_to_end=end_to_end,
            baseline=baseline, eager=eager, progress=lambda phase, done, total: task.update(done, total=total, status=phase),
        )
        result = report.to_dict()
        if parity:
            from .check import check as run_check

            for e in result["engines"][1:]:
                task.update(status=f"check {e['name']}")
                try:
                    rep = run_check(e["spec"], checkpoint=checkpoint, device=device, provider=provider, threads=threads)
                except IcnetDeployError as exc:  # e.g. an engine from random weights has no reference: say so, go on
                    e["parity"] = {"error": str(exc)}
                    console.print(f"[yellow]parity of {escape(e['name'])} not checked:[/] {escape(str(exc))}")
                    continue
                worst = min(rep.sets, key=lambda s: s["agreement_pct"])
                drops = [s["ground_truth"]["miou_drop"] for s in rep.sets if "ground_truth" in s]
                e["parity"] = {"passed": rep.passed, "agreement_pct": worst["agreement_pct"],
                               "agreement_within_delta_pct": min(s["agreement_within_delta_pct"] for s in rep.sets),
                               "delta_logit": rep.thresholds["delta"],
                               "miou_drop": max(drops) if drops else None, "failures": rep.failures}
    console.print(_bench_table(result))
    if html:
        from .report import bench_html, write_html

        write_html(html, bench_html(result))
        console.print(f"HTML report: {html}", highlight=False)
    if as_json:
        emit_json(result)


def _mem_ratio(vs: dict) -> str:
    if not vs.get("rss_ratio"):
        return "—"
    return f"{vs['rss_ratio']:.2f}×" + (f" / {vs['labels_rss_ratio']:.2f}×" if vs.get("labels_rss_ratio") else "")


def _speedup_text(vs: dict, e2e: bool, is_base: bool) -> str:
    """p50 ratio (compute / end-to-end), with the interquartile range of the per-round ratios."""
    if not vs:  # no eager baseline in this run
        return "—"
    text = f"{vs.get('compute_speedup', 0):.2f}×" + (f" / {vs['end_to_end_speedup']:.2f}×" if e2e else "")
    paired = vs.get("compute_speedup_paired")
    if paired and not is_base:
        text += f" ({paired['p25']:.2f}–{paired['p75']:.2f})"
    return text


def _bench_table(result: dict) -> Table:
    from .plugins import label_path_text

    h, w = result["size"]
    table = Table(title=f"bench · {h}×{w} · batch {result['batch']} · {result['iters']} iters (+{result['warmup']} warm-up), "
                        f"interleaved · {result['device']}")
    parity = any("parity" in e for e in result["engines"])
    base = result.get("baseline")
    columns = ["engine", "runs on", "input", "p50 ms", "p90 ms", "p99 ms", "mean ± std", "min", "img/s", "e2e p50", "speed-up",
               "peak RSS MiB", "mem vs eager"] + ([f"vs {escape(base)}"] if base else []) + \
        (["parity"] if parity else [])
    for c in columns:
        # names fold instead of ending in "…": two engines must never look alike in the table
        table.add_column(c, justify="left" if c in ("engine", "runs on", "parity") else "right",
                         overflow="fold" if c == "engine" else "ellipsis", min_width=12 if c == "engine" else None)
    noisy = []
    for e in result["engines"]:
        c, e2e, mem, vs = e["compute"], e.get("end_to_end"), e.get("memory") or {}, e.get("vs_eager", {})
        if c["noisy"] or (e2e and e2e["noisy"]):
            noisy.append(escape(e["name"]))
        speed = _speedup_text(vs, bool(e2e), e is result["engines"][0])
        if "error" in mem:
            mem_text = "[red]probe failed[/]"
        elif mem:
            mem_text = f"{mem['peak_rss_mib']:.0f} (+{mem['engine_rss_mib']:.0f}"
            mem_text += f"; labels +{mem['labels_engine_rss_mib']:.0f})" if "labels_engine_rss_mib" in mem else ")"
            if "torch_device_peak_mib" in mem:
                mem_text += f" · GPU {mem['torch_device_peak_mib']:.0f}"
        else:
            mem_text = "—"
        row = [escape(e["name"]), f"{e['describe'].get('provider')} ({e['describe'].get('precision')})",
               "×".join(str(v) for v in e["input_size"]), _ms(c, "p50_ms"), _ms(c, "p90_ms"), _ms(c, "p99_ms"),
               f"{c['mean_ms']:.1f} ± {c['std_ms']:.1f}", _ms(c, "min_ms"), f"{c['images_per_s']:.2f}",
               _ms(e2e, "p50_ms") if e2e else "—", speed, mem_text,
               _mem_ratio(vs)]
        if base:
            row.append(_speedup_text(e["vs_baseline"], bool(e2e), e["name"] == base))
        if parity:
            p = e.get("parity")
            row.append("baseline" if p is None else "n/a" if "error" in p else (
                ("[green]pass[/]" if p["passed"] else "[bold red]FAIL[/]") + f" {p['agreement_pct']:.3f}%"
                + (f" (within δ {p['agreement_within_delta_pct']:.3f}%)" if "agreement_within_delta_pct" in p else "")
                + (f", mIoU drop {p['miou_drop']:.2f}".replace("-0.00", "0.00") if p["miou_drop"] is not None else "")))
        table.add_row(*row)

    env = result["environment"]
    load = f"load avg {env.get('loadavg_before', float('nan')):.2f} → {env.get('loadavg_after', float('nan')):.2f}"
    table.caption = ("speed-up = eager p50 / engine p50 (compute / end-to-end), in brackets the interquartile range "
                     "of eager/engine within each interleaved round; peak RSS of a fresh process per engine "
                     "(+ growth over its post-import baseline with the full logits; labels: the growth of the "
                     "end-to-end path, measured first), memory vs eager likewise (full / labels); "
                     + (f"vs {escape(base)}: the same speed-up against that engine (memory ratios in --json); " if base else "") +
                     f"{load} on {env.get('cpus')} CPUs"
                     + (f"; {escape(str(env['cpu']))} (int8 kernel {env.get('int8_kernel')})" if env.get("cpu") else "")
                     + (f"; [yellow]noisy (std > 10% of mean): {', '.join(noisy)}[/]" if noisy else "")
                     + (f"\nlabel path (logits → labels on the CPU): {escape(label_path_text(env['label_path']))}"
                        if env.get("label_path") else "")
                     + "".join(f"\n{escape(e['name'])}: {escape(e['note'])}" for e in result["engines"] if e.get("note")))
    return table


@app.command("check")
@_cli_errors
def check_cmd(
    engine: Path = typer.Option(..., "--engine", "-e", help="Engine to check (.onnx, …; its manifest names its checkpoint)."),
    images: Optional[Path] = typer.Option(None, help="Folder of images (recursive) instead of the generated scenes and photos."),
    labels: Optional[Path] = typer.Option(None, help="Ground truth for --images: NAME_labelTrainIds.png or NAME_gtFine_labelIds.png, same tree."),
    data: Optional[Path] = typer.Option(None, help="Cityscapes-layout dataset root (leftImg8bit/ + gtFine/)."),
    split: str = typer.Option("val", help="Split of --data."),
    count: int = typer.Option(_HELDOUT_COUNT, min=0, help="Generated held-out scenes (seeds 950000+), with exact labels."),
    size: Optional[str] = typer.Option(None, help="Scene size HxW for dynamic engines (default 512x1024)."),
    photos: bool = typer.Option(True, "--photos/--no-photos", help="Include the shipped real photographs."),
    checkpoint: Optional[Path] = typer.Option(None, help="Eager reference weights (sha256 must match the engine's manifest)."),
    min_agreement: Optional[float] = typer.Option(None, help="Minimum raw pixel agreement %, pooled per set (default: fp32 99.99, fp16 99.9 on every set; int8 99.5 on labelled sets)."),
    min_agreement_unlabelled: Optional[float] = typer.Option(None, help="Minimum raw pixel agreement % on sets without labels, e.g. the photographs (default: int8 97, else as --min-agreement)."),
    delta: Optional[float] = typer.Option(None, min=0, help="Logit tolerance of 'agreement within δ': the engine's class scored by eager within δ of eager's best (default 0.25)."),
    min_within_delta: Optional[float] = typer.Option(None, help="Minimum agreement within δ %, pooled per set (default: int8 99.5; fp32/fp16 not gated)."),
    min_within_delta_worst: Optional[float] = typer.Option(None, help="Minimum agreement within δ % on each set's worst image (default: int8 99.0)."),
    max_miou_drop: Optional[float] = typer.Option(None, help="Maximum mIoU drop vs eager on labelled sets, points (default: int8 0.5)."),
    max_class_iou_drop: Optional[float] = typer.Option(None, help="Maximum IoU drop of any one class vs eager on labelled sets, points (default: int8 2)."),
    max_logit_error: Optional[float] = typer.Option(None, help="Maximum |Δlogit| vs eager (default: not gated)."),
    layerwise: bool = typer.Option(False, "--layerwise", help="ONNX: find the first layer that diverges from the fp32 parent."),
    int8_breakdown: bool = typer.Option(False, "--int8-breakdown", help="INT8 ONNX: split the disagreement with the fp32 parent into weight rounding, range clipping and activation rounding (ONNX Runtime CPU, same images)."),
    reference: Optional[Path] = typer.Option(None, help="fp32 parent ONNX for --layerwise / --int8-breakdown (default: found by the manifest's parent_sha256)."),
    layer_tolerance: Optional[float] = typer.Option(None, help="--layerwise tolerance on mean|Δ|/mean|ref| (default by precision)."),
    junit: Optional[Path] = typer.Option(None, help="Write a JUnit XML report here (one test case per metric and image set)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report here: checks, per-set/image/class metrics, the least-agreeing images with their disagreement maps (needs the [report] extra)."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime provider: cpu, cuda or tensorrt."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """CI parity gate: engine vs its eager checkpoint — agreement (raw and within δ logit), mIoU, |Δlogit|. Exit 0 pass, 1 fail, 2 error.

    The gate by the engine's precision: fp32 and fp16 by raw agreement; INT8 by agreement within
    δ=0.25 logit (≥ 99.5% per set, ≥ 99% on the worst image), and on labelled sets raw agreement,
    mIoU drop and per-class IoU drop, with a raw floor on unlabelled sets (photos).

    Example: `icnet-deploy check --engine build/icnet_int8.onnx --junit reports/parity.xml`

    Where INT8 loses its pixels: `icnet-deploy check --engine build/icnet_int8.onnx --int8-breakdown`

    A page to look at: `icnet-deploy check --engine build/icnet_int8.onnx --html reports/parity.html`
    """
    from .check import check as run_check, write_junit

    for report_path in (junit, html):
        _require_report_path(report_path, [engine, manifest_path(engine), checkpoint])
    keeper = None
    if html:
        from .report import WorstImages, require_matplotlib

        require_matplotlib()  # before the slow part
        keeper = WorstImages()

    with _ConsoleWarnings(), progress_status(console, "check", "checking") as say:
        report = run_check(
            engine, checkpoint=checkpoint, images_dir=images, labels_dir=labels, data_dir=data, split=split, count=count,
            size=parse_size(size) if size else None, photos=photos,
            thresholds={"min_agreement": min_agreement, "min_agreement_unlabelled": min_agreement_unlabelled,
                        "delta": delta, "min_within_delta": min_within_delta,
                        "min_within_delta_worst": min_within_delta_worst, "max_miou_drop": max_miou_drop,
                        "max_class_iou_drop": max_class_iou_drop, "max_logit_error": max_logit_error},
            device=device, provider=provider,
            threads=threads, layerwise=layerwise, reference=reference, layerwise_tolerance=layer_tolerance,
            int8_breakdown=int8_breakdown, progress=say, observe=keeper,
        )
    result = report.to_dict()
    console.print(_check_table(result, str(engine)))
    if report.layerwise:
        console.print(_layerwise_table(report.layerwise))
    if report.int8_breakdown:
        console.print(_breakdown_table(report.int8_breakdown))
    if junit:
        write_junit(report, junit)
        console.print(f"JUnit report: {junit}", highlight=False)
    if html and keeper is not None:
        from .report import check_html, write_html

        write_html(html, check_html(result, keeper.result()))
        console.print(f"HTML report: {html}", highlight=False)
    if (not report.passed and report.precision == "int8" and not report.int8_breakdown
            and report.engine.get("backend") == "onnxruntime"):
        console.print("hint: --int8-breakdown shows how much of it is weight rounding, range clipping and "
                      "activation rounding", highlight=False)
    if as_json:
        emit_json(result)
    if not report.passed:
        raise ParityError("; ".join(report.failures))


def _require_report_path(report: Optional[Path], inputs: list) -> None:
    """A report file (``--junit``, ``--html``, ``report -o``) that names a folder or an input is refused
    before the run, not after it."""
    if report is None:
        return
    if report.is_dir():
        raise IcnetDeployError(f"{report}: is a folder; give a report file name like reports/parity.xml")
    refuse_overwriting([report], inputs)


def _check_table(result: dict, engine: str) -> Table:
    from .metrics import NEAR_TIE_LOGIT

    verdict = "[green]PASSED[/]" if result["passed"] else "[bold red]FAILED[/]"
    e = result["engine"]
    th = result["thresholds"]
    delta = th["delta"]
    table = Table(title=f"check {engine} ({e.get('precision')}, {e.get('provider')}) vs eager fp32 — {verdict}")
    for c in ("image set", "images", "agreement %", "worst image %", f"within δ={delta:g} %", "worst within δ %",
              "near ties % (agreement beyond)", "max |Δlogit|", "mIoU eager → engine", "Δ mIoU"):
        table.add_column(c, justify="left" if c == "image set" else "right")
    for s in result["sets"]:
        gt = s.get("ground_truth")
        table.add_row(
            s["set"], str(s["images"]), f"{s['agreement_pct']:.4f}", f"{s['worst_image']['agreement_pct']:.4f}",
            f"{s['agreement_within_delta_pct']:.4f}", f"{s['worst_image_within_delta']['agreement_within_delta_pct']:.4f}",
            f"{s['near_tie_pct']:.2f} ({s['agreement_beyond_ties_pct']:.4f})",
            f"{s['max_abs_logit_error']:.3g}" if "max_abs_logit_error" in s else "—",
            f"{gt['reference_miou']:.2f} → {gt['engine_miou']:.2f}" if gt else "—",
            f"{0.0 - gt['miou_drop']:+.3f}".replace("-0.000", "+0.000") if gt else "—",
        )
    lines = [("[green]✓[/] " if c["passed"] else "[bold red]✗[/] ") + escape(c["message"]) for c in result["checks"]]
    worst_classes = []
    for s in result["sets"]:
        for name, pc in s["per_class"].items():
            if pc.get("iou_delta") is not None:
                worst_classes.append((pc["iou_delta"], s["set"], name))
    worst_classes = sorted(w for w in worst_classes if w[0] < 0)
    extra = ""
    if worst_classes:
        extra = "\nlargest per-class IoU drops: " + ", ".join(f"{n} ({st}) {d:+.2f}" for d, st, n in worst_classes[:3])
    env = result.get("environment") or {}
    cpu_line = ""
    if env.get("cpu"):
        from .machine import describe_cpu

        built_on = ((e.get("manifest") or {}).get("details") or {}).get("cpu")  # INT8 builds record it
        cpu_line = f"ran on {env['cpu']} (int8 kernel {env.get('int8_kernel')})" + (
            f"; built on {describe_cpu(built_on)}" if built_on else "") + "\n"
    table.caption = (cpu_line + f"within δ: the engine's class scored by eager within {delta:g} logit of eager's best; near ties "
                     f"(not gated): pixels whose two best eager logits are within {NEAR_TIE_LOGIT:g}, in brackets the "
                     "agreement on the other pixels\n" + "\n".join(lines) + extra)
    return table


def _layerwise_table(lw: dict) -> Table:
    first = lw["first_divergence"]
    title = (f"layerwise vs {lw['reference']}: first divergence at [bold]{escape(first['node'])}[/] ({first['op']})"
             if first else f"layerwise vs {lw['reference']}: no tensor exceeds the tolerance")
    table = Table(title=title)
    for c in ("#", "tensor", "op", "shape", "rel error", "max |Δ|"):
        table.add_column(c, justify="left" if c in ("tensor", "op") else "right")
    rows = lw["layers"]
    k = next((i for i, r in enumerate(rows) if r["exceeds"]), None)
    shown = range(max(0, k - 3), min(len(rows), k + 4)) if k is not None else range(max(0, len(rows) - 5), len(rows))
    for i in shown:
        r = rows[i]
        style = "bold red" if r["exceeds"] else None
        table.add_row(str(i), escape(r["name"]), r["op"], "×".join(map(str, r["shape"])), f"{r['rel_error']:.3g}",
                      f"{r['max_abs']:.3g}", style=style)
    worst = lw["worst"]
    table.caption = (f"{lw['matched']} of {lw['reference_tensors']} tensors matched; tolerance {lw['tolerance']:g} on "
                     f"{lw['metric']}" + (f"; worst: {escape(worst['name'])} ({worst['rel_error']:.3g})" if worst else "")
                     + "".join(f"\n{escape(n)}" for n in lw["notes"]))
    return table


def _breakdown_table(bd: dict) -> Table:
    from .int8_breakdown import LOSSES, STEPS

    table = Table(title=f"INT8 breakdown vs {escape(bd['reference'])}: agreement % as quantization is added")
    table.add_column("image set")
    table.add_column("images", justify="right")
    for _, label in STEPS:
        table.add_column(label, justify="right")
    for loss, _, _ in LOSSES:
        table.add_column("lost to " + loss.replace("_", " "), justify="right")
    for s in bd["sets"]:
        table.add_row(s["set"], str(s["images"]), *(f"{s['agreement_pct'][k]:.4f}" for k, _ in STEPS),
                      *(f"{s['lost_pct'][k]:.4f}" for k, _, _ in LOSSES))
    table.caption = (f"{bd['activation_tensors']} quantized activation tensors; + activation ranges: clipped at the "
                     f"engine's ranges, not rounded; all graphs in ONNX Runtime (CPU); {bd['note']}. Cures: weight rounding → GPTQ; range clipping → wider ranges (--tail-cap, "
                     "percentile); activation rounding → fp32 layers (--target-agreement, --fp32-layer)")
    return table


@app.command("report")
@_cli_errors
def report_cmd(
    results: list[Path] = typer.Argument(..., help="Saved `check --json` / `bench --json` outputs, in the order to show them."),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    title: Optional[str] = typer.Option(None, help="Page title (default: from the results)."),
) -> None:
    """One self-contained HTML page from saved check and bench results (CI can render after the fact).

    Example: `icnet-deploy check -e build/icnet_int8.onnx --json > check.json; icnet-deploy bench -e build/icnet_int8.onnx --json > bench.json; icnet-deploy report check.json bench.json -o report.html`

    The least-agreeing images are drawn by `check --html` only: a --json result holds numbers, not pixels.
    """
    from .report import read_results, require_matplotlib, results_html, write_html

    _require_report_path(output, list(results))
    require_matplotlib()
    page = results_html(read_results(results), title=title)
    write_html(output, page)
    console.print(f"HTML report: {output}", highlight=False)


@app.command("build-engine")
@_cli_errors
def build_engine_cmd(
    model: Path = typer.Argument(..., help="fp32 ONNX export (icnet-deploy export) with its manifest; with --backend torch also a checkpoint."),
    output: Path = typer.Option(..., "--output", "-o", help="Engine to write (.onnx for onnxruntime, .engine for tensorrt, .torch for torch)."),
    fp16: bool = typer.Option(False, "--fp16", help="FP16 weights and activations, fp32 islands for Resize/MatMul."),
    fp32: bool = typer.Option(False, "--fp32", help="FP32 (--backend torch only: a compiled fp32 model)."),
    compile_mode: Optional[str] = typer.Option(None, "--compile", help="--backend torch: reduce-overhead | max-autotune | default (default: reduce-overhead on CUDA, default on CPU)."),
    batch: Optional[int] = typer.Option(None, min=1, help="--backend torch: batch size (default: the export's, else 1)."),
    size: Optional[str] = typer.Option(None, help="--backend torch: input HxW (default: the export's, else 1024x2048)."),
    device: Optional[str] = typer.Option(None, help="--backend torch: cuda or cpu (default: cuda when torch sees a GPU)."),
    int8: bool = typer.Option(False, "--int8", help="Calibrated INT8 (explicit QDQ)."),
    calib: Optional[Path] = typer.Option(None, help="Calibration image folder; default: the shipped calib/."),
    calib_method: str = typer.Option("percentile", help="percentile | entropy | minmax."),
    tail_cap: Optional[float] = typer.Option(None, min=0, help="Percentile calibration: cap each range at this × the tensor's 99th percentile (default 3; 0: no cap)."),
    calib_cache: Optional[Path] = typer.Option(None, help="Calibration cache: reused if it exists, else written (default OUTPUT.calib.json)."),
    calib_limit: Optional[int] = typer.Option(None, min=1, help="Use only the first N calibration images."),
    backend: str = typer.Option("onnxruntime", help="onnxruntime | tensorrt | torch (torch.compile: Inductor, CUDA graphs)."),
    target: Optional[str] = typer.Option(None, help="INT8 flavour: cpu (uint8 activations) | tensorrt (int8, zero point 0); default by backend."),
    search: bool = typer.Option(False, "--search/--fixed-rule", help="INT8: search the fewest blocks to keep fp32 for --target-agreement (minutes per block at 1024×2048), instead of the fixed rule (default: the convs that read the image, the classifier and the final resize fp32; the fast engine)."),
    target_agreement: float = typer.Option(_DEFAULT_TARGET_AGREEMENT, help="INT8 --search: agreement within δ=0.25 logit with fp32 to reach on calibration images (% or fraction)."),
    fp32_layer: Optional[list[str]] = typer.Option(None, "--fp32-layer", help="Keep this node in fp32 (repeatable); replaces the default rule."),
    weight_rounding: str = typer.Option("gptq", help="INT8 weight rounding: gptq (round each conv so its output moves least, on 8 calibration images; ~0.7 s per conv at 1024×2048) | nearest."),
    bias_correction: Optional[bool] = typer.Option(None, "--bias-correction/--no-bias-correction", help="INT8: remove the mean output shift each quantized conv adds (8 calibration images, a few seconds). Default: on with --weight-rounding nearest, off with gptq (which fits the biases itself)."),
    range_learning: Optional[bool] = typer.Option(None, "--range-learning/--no-range-learning", help="INT8: fit each activation's scale so the engine's logits match fp32 on 16 calibration images (same speed; ~2 s per iteration at 1024×2048, minutes in all; off by default: the default engine passes the gate without it; it did not help --target tensorrt)."),
    range_iterations: int = typer.Option(_RANGE_ITERATIONS, min=1, help="INT8 range learning: Adam steps, one calibration image each."),
    threads: Optional[int] = typer.Option(None, min=1, help="ONNX Runtime intra-op threads for calibration and parity."),
    workspace_mib: int = typer.Option(4096, help="TensorRT builder workspace limit (MiB)."),
    timing_cache: Optional[Path] = typer.Option(None, help="TensorRT timing cache file (default: tensorrt.timing.cache beside OUTPUT)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
) -> None:
    """Build an FP16 or calibrated INT8 engine (ONNX Runtime or TensorRT) from an fp32 export.

    Example: `icnet-deploy build-engine build/icnet.onnx --int8 --calib calib/ -o build/icnet_int8.onnx`;
    `icnet-deploy build-engine build/icnet.onnx --int8 --search -o build/icnet_int8_search.onnx` (keeps more blocks fp32, slower build and engine);
    `icnet-deploy build-engine build/icnet.onnx --fp16 --backend tensorrt -o build/icnet_fp16.engine`;
    `icnet-deploy build-engine models/icnet_r50_half_synthetic.safetensors --backend torch --fp16 -o build/icnet_fp16.torch`
    """
    from .build import build_engine

    if backend == "torch":
        if int8 or fp16 == fp32:
            raise IcnetDeployError("--backend torch: give exactly one of --fp16 or --fp32 (int8 goes through ONNX)")
        _build_compiled(model, output, precision="fp16" if fp16 else "fp32", mode=compile_mode, batch=batch,
                        size=parse_size(size) if size else None, device=device, threads=threads, as_json=as_json)
        return
    if fp32 or compile_mode or batch or size or device:
        raise IcnetDeployError("--fp32, --compile, --batch, --size and --device are for --backend torch")
    if fp16 == int8:
        raise IcnetDeployError("give exactly one of --fp16 or --int8")
    with stages(console, "build-engine") as progress:
        manifest = build_engine(
            model, output, precision="fp16" if fp16 else "int8", backend=backend, target=target, calib=calib,
            calib_method=calib_method, calib_cache=calib_cache, calib_limit=calib_limit, tail_cap=tail_cap,
            target_agreement=target_agreement if search else None, fp32_layers=fp32_layer or None,
            weight_rounding=weight_rounding, bias_correction=bias_correction, range_learning=range_learning,
            range_iterations=range_iterations, threads=threads, workspace_mib=workspace_mib, timing_cache=timing_cache,
            progress=progress,
        )
    d = manifest.details
    parity = d["parity"]
    verdict = "[green]passes[/]" if parity["passed"] else "[bold red]fails[/]"
    table = Table(title=f"{output} · {manifest.precision} · {d['backend']} (target {manifest.target}) — {verdict} "
                        "check's gate against the fp32 export")
    for col in ("held-out set", "agreement %", "worst image %", f"within δ={parity['thresholds']['delta']:g} %",
                "worst within δ %", "mIoU fp32 → engine"):
        table.add_column(col, justify="left" if col == "held-out set" else "right")
    for s in parity["sets"]:
        gt = s.get("ground_truth")
        table.add_row(s["set"], f"{s['agreement_pct']:.3f}", f"{s['worst_image']['agreement_pct']:.3f}",
                      f"{s['agreement_within_delta_pct']:.3f}",
                      f"{s['worst_image_within_delta']['agreement_within_delta_pct']:.3f}",
                      f"{gt['reference_miou']:.2f} → {gt['engine_miou']:.2f}" if gt else "—")
    console.print(table)
    if "calibration" in d:
        c = d["calibration"]
        console.print(f"calibration: {c['method']} on {c['images']} images, cache {c['cache']}", highlight=False)
    kept = d.get("fp32_layers") or {}
    console.print(f"{len(kept)} layer(s) kept in fp32" + (f" ({d['fp32_rule']})" if "fp32_rule" in d else "") + ":",
                  highlight=False)
    if len(kept) > 12:  # e.g. fp16's islands: one line per reason
        by_reason: dict[str, list[str]] = {}
        for node, why in kept.items():
            by_reason.setdefault(why, []).append(node)
        for why, nodes in by_reason.items():
            console.print(f"  {escape(why)}: {escape(', '.join(nodes))}", highlight=False)
    else:
        for node, why in kept.items():
            console.print(f"  {escape(node)}: {escape(why)}", highlight=False)
    wr = d.get("weight_rounding") or {}
    if wr.get("convs"):
        err = wr["mean_relative_output_error"]
        console.print(f"weight rounding: GPTQ on {wr['convs']} convs, mean relative output error {err['nearest']:.2e} "
                      f"(nearest) → {err['gptq']:.2e} ({wr['images']} calibration images, {wr['seconds']} s)",
                      highlight=False)
    rl = d.get("range_learning")
    if rl and "skipped" in rl:
        console.print(f"activation ranges: calibrated ({escape(rl['skipped'])})", highlight=False)
    elif rl and not rl["kept"]:
        err = rl["normalised_logit_error"]
        console.print(f"activation ranges: calibrated (learning on {rl['images']} images moved the logit error "
                      f"{err['before']:.4g} → {err['after']:.4g}: not kept)", highlight=False)
    elif rl:
        err = rl["normalised_logit_error"]
        factors = [f["factor"] for f in rl["narrowed_most"][:1] + rl["widened_most"][:1]]
        console.print(f"activation ranges: learned on {rl['images']} calibration images, {rl['iterations']} iterations, "
                      f"logit error vs fp32 {err['before']:.4g} → {err['after']:.4g} (scales ×{factors[0]:g} … "
                      f"×{factors[-1]:g}, {rl['seconds']} s)", highlight=False)
    bc = d.get("bias_correction")
    if bc:
        console.print(f"bias correction: {bc['convs']} convs, largest mean shift removed {bc['max_abs_shift']:.4f} "
                      f"({bc['images']} calibration images, {bc['seconds']} s)", highlight=False)
    if not parity["passed"]:
        hint = (" (--search keeps the most sensitive blocks in fp32)" if d.get("fp32_rule") == "fixed rule" else
                " (raise --target-agreement: the search judged on calibration images)"
                if d.get("fp32_rule") == "sensitivity search" else "")
        failed = "; ".join(c["message"] for c in parity["checks"] if not c["passed"])
        console.print(f"[yellow]warning:[/] below check's gate on the held-out images ({escape(failed)}); "
                      f"`icnet-deploy check` will fail this engine{hint}", highlight=False)
    if manifest.precision == "fp16" and d["backend"] == "onnxruntime":
        console.print("note: ONNX Runtime CPU has no fp16 kernels: this engine checks fp16 accuracy on CPU, it is "
                      "not faster there (use the CUDA/TensorRT provider or --backend tensorrt for speed)", highlight=False)
    console.print(f"wrote {output} and {output.name}.json in {d.get('build_seconds')} s", highlight=False)
    if as_json:
        emit_json({"output": str(output), "manifest": manifest.to_dict()})


def _build_compiled(model: Path, output: Path, *, precision: str, mode: Optional[str], batch: Optional[int],
                    size: Optional[tuple[int, int]], device: Optional[str], threads: Optional[int], as_json: bool) -> None:
    """``build-engine --backend torch``: ``compile.compile_engine`` from a checkpoint or an fp32 export."""
    from .compile import compile_engine, compile_source

    refuse_overwriting([output, manifest_path(output)], [model, manifest_path(model)])
    checkpoint, shape = compile_source(model)
    n, h, w = shape or (1, 1024, 2048)
    h, w = size or (h, w)
    with _ConsoleWarnings(), progress_status(console, "build-engine", "compiling") as say:
        manifest = compile_engine(checkpoint, output, precision=precision, mode=mode, batch=batch or n, height=h,
                                  width=w, device=device, threads=threads, progress=say)
    d = manifest.details
    table = Table(title=f"{output} · torch {precision} · {d['compile_mode']} · {d['device_name']}", show_header=False)
    table.add_row("input", "×".join(str(v) for v in manifest.input_shape))
    table.add_row("compile", f"{d['build_compile_s']} s (Inductor FX-graph cache {d['build_fx_graph_cache']})")
    table.add_row("cache artefacts", f"{d['cache_bytes'] / 1e6:.1f} MB + {d['kernels']} C++ kernel(s)")
    parity = d.get("build_parity")
    if parity:
        table.add_row("vs eager fp32", f"agreement {parity['agreement_pct']:.4f}% (min {parity['min_agreement_pct']}%), "
                                       f"max |Δlogit| {parity['max_abs_logit_error']:.2e}")
    table.add_row("versions", f"torch {d['torch']}" + (f", CUDA {d['cuda']}" if d.get("cuda") else ""))
    console.print(table)
    console.print(f"wrote {output} and {output.name}.json in {d['build_seconds']} s", highlight=False)
    if as_json:
        emit_json({"output": str(output), "manifest": manifest.to_dict()})


# --------------------------------------------------------------------------------------------
# beyond one process: serve (Triton), serve-bench, export-triton (the serve package)
# --------------------------------------------------------------------------------------------
@app.command("serve")
@_cli_errors
def serve_cmd(
    engine: Optional[str] = typer.Argument(None, help="Engine (.onnx, .engine, compiled torch) or checkpoint; default: the shipped checkpoint, eager PyTorch."),
    model_name: str = typer.Option("icnet", "--model-name", help="The model's name on the server."),
    address: str = typer.Option("0.0.0.0", help="Address the HTTP and gRPC endpoints bind to."),
    http_port: int = typer.Option(8000, "--http-port", help="HTTP port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Prometheus metrics port."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Largest batch the dynamic batcher forms (images)."),
    queue_delay_us: int = typer.Option(2000, "--queue-delay-us", min=0, help="How long the dynamic batcher waits to fill a batch (µs)."),
    instances: int = typer.Option(1, min=1, help="Model instances, each with its own engine session."),
    logits: bool = typer.Option(False, "--logits", help="Also offer the output `logits` (float32, at the size the engine ran at)."),
    max_pixels: int = typer.Option(_DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this."),
    min_side: int = typer.Option(16, "--min-side", min=1, help="Refuse images smaller than this on either side."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime provider: cpu, cuda or tensorrt (default: by --device)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads of each engine session (default: the framework's)."),
    triton_log: Optional[Path] = typer.Option(None, "--triton-log", help="Keep Triton's own log in this file (default: a temporary file, removed at the end)."),
    as_json: bool = typer.Option(False, "--json", help="Print the endpoints as one JSON line on stdout once the model is ready."),
) -> None:
    """Serve an engine on Triton Inference Server (PyTriton): input `image` (uint8 H×W×3 RGB, any size,
    batched), output `labels` (uint8 train ids at the input's size, the same bytes as `infer`'s).

    HTTP and gRPC (KServe v2 protocol: tritonclient, curl), dynamic batching, health at
    /v2/health/ready; bad requests get an error, never a crash; SIGTERM or Ctrl-C stops it. Needs the
    [serve] extra.

    Example: `icnet-deploy serve build/icnet_int8.onnx --http-port 8000 --grpc-port 8001 --max-batch 4`
    """
    from .serve.triton import ServeOptions, serve

    options = ServeOptions(model_name=model_name, address=address, http_port=http_port, grpc_port=grpc_port,
                           metrics_port=metrics_port, max_batch=max_batch, queue_delay_us=queue_delay_us,
                           instances=instances, logits=logits, max_pixels=max_pixels, min_side=min_side, device=device,
                           provider=provider, threads=threads, verbose=progress_level() == "verbose",
                           log_file=str(triton_log) if triton_log else None)

    stdout = sys.stdout  # the server's own output goes to stderr while it runs

    def ready(info: dict) -> None:
        console.print(f"serving {escape(str(engine or 'eager'))} as model [bold]{escape(info['model'])}[/] · "
                      f"HTTP {info['http']} · gRPC {info['grpc']} · metrics {info['metrics']} · "
                      f"max batch {max_batch}, {instances} instance(s) · SIGTERM or Ctrl-C stops", highlight=False)
        if as_json:  # one line: a supervisor reads it to know the server is up
            _session["json_emitted"] = True
            stdout.write(json.dumps(info, default=str) + "\n")
            stdout.flush()

    with _ConsoleWarnings():
        serve(engine, options, on_ready=ready)
    console.print("server stopped", highlight=False)


@app.command("serve-bench")
@_cli_errors
def serve_bench_cmd(
    url: str = typer.Option("localhost:8000", "--url", help="host:port of the server (HTTP port, or gRPC port with --protocol grpc)."),
    protocol: str = typer.Option("http", help="http or grpc."),
    model_name: str = typer.Option("icnet", "--model-name", help="The model's name on the server."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images to send (resized to --size); default: generated street scenes."),
    size: str = typer.Option("1024x2048", help="Image size HxW sent."),
    concurrency: list[int] = typer.Option([1, 4], "--concurrency", "-c", help="Concurrent clients (repeatable: one run per level)."),
    requests: int = typer.Option(20, min=1, help="Timed requests per level."),
    warmup: int = typer.Option(2, min=0, help="Untimed requests per client first."),
    batch: int = typer.Option(1, min=1, help="Images per request."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Throughput (images/s) and latency (p50/p90/p99 per request) of a running `serve`, from 1, 4, … concurrent clients.

    Example: `icnet-deploy serve-bench --url localhost:8000 -c 1 -c 4 --requests 40 --size 1024x2048`
    """
    import os

    from .data.transforms import resize_image
    from .serve.client import bench_server

    h, w = parse_size(size)
    if images is not None:
        from .data.folders import list_images, read_rgb

        pictures = [resize_image(read_rgb(f), (h, w)) for f in list_images(images)[:8]]
        if not pictures:
            raise DataError(f"{images}: no images")
    else:
        from .data.synthetic import generate_scene

        pictures = [generate_scene(960_000 + k, h, w)[0] for k in range(4)]
    with progress_status(console, "serve-bench", f"{len(concurrency)} level(s) × {requests} requests"):
        results = bench_server(url, pictures, concurrency=concurrency, requests=requests, warmup=warmup,
                               protocol=protocol, model=model_name, batch=batch)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    table = Table(title=f"serve-bench · {url} ({protocol}) · model {escape(model_name)} · {h}×{w} · batch {batch}")
    for c in ("clients", "requests", "images/s", "p50 ms", "p90 ms", "p99 ms", "mean ms", "errors"):
        table.add_column(c, justify="right")
    for r in results:
        table.add_row(str(r["concurrency"]), str(r["requests"]), f"{r['images_per_s']:.2f}", f"{r['p50_ms']:.1f}",
                      f"{r['p90_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['mean_ms']:.1f}", str(len(r["errors"])))
    table.caption = f"load average after: {load:.2f} on {os.cpu_count()} CPUs"
    console.print(table)
    for r in results:
        for e in r["errors"][:3]:
            console.print(f"[red]error ({r['concurrency']} clients):[/] {escape(e)}", highlight=False, soft_wrap=True)
    if as_json:
        emit_json({"url": url, "protocol": protocol, "model": model_name, "size": [h, w], "batch": batch,
                   "loadavg_after": load, "levels": results})
    if any(r["errors"] for r in results):
        raise IcnetDeployError(f"{sum(len(r['errors']) for r in results)} request(s) failed")


@app.command("export-triton")
@_cli_errors
def export_triton_cmd(
    engine: Path = typer.Argument(..., help="An ONNX engine (fp32/fp16/int8) or a TensorRT engine."),
    out: Path = typer.Option(Path("model_repository"), "--out", "-o", help="The model repository folder to write."),
    model_name: str = typer.Option("icnet", "--model-name", help="The ensemble's name (the other models get it as prefix)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="max_batch_size of engines with a dynamic batch."),
    queue_delay_us: int = typer.Option(2000, "--queue-delay-us", min=0, help="The dynamic batcher's queue delay (µs)."),
    instances: int = typer.Option(1, min=1, help="Instances of each model."),
    kind: str = typer.Option("auto", help="Instance kind: auto (CPU for ONNX, GPU for TensorRT), cpu or gpu."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing, non-empty --out."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON on stdout."),
) -> None:
    """Write a Triton model repository: the engine (onnxruntime_onnx or tensorrt_plan), pre/post-processing
    Python models and an ensemble `icnet` (image in, labels out) for `tritonserver --model-repository`.

    The Python models run the toolkit's own pre/post-processing: Triton's Python environment needs
    `pip install icnet-deploy` (no torch).

    Example: `icnet-deploy export-triton build/icnet_int8.onnx --out model_repository/ --instances 2`
    """
    from .serve.repository import RepositoryOptions, export_repository

    result = export_repository(engine, out, RepositoryOptions(model_name=model_name, max_batch=max_batch,
                                                              queue_delay_us=queue_delay_us, instances=instances,
                                                              kind=kind), overwrite=overwrite)
    console.print(f"wrote {out}/: {', '.join(result['models'])} ({result['platform']}, max_batch_size "
                  f"{result['max_batch_size']}, {instances} × {result['instance_kind']}); serve it with "
                  f"tritonserver --model-repository {out}", highlight=False)
    if as_json:
        emit_json(result)


def _not_yet(command: str, issue: str) -> None:
    console.print(f"[bold red]error:[/] `icnet-deploy {command}` is not available yet ({issue} has not landed)")
    raise typer.Exit(2)


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """``icnet-deploy infer x --quiet`` means ``icnet-deploy --quiet infer x``: the global flags may
    follow the command (typer reads them only before it)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


# options whose value may be left out (typer has no optional-value options): the value they then take
OPTIONAL_VALUES = {"--ray": "local"}


def _fill_optional_values(argv: list[str]) -> list[str]:
    """``infer x --ray`` (at the end, or before another option) means ``infer x --ray=local``."""
    end = argv.index("--") if "--" in argv else len(argv)
    out = []
    for k, arg in enumerate(argv[:end]):
        if arg in OPTIONAL_VALUES and (k + 1 >= end or argv[k + 1].startswith("-")):
            arg = f"{arg}={OPTIONAL_VALUES[arg]}"
        out.append(arg)
    return out + argv[end:]


def main() -> None:
    app(args=_fill_optional_values(_hoist_global_flags(sys.argv[1:])))


if __name__ == "__main__":
    main()
