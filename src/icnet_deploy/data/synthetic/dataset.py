"""Generated scenes on disk: the Cityscapes folder layout (with labels) or plain JPEGs for calibration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ...fileio import atomic_path
from ...labels import train_ids_to_label_ids
from .mix import SceneMix
from .scene import generate_scene


def _save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def write_dataset(out: Path, count: int, seed: int, size: tuple[int, int] = (1024, 2048), split: str = "train",
                  city: str | None = None, progress: Callable[[int], None] | None = None,
                  mix: SceneMix = SceneMix()) -> list[Path]:
    """Write ``count`` scenes (seeds seed, seed+1, …) in the Cityscapes folder layout; return the image paths.

    A non-default ``mix`` is for training data only: it is refused for any split but ``train``, and
    its scenes go to the city folder ``synthmix`` (default ``synth``), so they never overwrite, or
    pass for, the default scene of the same seed.

    Each scene gets ``leftImg8bit/<split>/<city>/<city>_000000_<seed:06d>_leftImg8bit.png`` plus
    ``gtFine/…_gtFine_labelIds.png`` (official label ids) and ``…_gtFine_labelTrainIds.png`` (train ids),
    every file written atomically so an interrupted run never leaves a half-written PNG behind.
    """
    mix.require_split(split)
    city = city or ("synth" if mix.is_default else "synthmix")
    out = Path(out)
    h, w = size
    img_dir = out / "leftImg8bit" / split / city
    gt_dir = out / "gtFine" / split / city
    paths = []
    for i in range(count):
        s = seed + i
        image, train_ids = generate_scene(s, h, w, mix)
        stem = f"{city}_000000_{s:06d}"
        img_path = img_dir / f"{stem}_leftImg8bit.png"
        _save_png(gt_dir / f"{stem}_gtFine_labelTrainIds.png", train_ids)
        _save_png(gt_dir / f"{stem}_gtFine_labelIds.png", train_ids_to_label_ids(train_ids))
        _save_png(img_path, image)
        paths.append(img_path)
        if progress is not None:
            progress(1)
    return paths


def write_images(out: Path, count: int, seed: int, size: tuple[int, int] = (1024, 2048), quality: int = 95,
                 progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write ``count`` scenes as plain JPEGs ``out/scene_<seed>.jpg`` (no labels): calibration sets.

    JPEG (not PNG) so that a calibration set of 32–64 full-size scenes stays small enough to ship,
    and so calibration sees the compression artefacts real camera images have.
    """
    out = Path(out)
    paths = []
    for i in range(count):
        s = seed + i
        image, _ = generate_scene(s, *size)
        path = out / f"scene_{s:06d}.jpg"
        with atomic_path(path) as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=quality, subsampling=0)
        paths.append(path)
        if progress is not None:
            progress(1)
    return paths
