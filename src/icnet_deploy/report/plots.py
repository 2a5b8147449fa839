"""The report's pictures: matplotlib figures as inline SVG, label and disagreement maps as PNG data URIs.

matplotlib is imported when a plot is drawn (``pip install 'icnet-deploy[report]'``); figures are
built with ``matplotlib.figure.Figure`` directly, not pyplot, so no GUI backend is ever touched.
SVG text is drawn as paths (matplotlib's default): the page needs no font.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import IcnetDeployError

__all__ = ["require_matplotlib", "png_data_uri", "labels_rgb", "disagreement_rgb", "downscale", "gap_scale",
           "latency_svg", "ratio_bars_svg", "memory_svg", "class_iou_svg", "gap_colorbar_svg"]

# flipped pixels on a dark grey image: turbo without its darkest ends, so even a small gap stands out
GAP_COLORMAP = "turbo"
GAP_COLOUR_RANGE = (0.15, 0.9)
# the engine's names and the class names run down the y axis: their colours, one per engine
ENGINE_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
MODE_LABELS = {"compute": "compute (runner.infer)", "end_to_end": "end to end (uint8 image → labels)"}


def require_matplotlib() -> None:
    """Raise a clear error when the plotting library is missing (before any slow work)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise IcnetDeployError("HTML reports need matplotlib: pip install 'icnet-deploy[report]'")


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.set_facecolor("white")
    return fig


def _gap_colormap() -> Any:
    import matplotlib
    from matplotlib.colors import ListedColormap

    low, high = GAP_COLOUR_RANGE
    return ListedColormap(matplotlib.colormaps[GAP_COLORMAP](np.linspace(low, high, 256)), name="gap")


def _svg(fig: Any, title: str, css_class: str = "plot") -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, no date), scaled by CSS."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Title": title})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # the page's CSS sizes it (width 100%); the viewBox keeps the aspect ratio
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', rf'<svg\1 class="{css_class}" role="img"', text, count=1)
    return text


def png_data_uri(rgb: np.ndarray) -> str:
    """uint8 H×W×3 (or H×W) → ``data:image/png;base64,…``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def downscale(factor: int, image: np.ndarray, reference: np.ndarray, engine: np.ndarray,
              gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shrink the four arrays by an integer ``factor`` for display: the image bilinear, labels by
    taking every ``factor``-th pixel, the gap by the *maximum* of each block, so no flipped pixel
    disappears from the disagreement map."""
    if factor <= 1:
        return image, reference, engine, gap
    from ..data.transforms import resize_image

    h, w = gap.shape
    hs, ws = math.ceil(h / factor), math.ceil(w / factor)
    padded = np.zeros((hs * factor, ws * factor), dtype=gap.dtype)
    padded[:h, :w] = gap
    block_max = padded.reshape(hs, factor, ws, factor).max(axis=(1, 3))
    return (resize_image(image, (hs, ws)), reference[::factor, ::factor], engine[::factor, ::factor], block_max)


def labels_rgb(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Train ids → RGB with ``palette`` (ids outside it are black)."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[labels.astype(np.uint8)]


def gap_scale(gaps: Sequence[np.ndarray], floor: float) -> float:
    """One colour scale for every disagreement map of a report: the 99th percentile of the flipped
    pixels' logit gaps, rounded up to 1, 2 or 5 × 10ⁿ, at least ``floor``."""
    flipped = [g[g > 0] for g in gaps]
    values = np.concatenate(flipped) if flipped else np.zeros(0, dtype=np.float32)
    top = float(np.percentile(values, 99)) if values.size else 0.0
    top = max(top, floor)
    exponent = 10.0 ** math.floor(math.log10(top))
    return next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= top)


def disagreement_rgb(image: np.ndarray, reference: np.ndarray, engine: np.ndarray, gap: np.ndarray,
                     vmax: float) -> np.ndarray:
    """The image dimmed to dark grey, with each flipped pixel coloured by its logit gap (0…``vmax``,
    ``GAP_COLORMAP``, larger gaps clipped to the top colour)."""
    require_matplotlib()
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.3 + 20.0
    out = np.repeat(grey, 3, axis=2)
    flipped = (reference != engine) | (gap > 0)
    if flipped.any():
        colours = _gap_colormap()(np.clip(gap[flipped] / vmax, 0.0, 1.0))[:, :3] * 255.0
        out[flipped] = colours
    return out.clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------
def gap_colorbar_svg(vmax: float, delta: float | None) -> str:
    """The disagreement maps' colour scale, with the near-tie margin δ marked."""
    fig = _figure(7.0, 0.95)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax = fig.add_subplot()
    bar = fig.colorbar(ScalarMappable(Normalize(0, vmax), _gap_colormap()), cax=ax, orientation="horizontal",
                       extend="max")
    bar.set_label("flipped pixel: eager's best logit − eager's logit of the engine's class")
    if delta is not None and 0 < delta < vmax:
        ax.axvline(delta, color="white", lw=2)
        ax.annotate(f"δ = {delta:g}", (delta, 1.0), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, annotation_clip=False)
    return _svg(fig, "colour scale of the disagreement maps", "plot narrow")


def _horizontal_boxes() -> dict[str, Any]:
    """``boxplot``'s keyword for horizontal boxes: ``orientation`` since matplotlib 3.10, ``vert`` before."""
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def latency_svg(engines: Sequence[dict], modes: Sequence[str]) -> str:
    """Per engine and mode, a box plot of the per-iteration latencies with every iteration as a dot
    (a log axis where the engines' medians differ more than 5×, so the fast ones stay visible)."""
    names = [e["name"] for e in engines]
    fig = _figure(12.0, 0.5 * len(engines) + 1.3)
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    rng = np.random.default_rng(0)  # jitter only: the dots' vertical spread
    for ax, mode in zip(axes, modes):
        samples = [e[mode].get("times_ms") or [] for e in engines]
        rows = [k for k, s in enumerate(samples) if s]
        ax.boxplot([samples[k] for k in rows], positions=rows, widths=0.55, showfliers=False,
                   medianprops={"color": "black", "lw": 1.6}, whis=(0, 100), **_horizontal_boxes())
        for k in rows:
            y = k + rng.uniform(-0.18, 0.18, len(samples[k]))
            ax.scatter(samples[k], y, s=12, alpha=0.7, color=ENGINE_COLOURS[k % len(ENGINE_COLOURS)], zorder=3)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("latency per call, ms")
        ax.set_title(MODE_LABELS.get(mode, mode), fontsize=10)
        medians = [float(np.median(samples[k])) for k in rows]
        if medians and min(medians) > 0 and max(medians) / min(medians) > 5:
            ax.set_xscale("log")
            ax.set_xlabel("latency per call, ms (log scale)")
        else:
            ax.set_xlim(left=0)
        ax.grid(axis="x", which="both", alpha=0.3)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    return _svg(fig, "latency per engine")


def ratio_bars_svg(engines: Sequence[dict], key: str, modes: Sequence[str], against: str) -> str:
    """Speed-up of each engine over ``against`` (``engine[key]``: vs_eager or vs_baseline), one bar per
    mode: the ratio of p50s, whiskers the interquartile range of the per-round ratios."""
    fig = _figure(12.0, 0.3 * len(engines) * len(modes) + 1.1)
    ax = fig.add_subplot()
    height = 0.8 / len(modes)
    for m, mode in enumerate(modes):
        ys, values, lows, highs = [], [], [], []
        for k, e in enumerate(engines):
            vs = e.get(key) or {}
            value = vs.get(f"{mode}_speedup")
            if value is None:
                continue
            paired = vs.get(f"{mode}_speedup_paired") or {}
            ys.append(k + (m - (len(modes) - 1) / 2) * height)
            values.append(value)
            lows.append(max(0.0, value - paired.get("p25", value)))
            highs.append(max(0.0, paired.get("p75", value) - value))
        bars = ax.barh(ys, values, height=height * 0.9, xerr=[lows, highs], capsize=3,
                       color=ENGINE_COLOURS[m], label=MODE_LABELS.get(mode, mode))
        ax.bar_label(bars, labels=[f"{v:.2f}×" for v in values], padding=4, fontsize=8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(engines)), [e["name"] for e in engines])
    ax.invert_yaxis()
    ax.set_xlabel(f"speed-up over {against} (p50 / p50; whiskers: interquartile range of the per-round ratios)")
    ax.margins(x=0.15)
    fig.legend(loc="outside upper center", ncols=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, f"speed-up over {against}")


def memory_svg(engines: Sequence[dict], base: str | None) -> str:
    """Memory each engine adds over its process's post-import baseline (MiB), with its ratio to eager
    (and to ``base``) written on the bar."""
    series = (("engine_rss_mib", "with the full-resolution logits"), ("labels_engine_rss_mib", "labels path"))
    fig = _figure(12.0, 0.3 * len(engines) * 2 + 1.1)
    ax = fig.add_subplot()
    height = 0.4
    for m, (key, label) in enumerate(series):
        ys, values, texts = [], [], []
        for k, e in enumerate(engines):
            mem = e.get("memory") or {}
            if key not in mem:
                continue
            ratio_key = "rss_ratio" if key == "engine_rss_mib" else "labels_rss_ratio"
            ratios = [f"{(e.get('vs_eager') or {}).get(ratio_key, float('nan')):.2f}× eager"]
            if base and (e.get("vs_baseline") or {}).get(ratio_key) is not None:
                ratios.append(f"{e['vs_baseline'][ratio_key]:.2f}× {base}")
            ys.append(k + (m - 0.5) * height)
            values.append(mem[key])
            texts.append(f"{mem[key]:.0f} MiB ({', '.join(ratios)})")
        bars = ax.barh(ys, values, height=height * 0.9, color=ENGINE_COLOURS[m], label=label)
        ax.bar_label(bars, labels=texts, padding=4, fontsize=8)
    ax.set_yticks(range(len(engines)), [e["name"] for e in engines])
    ax.invert_yaxis()
    ax.set_xlabel("memory added by the engine (peak RSS of a fresh process − its RSS after imports), MiB")
    ax.margins(x=0.45)
    fig.legend(loc="outside upper center", ncols=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, "memory per engine")


def class_iou_svg(per_class: dict[str, dict], set_name: str) -> str | None:
    """Per class: the IoU change against ground truth (engine − eager, points) where there is
    ground truth, and 100 − IoU of the engine's labels against eager's. None when no class has either."""
    panels = [("iou_delta", "IoU vs ground truth: engine − eager (points)"),
              ("iou_vs_reference", "IoU of the engine's labels against eager's − 100 (points)")]
    panels = [(k, t) for k, t in panels if any(pc.get(k) is not None for pc in per_class.values())]
    if not panels:
        return None
    names = list(per_class)
    fig = _figure(12.0, 0.16 * len(names) + 1.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels):
        values = [per_class[n].get(key) for n in names]
        deltas = [np.nan if v is None else (v - 100.0 if key == "iou_vs_reference" else v) for v in values]
        colours = ["#c44e52" if (d or 0) < 0 else "#55a868" for d in deltas]
        ax.barh(range(len(names)), [0 if np.isnan(d) else d for d in deltas], color=colours)
        for k, d in enumerate(deltas):
            if np.isnan(d):
                ax.text(0, k, "  absent", va="center", fontsize=7, color="#777")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        low = min([d for d in deltas if not np.isnan(d)] + [0.0])
        ax.set_xlim(min(low * 1.15, -0.05), max(max([d for d in deltas if not np.isnan(d)] + [0.0]) * 1.15, 0.05))
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle(f"per-class IoU, {set_name}", fontsize=10)
    return _svg(fig, f"per-class IoU deltas, {set_name}")
