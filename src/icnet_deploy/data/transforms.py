"""The one pre- and post-processing every backend uses, so parity measures the engine,
not two copies of the preprocessing: images in (``preprocess``), labels out (``to_labels``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..labels import colorize
from ..plugins import upsample_argmax

__all__ = ["preprocess", "preprocess_batch", "resize_image", "resize_labels", "resize_method", "to_labels", "colorize",
           "overlay"]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a uint8 H×W×3 RGB image, got {got}")


def preprocess(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 H×W×3 RGB → float32 1×3×H×W, ``(x - mean) / std`` per channel (0..255 units).

    ``mean``/``std`` are the weights' own (a manifest's, a config's, a runner's): there is no default,
    so an image is never normalised for other weights than the ones that will see it."""
    _check_image(image)
    mean_a = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)
    chw = image.transpose(2, 0, 1).astype(np.float32)
    return ((chw - mean_a) * inv_std)[None]


def preprocess_batch(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Several same-size images → float32 N×3×H×W."""
    return np.concatenate([preprocess(im, mean, std) for im in images], axis=0)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 H×W×3 image to ``size`` = (height, width)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an H×W label map (ids must never be blended)."""
    if labels.shape[:2] == tuple(size):
        return labels
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST))


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the palette colours of ``labels`` over ``image`` (both H×W)."""
    colours = colorize(labels).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def resize_method(output_kind: str, ran_at: tuple[int, int], size: tuple[int, int]) -> str:
    """How an engine that ran at ``ran_at`` is mapped back to ``size``: none | logits-bilinear | labels-nearest."""
    if tuple(ran_at) == tuple(size):
        return "none"
    return "logits-bilinear" if output_kind == "logits" else "labels-nearest"


def to_labels(output: np.ndarray, output_kind: str, size: tuple[int, int],
              ran_at: tuple[int, int] | None = None, *, threads: int | None = None) -> tuple[np.ndarray, str]:
    """One image's engine output (C×h×w logits or h×w labels) → (uint8 H×W train ids at ``size``, method).

    Logits at any resolution — the engine's full output, or the 1/4-resolution logits of
    ``Runner.infer_for_labels`` — become the labels of their bilinear upsample to ``size``,
    exactly (the UpsampleArgmax op, ``plugins.upsample_argmax``: the C kernel on ``threads``
    threads, or the numpy reference ``upsample.bilinear_argmax``). ``ran_at`` is the size the
    engine ran at (default: the output's), which is what ``method`` reports.
    """
    method = resize_method(output_kind, ran_at or output.shape[-2:], size)
    if output_kind == "logits":
        return upsample_argmax(output, size, threads=threads), method
    labels = np.asarray(output).astype(np.uint8)
    return (labels if labels.shape == tuple(size) else resize_labels(labels, size)), method
