"""Commands about the model itself: info, synth, train, average, adjust-logits, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import DataError, IcnetDeployError
from ..progress import Progress
from .app import ConsoleWarnings, app, cli_errors, console, emit_json, load_model_quietly, parse_scale_range, parse_size


@app.command()
@cli_errors
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
    from ..machine import cpu_identity, describe_cpu
    from ..model.summary import model_summary
    from ..plugins import cuda_available, label_path, label_path_text

    h, w = parse_size(size)
    summary = model_summary(load_model_quietly(checkpoint, config), h, w) | {"cpu": cpu_identity()}
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
@cli_errors
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
    from ..data.synthetic import SceneMix, write_dataset, write_images

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
@cli_errors
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
    from ..train import TrainConfig
    from ..train import train as run_training

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
@cli_errors
def average(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more checkpoints of one config (.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Averaged checkpoint to write (.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the provenance written into it as JSON on stdout."),
) -> None:
    """Average checkpoints (weights and BatchNorm statistics, equal shares): a "model soup" of runs
    that share a start. The shipped checkpoint is one (models/README.md).

    Example: `icnet-deploy average run_a.safetensors run_b.safetensors --out models/soup.safetensors`
    """
    from ..model.weights import average_checkpoints

    provenance = average_checkpoints(list(checkpoints), out)
    if as_json:
        emit_json({"checkpoint": str(out)} | provenance)
    console.print(f"wrote {out}: the average of {len(checkpoints)} checkpoints")


@app.command("adjust-logits")
@cli_errors
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
    from ..model.weights import adjust_logits as run_adjust

    weights = None
    if data is not None:
        from ..train import class_weights_of

        with Progress(console, "adjust-logits") as bar:
            task = bar.add_task("label counts")
            weights = class_weights_of(data, progress=lambda done, total: task.update(done, total=total))
    provenance = run_adjust(checkpoint, out, weights, tau, weights_source=f"labels of {Path(data).name}/train" if data else "given")
    adjustment = provenance["logit_adjustment"]
    if as_json:
        emit_json({"checkpoint": str(out)} | adjustment)
    console.print(f"wrote {out}: classifier bias − {tau:g}·log w (class weights from {adjustment['class_weights_from']})")


@app.command()
@cli_errors
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
    from ..backends.loader import load
    from ..data.folders import CityscapesDataset
    from ..evaluate import evaluate_predictions
    from ..labels import CLASS_NAMES

    if engine is not None and checkpoint is not None:
        raise IcnetDeployError("give --engine or --checkpoint, not both (an engine's manifest names its checkpoint)")
    dataset = CityscapesDataset(data, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    # Through the Runner and infer.predict: the same preprocessing and label path as infer.
    runner = load(engine if engine is not None else checkpoint, device=device, provider=provider, threads=threads)
    with ConsoleWarnings(), runner, Progress(console, "evaluate") as bar:
        task = bar.add_task("images", total=n)
        scores = evaluate_predictions(lambda image: runner.predict([image])[0], (dataset[i] for i in range(n)),
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
