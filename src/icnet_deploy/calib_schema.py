"""What a calibration cache must hold before its ranges may build an engine.

A cache is a JSON file that can be edited, copied or received from elsewhere, and its ranges set
every activation's scale: a poisoned one (every range [0, 0], or ±1e38) builds an engine that
agrees with fp32 on 2–15% of pixels. So ``CalibrationCache.load`` refuses, with the field or
tensor named:

* a field of the wrong type (``check_fields``: the schema below);
* a range that is not two finite numbers, is degenerate (narrower than ``MIN_RANGE_WIDTH``), does
  not include 0 (``calibrate`` always includes it), or is implausible: beyond ±``MAX_ABS_RANGE``
  (measured at 128×256: random weights reach ±373, the shipped checkpoint ±27; fp16 itself ends at
  65504) — ``check_ranges``;
* a cache without a range for a tensor the quantizer needs (``missing_ranges``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_ABS_RANGE", "MIN_RANGE_WIDTH", "check_fields", "check_ranges", "missing_ranges"]

MAX_ABS_RANGE = 1e5
MIN_RANGE_WIDTH = 1e-6


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_number(value: Any, ok) -> bool:
    return value is None or (_is_number(value) and math.isfinite(value) and ok(value))


# field -> (test, what it must be); fields with defaults may be absent
_SCHEMA: dict[str, tuple[Any, str]] = {
    "method": (lambda v: isinstance(v, str), "a string"),
    "ranges": (lambda v: isinstance(v, dict) and bool(v), "an object of tensor name → [min, max]"),
    "graph_sha256": (lambda v: isinstance(v, str), "a string"),
    "image_set_sha256": (lambda v: isinstance(v, str), "a string"),
    "images": (lambda v: _is_int(v, 1), "a positive integer"),
    "input_size": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(s, 1) for s in v),
                   "[height, width] in positive integers"),
    "percentile": (lambda v: _optional_number(v, lambda p: 0 < p <= 100), "null or a number in (0, 100]"),
    "tail_cap": (lambda v: _optional_number(v, lambda c: c >= 1), "null or a number ≥ 1"),
    "created": (lambda v: isinstance(v, str), "a string"),
    "versions": (lambda v: isinstance(v, dict), "an object"),
    "format": (lambda v: isinstance(v, str), "a string"),
    "version": (lambda v: _is_int(v, 0), "a non-negative integer"),
}
_REQUIRED = ("method", "ranges", "graph_sha256", "image_set_sha256", "images", "input_size")


def check_fields(data: dict[str, Any]) -> str | None:
    """The first schema problem of a cache's JSON object (``"field x must be …"``), or None."""
    for name in _REQUIRED:
        if name not in data:
            return f"field {name!r} is missing"
    for name, (ok, what) in _SCHEMA.items():
        if name in data and not ok(data[name]):
            return f"field {name!r} must be {what}, got {_short(data[name])}"
    return None


def check_ranges(ranges: dict[str, Any]) -> str | None:
    """The first range that could not come from calibration (see the module docstring), or None."""
    for name, value in ranges.items():
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            return f"range of {name!r} must be [min, max], got {_short(value)}"
        lo, hi = (float(v) for v in value)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return f"range of {name!r} is not finite: [{lo:g}, {hi:g}]"
        if hi - lo < MIN_RANGE_WIDTH:
            return f"range of {name!r} is degenerate: [{lo:g}, {hi:g}]"
        if lo > 0:
            return f"range of {name!r} does not include 0: [{lo:g}, {hi:g}]"
        if max(-lo, hi) > MAX_ABS_RANGE:
            return f"range of {name!r} is implausible: [{lo:g}, {hi:g}] (beyond ±{MAX_ABS_RANGE:g})"
    return None


def missing_ranges(ranges: dict[str, Any], model: Any, op_types: tuple[str, ...]) -> list[str]:
    """Float activations that ``op_types`` nodes of ``model`` (a shape-inferred ModelProto) read or
    write and ``ranges`` has no entry for: the tensors the quantizer would need a range for."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    float_tensors = {v.name for v in (*graph.input, *graph.output, *graph.value_info)
                     if v.type.tensor_type.elem_type == 1}
    needed = {t for n in graph.node if n.op_type in op_types for t in (*n.input, *n.output)
              if t and t not in initializers and t in float_tensors}
    return sorted(needed - set(ranges))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
