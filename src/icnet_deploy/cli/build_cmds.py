"""Commands that make artifacts: export (fp32 ONNX) and build-engine (fp16/int8, ONNX Runtime, TensorRT, torch)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import IcnetDeployError, ParityError
from ..fileio import refuse_overwriting
from ..manifest import manifest_path
from ..progress import stages
from ..progress import status as progress_status
from ..quantization.int8 import DEFAULT_TARGET_AGREEMENT
from .app import ConsoleWarnings, app, cli_errors, console, emit_json, parse_size


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
@cli_errors
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

    from ..export import export as run_export

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


@app.command("build-engine")
@cli_errors
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
    target_agreement: float = typer.Option(DEFAULT_TARGET_AGREEMENT, help="INT8 --search: agreement within δ=0.25 logit with fp32 to reach on calibration images (% or fraction)."),
    fp32_layer: Optional[list[str]] = typer.Option(None, "--fp32-layer", help="Keep this node in fp32 (repeatable); replaces the default rule."),
    weight_rounding: str = typer.Option("gptq", help="INT8 weight rounding: gptq (round each conv so its output moves least, on 8 calibration images; ~0.7 s per conv at 1024×2048) | nearest."),
    bias_correction: Optional[bool] = typer.Option(None, "--bias-correction/--no-bias-correction", help="INT8: remove the mean output shift each quantized conv adds (8 calibration images, a few seconds). Default: on with --weight-rounding nearest, off with gptq (which fits the biases itself)."),
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
    from ..build import build_engine

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
            target_agreement=target_agreement if search else None, fp32_layers=tuple(fp32_layer) if fp32_layer else None,
            weight_rounding=weight_rounding, bias_correction=bias_correction, threads=threads, workspace_mib=workspace_mib, timing_cache=timing_cache,
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
    from ..compile import compile_engine, compile_source

    refuse_overwriting([output, manifest_path(output)], [model, manifest_path(model)])
    checkpoint, shape = compile_source(model)
    n, h, w = shape or (1, 1024, 2048)
    h, w = size or (h, w)
    with ConsoleWarnings(), progress_status(console, "build-engine", "compiling") as say:
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
