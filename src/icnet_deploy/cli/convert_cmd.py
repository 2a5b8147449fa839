"""``convert``: weights trained elsewhere (mmsegmentation, Caffe) → a checkpoint every command takes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import IcnetDeployError
from .app import app, cli_errors, console, emit_json


@app.command()
@cli_errors
def convert(
    source: Path = typer.Argument(..., help="mmsegmentation ICNet checkpoint (.pth) or Caffe ICNet weights (.caffemodel)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.safetensors)."),
    source_format: Optional[str] = typer.Option(None, "--from", help="Source format: mmseg or caffe (default: from the suffix)."),
    config: Optional[str] = typer.Option(None, help="Target config (icnet_mmseg_r50, icnet_mmseg_r101, icnet_r50_half_caffe); "
                                         "default: read from the weights."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Convert weights trained elsewhere into a checkpoint every command takes: mmsegmentation's ICNet
    (model zoo icnet_r50-d8 / icnet_r101-d8, Cityscapes) or the original Caffe release. The file is read
    as data (never unpickled with code); every tensor must map onto the target network, or each problem is
    listed and nothing is written (exit 2). The output records its source file, sha256, framework and
    version, and the normalisation the weights expect (`icnet-deploy info --checkpoint OUT` shows them).

    Example: `icnet-deploy convert icnet_r50-d8_cityscapes.pth -o models/icnet_mmseg_r50.safetensors`
    """
    from ..convert import ConversionError, convert_checkpoint

    try:
        summary = convert_checkpoint(source, out, source_format=source_format, config=config)
    except ConversionError as exc:
        for line in exc.lines:  # one line per problem, on stderr; the summary line follows as the error
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        raise IcnetDeployError(f"{source}: cannot convert ({len(exc.problems)} problems, listed above); nothing written") from None
    if as_json:
        emit_json(summary)
    src = summary["provenance"]["converted_from"]
    console.print(f"wrote {out}: {summary['config']} ({summary['num_classes']} classes, {summary['tensors']} tensors) "
                  f"from {src['framework']} {src['framework_version']} weights {src['file']}", highlight=False)
