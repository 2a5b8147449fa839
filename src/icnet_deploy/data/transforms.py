"""The one pre- and post-processing every backend uses, so parity measures the engine,
not two copies of the preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..model.config import DEFAULT_MEAN, DEFAULT_STD
from .labels import colorize

__all__ = ["preprocess", "preprocess_batch", "resize_image", "resize_labels", "colorize", "overlay"]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a uint8 H×W×3 RGB image, got {got}")


def preprocess(
    image: np.ndarray, mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD
) -> np.ndarray:
    """uint8 H×W×3 RGB → float32 1×3×H×W, ``(x - mean) / std`` per channel (0..255 units)."""
    _check_image(image)
    mean_a = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)
    chw = image.transpose(2, 0, 1).astype(np.float32)
    return ((chw - mean_a) * inv_std)[None]


def preprocess_batch(
    images: Sequence[np.ndarray], mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD
) -> np.ndarray:
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
