"""Commands beyond one process: serve (Triton Inference Server), serve-bench, export-triton."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..data.folders import DEFAULT_MAX_PIXELS
from ..errors import DataError, IcnetDeployError
from ..progress import level as progress_level, status as progress_status
from .app import ConsoleWarnings, _session, app, cli_errors, console, emit_json, parse_size


@app.command("serve")
@cli_errors
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
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this."),
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
    from ..serve.triton import ServeOptions, serve

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

    with ConsoleWarnings():
        serve(engine, options, on_ready=ready)
    console.print("server stopped", highlight=False)


@app.command("serve-bench")
@cli_errors
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

    from ..data.transforms import resize_image
    from ..serve.client import bench_server

    h, w = parse_size(size)
    if images is not None:
        from ..data.folders import list_images, read_rgb

        pictures = [resize_image(read_rgb(f), (h, w)) for f in list_images(images)[:8]]
        if not pictures:
            raise DataError(f"{images}: no images")
    else:
        from ..data.synthetic import generate_scene

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
@cli_errors
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
    from ..serve.repository import RepositoryOptions, export_repository

    result = export_repository(engine, out, RepositoryOptions(model_name=model_name, max_batch=max_batch,
                                                              queue_delay_us=queue_delay_us, instances=instances,
                                                              kind=kind), overwrite=overwrite)
    console.print(f"wrote {out}/: {', '.join(result['models'])} ({result['platform']}, max_batch_size "
                  f"{result['max_batch_size']}, {instances} × {result['instance_kind']}); serve it with "
                  f"tritonserver --model-repository {out}", highlight=False)
    if as_json:
        emit_json(result)
