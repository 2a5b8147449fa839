"""The one source of images: held-out generated scenes, the shipped photographs, user folders and
Cityscapes-layout datasets, and the verification images of an export. Everything that measures an
engine (export verification, build parity, compiled-engine parity, check, bench) reads its images here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, IcnetDeployError

__all__ = ["HELDOUT_SEED", "VERIFICATION_SEED", "Sample", "dataset", "folder", "held_out", "heldout_scenes", "photos",
           "verification_images"]

Sample = tuple[str, np.ndarray, "np.ndarray | None"]  # (name, uint8 H×W×3, train ids H×W or None)
HELDOUT_SEED = 950_000  # check's and the build's held-out scenes: seeds 950000, 950001, …
VERIFICATION_SEED = 900_000  # an export's verification scenes: seeds 900000, 900001, …


def heldout_scenes(count: int, height: int, width: int, seed: int = HELDOUT_SEED) -> list[Sample]:
    """``count`` generated scenes with their labels (deterministic in the seeds)."""
    from .synthetic import generate_scene

    out = []
    for i in range(count):
        image, labels = generate_scene(seed + i, height, width)
        out.append((f"scene-{seed + i}", image, labels))
    return out


def photos() -> list[Sample]:
    """The shipped real photographs (no labels), at their own sizes."""
    from ..assets import real_photos
    from .folders import read_rgb

    return [(p.name, read_rgb(p), None) for p in real_photos()]


_LABEL_PATTERNS = (
    ("{stem}_gtFine_labelTrainIds.png", True), ("{stem}_labelTrainIds.png", True),
    ("{stem}_gtFine_labelIds.png", False), ("{stem}_labelIds.png", False), ("{stem}.png", True),
)


def _find_label(labels_dir: Path, rel: Path) -> tuple[Path, bool] | None:
    stem = rel.stem.removesuffix("_leftImg8bit")
    for pattern, train in _LABEL_PATTERNS:
        candidate = labels_dir / rel.parent / pattern.format(stem=stem)
        if candidate.is_file():
            return candidate, train
    return None


def folder(images_dir: Path, labels_dir: Path | None = None) -> list[Sample]:
    """Every image under ``images_dir`` (recursively), with its label from ``labels_dir`` when given."""
    from ..labels import label_ids_to_train_ids
    from .folders import _read_ids, list_images, read_rgb, read_train_ids

    out = []
    for path in list_images(images_dir):
        rel = path.relative_to(images_dir)
        image = read_rgb(path)
        labels = None
        if labels_dir is not None:
            found = _find_label(labels_dir, rel)
            if found is None:
                raise DataError(f"{path}: no label in {labels_dir} (looked for {rel.parent / (rel.stem + '_labelTrainIds.png')}, "
                                "…_gtFine_labelTrainIds.png, …_labelIds.png)")
            lp, train = found
            labels = read_train_ids(lp) if train else label_ids_to_train_ids(_read_ids(lp, "label"))
            if labels.shape != image.shape[:2]:
                raise DataError(f"{lp}: label size {labels.shape[1]}×{labels.shape[0]} differs from image "
                                f"{image.shape[1]}×{image.shape[0]} (W×H)")
        out.append((str(rel), image, labels))
    return out


def dataset(root: Path, split: str) -> list[Sample]:
    """A Cityscapes-layout split (leftImg8bit/ + gtFine/) with its labels."""
    from .folders import CityscapesDataset

    ds = CityscapesDataset(root, split)
    return [(p.name, *ds[i]) for i, p in enumerate(ds.image_paths)]


def held_out(height: int, width: int, scenes: int) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(name, set, uint8 image at height×width, labels or None): ``scenes`` generated scenes ("generated")
    and the shipped photographs ("photos"), all resized to one size — a build's parity set."""
    from .transforms import resize_image, resize_labels

    out = []
    for name, image, labels in heldout_scenes(scenes, height, width) if scenes else []:
        out.append((name, "generated", image, resize_labels(labels, (height, width))))
    for name, image, _ in photos():
        out.append((name, "photos", np.ascontiguousarray(resize_image(image, (height, width))), None))
    return out


def verification_images(count: int, height: int, width: int) -> list[tuple[str, str, np.ndarray]]:
    """``count`` uint8 RGB images of one size: (name, kind, image) — an export's verification set.

    Half (rounded down) are generated street scenes, the rest the shipped photographs resized to the
    size — at least one photograph always.
    """
    from ..assets import real_photos
    from .folders import read_rgb
    from .synthetic import generate_scene
    from .transforms import resize_image

    if count < 1:
        raise IcnetDeployError(f"verification needs at least 1 image, got {count}")
    paths = real_photos()
    n_photos = max(1, count - count // 2) if paths else 0
    out = []
    for i in range(count - n_photos):
        image, _ = generate_scene(VERIFICATION_SEED + i, height, width)
        out.append((f"scene-{VERIFICATION_SEED + i}", "scene", np.ascontiguousarray(image)))
    for i in range(n_photos):
        path = paths[i % len(paths)]
        out.append((path.name, "photo", np.ascontiguousarray(resize_image(read_rgb(path), (height, width)))))
    return out
