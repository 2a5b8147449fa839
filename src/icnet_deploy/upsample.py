"""Labels from logits without building the full-resolution logits: the last step of every engine.

ICNet classifies at 1/4 of the input and upsamples the C logit maps bilinearly to full size
(``align_corners=False``) before the argmax. At 1024×2048 that upsample writes 19 × 2 M floats
(160 MB) and the argmax reads them all again — on 2 CPU cores about as long as the INT8 network
itself. ``bilinear_argmax`` gives *the same labels* from the 1/4-resolution logits:

* every output pixel is a convex combination of its four source pixels (the two taps per axis
  of half-pixel bilinear interpolation);
* if those four share one argmax class c, each has l[c] > l[k] for every k before c and
  l[c] ≥ l[k] after it, and so has any convex combination: the pixel's label is c, no
  arithmetic needed;
* only pixels whose four sources disagree (class boundaries: 4–20% of the pixels on scenes and
  photos) are interpolated — all C classes, exactly as the upsample would — and argmax'ed.

The taps are computed in float32 as PyTorch's ``upsample_bilinear2d`` computes them (scale =
in/out, source = (dst + ½)·scale − ½, clamped at 0), for any pair of sizes (×4, odd sizes such
as 1025×2049 from 258×514, or shrinking), so the labels equal ``F.interpolate(...).argmax(1)``
up to float rounding at exact ties. ``argmax_classes`` is the plain argmax over the class axis,
done as a running maximum (2× faster than ``ndarray.argmax(0)`` on a 19×1024×2048 array, same
first-maximum rule).
"""

from __future__ import annotations

import numpy as np

__all__ = ["argmax_classes", "bilinear_argmax", "bilinear_taps", "labels_of"]

_CHUNK = 1 << 19  # boundary pixels interpolated at once: bounds the scratch memory to ~40 MB per array


def _label_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 256 else np.int32


def argmax_classes(logits: np.ndarray) -> np.ndarray:
    """C×H×W logits → H×W labels (uint8 for ≤ 256 classes); the first maximum wins, as in argmax
    (for finite logits; with NaNs the class is unspecified, where ``ndarray.argmax`` picks the first NaN)."""
    if logits.ndim != 3 or logits.shape[0] < 1:
        raise ValueError(f"expected C×H×W logits, got shape {logits.shape}")
    best = logits[0].copy()
    labels = np.zeros(logits.shape[1:], dtype=_label_dtype(logits.shape[0]))
    better = np.empty(logits.shape[1:], dtype=bool)
    for c in range(1, logits.shape[0]):
        np.greater(logits[c], best, out=better)
        np.maximum(best, logits[c], out=best)
        np.putmask(labels, better, c)
    return labels


def labels_of(logits: np.ndarray) -> np.ndarray:
    """N×C×H×W (or C×H×W) logits → N×H×W (or H×W) labels, by ``argmax_classes``."""
    if logits.ndim == 3:
        return argmax_classes(logits)
    if logits.ndim != 4:
        raise ValueError(f"expected N×C×H×W logits, got shape {logits.shape}")
    return np.stack([argmax_classes(one) for one in logits])


def bilinear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index along one axis: (first source index, second source index, weight of the second)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    first = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    second = np.minimum(first + 1, n_in - 1)
    return first, second, (src - first).astype(np.float32)


def bilinear_argmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """C×h×w logits → H×W labels of their bilinear upsample to ``size`` (align_corners=False), exactly."""
    if logits.ndim != 3:
        raise ValueError(f"expected C×h×w logits, got shape {logits.shape}")
    num_classes, h, w = logits.shape
    height, width = int(size[0]), int(size[1])
    coarse = argmax_classes(logits)
    if (h, w) == (height, width):
        return coarse
    y0, y1, wy = bilinear_taps(height, h)
    x0, x1, wx = bilinear_taps(width, w)
    # A source cell (i, j) spans rows i, i+1 and columns j, j+1 (clamped at the last one).
    edge = np.pad(coarse, ((0, 1), (0, 1)), mode="edge")
    corner = edge[:-1, :-1]
    uniform = (corner == edge[1:, :-1]) & (corner == edge[:-1, 1:]) & (corner == edge[1:, 1:])
    labels = coarse[y0][:, x0]
    rows, cols = np.nonzero(~uniform[y0][:, x0])
    if rows.size:
        pixels = np.ascontiguousarray(np.moveaxis(logits, 0, -1), dtype=np.float32).reshape(h * w, num_classes)
        for start in range(0, rows.size, _CHUNK):
            r, c = rows[start:start + _CHUNK], cols[start:start + _CHUNK]
            top_row, bottom_row, left, right = y0[r] * w, y1[r] * w, x0[c], x1[c]
            fy, fx = wy[r][:, None], wx[c][:, None]
            top = np.take(pixels, top_row + left, axis=0)
            top += (np.take(pixels, top_row + right, axis=0) - top) * fx
            bottom = np.take(pixels, bottom_row + left, axis=0)
            bottom += (np.take(pixels, bottom_row + right, axis=0) - bottom) * fx
            top += (bottom - top) * fy
            labels[r, c] = top.argmax(1)
    return labels
