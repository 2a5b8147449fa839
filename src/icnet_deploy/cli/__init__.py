"""The ``icnet-deploy`` command line: a thin typer layer over the library, one module per group of commands."""

from . import model_cmds, convert_cmd, build_cmds, run_cmds, check_cmds, serve_cmds  # noqa: F401, I001 - each registers its commands on ``app``, in this order
from .app import app, main

__all__ = ["app", "main"]
