"""Commands that run engines: infer, bench, report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..data.folders import DEFAULT_MAX_PIXELS
from ..errors import IcnetDeployError
from ..progress import Progress
from ..progress import status as progress_status
from .app import ConsoleWarnings, app, cli_errors, console, emit_json, parse_size, require_report_path


def _engine_label(desc: dict) -> str:
    return f"{desc.get('backend')} · {desc.get('provider')}"


def _auto_engine(folder: Path, device: str, provider: Optional[str], threads: Optional[int]) -> str:
    """``--engine auto``: the fastest engine here that meets parity (``compile.select_engine``); says why."""
    from ..compile import engine_candidates, select_engine

    with ConsoleWarnings(), progress_status(console, "--engine auto", "comparing candidates") as say:
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
@cli_errors
def infer_cmd(
    source: str = typer.Argument(..., help="An image, a folder (searched recursively) or a quoted glob ('photos/**/*.jpg')."),
    engine: Optional[str] = typer.Option(None, "--engine", "-e", help="Engine (.onnx, …) or checkpoint; default: the shipped checkpoint, eager PyTorch. `auto`: the fastest that meets parity here (eager or one in --engines-dir)."),
    engines_dir: Path = typer.Option(Path("build"), "--engines-dir", help="Where `--engine auto` looks for engines."),
    output: Path = typer.Option(Path("infer_out"), "--output", "-o", help="Output folder; the input tree is mirrored under it."),
    batch: int = typer.Option(1, min=1, help="Images per engine call (engines with a static batch use theirs)."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Also write NAME_overlay.jpg (palette over the photo)."),
    allow_inside: bool = typer.Option(False, "--allow-inside", help="Allow an output folder inside the input folder."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Skip (and name) images whose header declares more pixels than this, without decoding them."),
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
    from ..backends.loader import load
    from ..infer import infer_images

    if engine == "auto":
        engine = _auto_engine(engines_dir, device, provider, threads)
    if ray is None:
        if engine is not None and engine.startswith("eager-"):  # auto may pick eager fp16 on CUDA
            runner = load(None, device=device, precision=engine.split("-", 1)[1], threads=threads, name=engine)
        else:
            runner = load(engine, device=device, provider=provider, threads=threads)
    with ConsoleWarnings(), Progress(console, "infer") as bar:
        task = bar.add_task("images")

        def update(done: int, total: int, info: dict) -> None:
            task.update(done, total=total,
                        status=f"{info['images_per_s']:.1f} img/s" + (f" · {info['failed']} failed" if info["failed"] else ""))

        if ray is None:
            report = infer_images(runner, source, output, batch=batch, overlay=overlay, allow_inside=allow_inside,
                                  max_pixels=max_pixels, progress=update)
        else:
            from ..serve.ray import infer_images_ray

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
@cli_errors
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
    from ..bench import bench as run_bench

    require_report_path(html, [Path(e) for e in engine if e != "auto"])
    if html:
        from ..report import require_matplotlib

        require_matplotlib()  # before the slow part
    if "auto" in engine:
        engine = [_auto_engine(engines_dir, device, provider, threads) if e == "auto" else e for e in engine]
    with ConsoleWarnings(), Progress(console, "bench") as bar:
        task = bar.add_task("bench")
        report = run_bench(
            engine, size=parse_size(size) if size else None, batch=batch, iters=iters, warmup=warmup, device=device,
            provider=provider, threads=threads, checkpoint=checkpoint, memory=memory, end_to_end=end_to_end,
            baseline=baseline, eager=eager, progress=lambda phase, done, total: task.update(done, total=total, status=phase),
        )
        result = report.to_dict()
        if parity:
            from ..check import parity_verdict

            for e in result["engines"][1:]:
                task.update(status=f"check {e['name']}")
                try:
                    e["parity"] = parity_verdict(e["spec"], checkpoint=checkpoint, device=device, provider=provider,
                                                 threads=threads)
                except IcnetDeployError as exc:  # e.g. an engine from random weights has no reference: say so, go on
                    e["parity"] = {"error": str(exc)}
                    console.print(f"[yellow]parity of {escape(e['name'])} not checked:[/] {escape(str(exc))}")
    console.print(_bench_table(result))
    if html:
        from ..report import bench_html, write_html

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
    from ..plugins import label_path_text

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


@app.command("report")
@cli_errors
def report_cmd(
    results: list[Path] = typer.Argument(..., help="Saved `check --json` / `bench --json` outputs, in the order to show them."),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    title: Optional[str] = typer.Option(None, help="Page title (default: from the results)."),
) -> None:
    """One self-contained HTML page from saved check and bench results (CI can render after the fact).

    Example: `icnet-deploy check -e build/icnet_int8.onnx --json > check.json; icnet-deploy bench -e build/icnet_int8.onnx --json > bench.json; icnet-deploy report check.json bench.json -o report.html`

    The least-agreeing images are drawn by `check --html` only: a --json result holds numbers, not pixels.
    """
    from ..report import read_results, require_matplotlib, results_html, write_html

    require_report_path(output, list(results))
    require_matplotlib()
    page = results_html(read_results(results), title=title)
    write_html(output, page)
    console.print(f"HTML report: {output}", highlight=False)
