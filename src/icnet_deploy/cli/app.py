"""The typer app and what every command shares: the console, error → exit code mapping, JSON on stdout.

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
from typer.exceptions import TyperException

from ..errors import IcnetDeployError, ParityError
from ..fileio import refuse_overwriting
from ..progress import set_level


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
        from ..machine import package_version

        typer.echo(package_version())
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


def cli_errors(func: Callable) -> Callable:
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
            from ..optional import EXTRAS, missing_extra_message

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


def load_model_quietly(checkpoint: Optional[Path], config: Optional[str] = None):
    from ..model.weights import load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(checkpoint, config)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    return model


class ConsoleWarnings(warnings.catch_warnings):
    """Show library warnings (e.g. "no shipped checkpoint: random weights") as one console line each."""

    def __enter__(self):
        result = super().__enter__()
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_a, **_k: console.print(f"[yellow]warning:[/] {escape(str(message))}")
        return result


def require_report_path(report: Optional[Path], inputs: list) -> None:
    """A report file (``--junit``, ``--html``, ``report -o``) that names a folder or an input is refused
    before the run, not after it."""
    if report is None:
        return
    if report.is_dir():
        raise IcnetDeployError(f"{report}: is a folder; give a report file name like reports/parity.xml")
    refuse_overwriting([report], inputs)


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


def prepare_argv(argv: list[str]) -> list[str]:
    """What ``main`` hands typer for a command line: global flags first, optional values filled in."""
    return _fill_optional_values(_hoist_global_flags(argv))


def main() -> None:
    app(args=prepare_argv(sys.argv[1:]))
