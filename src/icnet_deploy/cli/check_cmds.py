"""The CI parity gate: check, its tables (sets, layerwise, INT8 breakdown), JUnit and HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..check import HELDOUT_COUNT
from ..errors import ParityError
from ..manifest import manifest_path
from ..progress import status as progress_status
from .app import ConsoleWarnings, app, cli_errors, console, emit_json, parse_size, require_report_path


@app.command("check")
@cli_errors
def check_cmd(
    engine: Path = typer.Option(..., "--engine", "-e", help="Engine to check (.onnx, …; its manifest names its checkpoint)."),
    images: Optional[Path] = typer.Option(None, help="Folder of images (recursive) instead of the generated scenes and photos."),
    labels: Optional[Path] = typer.Option(None, help="Ground truth for --images: NAME_labelTrainIds.png or NAME_gtFine_labelIds.png, same tree."),
    data: Optional[Path] = typer.Option(None, help="Cityscapes-layout dataset root (leftImg8bit/ + gtFine/)."),
    split: str = typer.Option("val", help="Split of --data."),
    count: int = typer.Option(HELDOUT_COUNT, min=0, help="Generated held-out scenes (seeds 950000+), with exact labels."),
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
    from ..check import check as run_check
    from ..check import write_junit

    for report_path in (junit, html):
        require_report_path(report_path, [engine, manifest_path(engine), checkpoint])
    keeper = None
    if html:
        from ..report import WorstImages, require_matplotlib

        require_matplotlib()  # before the slow part
        keeper = WorstImages()

    with ConsoleWarnings(), progress_status(console, "check", "checking") as say:
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
        from ..report import check_html, write_html

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


def _check_table(result: dict, engine: str) -> Table:
    from ..metrics import NEAR_TIE_LOGIT

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
        from ..machine import describe_cpu

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
    from ..diagnostics.int8_breakdown import LOSSES, STEPS

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
