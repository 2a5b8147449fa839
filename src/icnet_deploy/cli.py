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
            console.print(f"[bold red]check failed:[/] {exc}")
            raise typer.Exit(1) from None
        except IcnetDeployError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
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


def _not_yet(command: str, issue: str) -> None:
    console.print(f"[bold red]error:[/] `icnet-deploy {command}` is not available yet ({issue} has not landed)")
    raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
