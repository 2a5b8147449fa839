"""HTML reports of ``check`` and ``bench``: one self-contained page a person would rather read.

``check --html`` / ``bench --html`` write the page of the result they just computed;
``icnet-deploy report RESULTS.json… -o page.html`` renders saved ``--json`` results after the fact
(CI). The page needs nothing but a browser: inline CSS, inline SVG plots, PNG data URIs.

``check --html`` also draws the least-agreeing images (``WorstImages``, a ``check(observe=…)``
hook); a ``--json`` result holds numbers only, so a page rendered from it says where to get them.
Plots need matplotlib (``pip install 'icnet-deploy[report]'``), imported when a page is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from .html import bench_html, check_html, result_kind, results_html
from .plots import require_matplotlib
from .worst import KeptImage, WorstImages

__all__ = ["WorstImages", "KeptImage", "check_html", "bench_html", "results_html", "read_results", "write_html",
           "require_matplotlib", "result_kind"]


def read_results(paths: Sequence[str | Path]) -> list[dict]:
    """The ``--json`` results of ``check`` and ``bench`` in ``paths``, in order.

    Raises ``DataError`` naming the file that is missing, not JSON, or neither kind of result.
    Text before the JSON object (a log line in a redirected stdout) is skipped."""
    results = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        text = path.read_text(encoding="utf-8", errors="replace")
        start = text.find("{")
        try:
            data = json.loads(text[start:]) if start >= 0 else None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if result_kind(data) is None:
            raise DataError(f"{path}: not a result of `icnet-deploy check --json` or `bench --json`")
        results.append(data)
    if not results:
        raise DataError("no result files given")
    return results


def write_html(path: str | Path, page: str) -> Path:
    """Write ``page`` atomically (temp file, then rename) and return the path."""
    from ..fileio import atomic_write_text

    atomic_write_text(path, page)
    return Path(path)
