"""Progress a person and a CI log can both read: the one progress abstraction of the CLI.

On a terminal, a live Rich bar (or spinner); anywhere else — CI, ``| tee``, a log file — plain
lines on stderr::

    build-engine: calibrating 12/32 (38%) · elapsed 0:41 · ETA 1:08

one when a step starts, then at most one every ``PLAIN_INTERVAL_S`` seconds per command (and the
final count of a step that ran longer than that), so a 20-minute INT8 build is never silent and a
folder of 10,000 images does not write 10,000 lines. ``set_level("quiet")`` (``--quiet``): no
progress at all; ``"verbose"`` (``--verbose``): a plain line for every update.

Usage: ``with Progress(console, "infer") as p: task = p.add_task("images", total=n); task.update(i)``;
``stages(console, cmd)`` gives the ``(stage, done, total)`` callback of library functions, and
``status(console, cmd)`` the ``(message)`` one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LEVELS", "PLAIN_INTERVAL_S", "Progress", "StageProgress", "Task", "level", "no_progress", "set_level", "stages",
           "status"]

PLAIN_INTERVAL_S = 10.0

# What a library function reports long work to: (stage, done, total). The CLI passes ``stages()``'s
# callback; a Python caller passes its own, or nothing (``no_progress``).
StageProgress = Callable[[str, int, int], None]


def no_progress(_stage: str, _done: int, _total: int) -> None:
    """The silent StageProgress."""
LEVELS = ("quiet", "normal", "verbose")
_state = {"level": "normal"}


def set_level(value: str) -> None:
    if value not in LEVELS:
        raise ValueError(f"progress level must be one of {', '.join(LEVELS)}, got {value!r}")
    _state["level"] = value


def level() -> str:
    return _state["level"]


def _clock_text(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Task:
    """One step of a command: its count (``completed`` of ``total``, which may be unknown) and a status text."""

    def __init__(self, owner: "Progress", description: str, total: float | None, status: str) -> None:
        self._owner = owner
        self.description = description
        self.total = total
        self.completed = 0.0
        self.status = status
        self.started = owner.clock()
        self.announced = False
        self.rich_id: Any = None

    def update(self, completed: float | None = None, *, total: float | None = None, status: str | None = None,
               advance: float = 0) -> None:
        if total is not None:
            self.total = total
        if completed is not None:
            self.completed = completed
        self.completed += advance
        if status is not None:
            self.status = status
        self._owner._changed(self)

    def advance(self, n: float = 1) -> None:
        self.update(advance=n)

    def line(self, now: float) -> str:
        """``description i/n (p%) · status · elapsed m:ss · ETA m:ss``."""
        elapsed = now - self.started
        parts = [self.description]
        done = int(self.completed)
        if self.total:
            parts[0] += f" {done}/{int(self.total)} ({100.0 * self.completed / self.total:.0f}%)"
        elif done:
            parts[0] += f" {done}"
        if self.status:
            parts.append(self.status)
        parts.append(f"elapsed {_clock_text(elapsed)}")
        if self.total and 0 < self.completed < self.total:
            parts.append(f"ETA {_clock_text(elapsed * (self.total - self.completed) / self.completed)}")
        return " · ".join(parts)


class Progress:
    """Context manager for one command's progress: a Rich bar on a terminal, plain lines otherwise.

    ``live``: force the bar (True) or plain lines (False); default: the console is a terminal.
    ``interval``: seconds between plain lines (default ``PLAIN_INTERVAL_S``; 0 with ``--verbose``).
    """

    def __init__(self, console: Any, command: str = "", *, live: bool | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.command = command
        self.quiet = level() == "quiet"
        self.live = (console.is_terminal and not console.is_dumb_terminal) if live is None else live
        self.interval = (0.0 if level() == "verbose" else PLAIN_INTERVAL_S) if interval is None else interval
        self.clock = clock
        self._bar: Any = None
        self._last_line = float("-inf")
        self._lock = threading.Lock()

    def __enter__(self) -> "Progress":
        if self.live and not self.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=self.console)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def add_task(self, description: str, total: float | None = None, status: str = "") -> Task:
        task = Task(self, description, total, status)
        if self._bar is not None:
            task.rich_id = self._bar.add_task(description, total=total, status=status)
        return task

    def _changed(self, task: Task) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(task.rich_id, completed=task.completed, total=task.total, status=task.status)
            return
        with self._lock:
            now = self.clock()
            finished = bool(task.total) and task.completed >= task.total
            due = (not task.announced or now - self._last_line >= self.interval
                   or (finished and now - task.started >= self.interval))
            if not due:
                return
            task.announced = True
            self._last_line = now
            prefix = f"{self.command}: " if self.command else ""
            self.console.print(prefix + task.line(now), markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def stages(console: Any, command: str = "", **options: Any) -> Iterator[Callable[[str, int, int], None]]:
    """The ``(stage, done, total)`` callback of the library's long steps (build, calibration, …): one
    task per stage name."""
    with Progress(console, command, **options) as progress:
        tasks: dict[str, Task] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=max(total, 1))
            tasks[stage].update(done, total=max(total, done, 1))

        yield report


@contextlib.contextmanager
def status(console: Any, command: str, first: str = "") -> Iterator[Callable[[str], None]]:
    """The ``(message)`` callback of steps that say what they do, not how far (export, check): a
    spinner on a terminal; otherwise plain lines ``command: message · elapsed m:ss``, throttled like
    ``Progress`` (the first message at once)."""
    if level() == "quiet":
        yield lambda _message: None
        return
    progress = Progress(console, command)
    if progress.live:
        from rich.markup import escape

        with console.status(escape(first or command)) as spinner:
            yield lambda message: spinner.update(escape(message))
        return
    task = progress.add_task(first)
    task.started = progress.clock()  # elapsed: since the command began

    def say(message: str) -> None:
        task.description = message
        task.update()

    if first:
        task.update()
    yield say
