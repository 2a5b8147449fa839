"""Cityscapes label table: the 19 train ids, their label ids, names and colours.

Source: mcordts/cityscapesScripts ``helpers/labels.py``. Everything not in the table maps
to train id 255 (ignore), which every loss and metric in this package excludes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "class_names_and_palette",
    "IGNORE_ID",
    "NUM_CLASSES",
    "CityscapesClass",
    "CLASSES",
    "CLASS_NAMES",
    "PALETTE",
    "train_ids_to_label_ids",
    "label_ids_to_train_ids",
    "colorize",
]

IGNORE_ID = 255
NUM_CLASSES = 19


@dataclass(frozen=True)
class CityscapesClass:
    train_id: int  # 0..18, the network's output channel
    name: str
    label_id: int  # the id the official evaluation compares (`*_gtFine_labelIds.png`)
    color: tuple[int, int, int]  # RGB


CLASSES: tuple[CityscapesClass, ...] = (
    CityscapesClass(0, "road", 7, (128, 64, 128)),
    CityscapesClass(1, "sidewalk", 8, (244, 35, 232)),
    CityscapesClass(2, "building", 11, (70, 70, 70)),
    CityscapesClass(3, "wall", 12, (102, 102, 156)),
    CityscapesClass(4, "fence", 13, (190, 153, 153)),
    CityscapesClass(5, "pole", 17, (153, 153, 153)),
    CityscapesClass(6, "traffic light", 19, (250, 170, 30)),
    CityscapesClass(7, "traffic sign", 20, (220, 220, 0)),
    CityscapesClass(8, "vegetation", 21, (107, 142, 35)),
    CityscapesClass(9, "terrain", 22, (152, 251, 152)),
    CityscapesClass(10, "sky", 23, (70, 130, 180)),
    CityscapesClass(11, "person", 24, (220, 20, 60)),
    CityscapesClass(12, "rider", 25, (255, 0, 0)),
    CityscapesClass(13, "car", 26, (0, 0, 142)),
    CityscapesClass(14, "truck", 27, (0, 0, 70)),
    CityscapesClass(15, "bus", 28, (0, 60, 100)),
    CityscapesClass(16, "train", 31, (0, 80, 100)),
    CityscapesClass(17, "motorcycle", 32, (0, 0, 230)),
    CityscapesClass(18, "bicycle", 33, (119, 11, 32)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

# 256-entry lookup tables so that conversions are one fancy-indexing op on any array.
PALETTE = np.zeros((256, 3), dtype=np.uint8)  # train id -> RGB; ignore (255) is black
_TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)  # train id -> label id; 255 -> 0 (unlabeled)
_LABEL_TO_TRAIN = np.full(256, IGNORE_ID, dtype=np.uint8)  # label id -> train id
for _c in CLASSES:
    PALETTE[_c.train_id] = _c.color
    _TRAIN_TO_LABEL[_c.train_id] = _c.label_id
    _LABEL_TO_TRAIN[_c.label_id] = _c.train_id


def _as_uint8_ids(ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError(f"{what} must lie in 0..255, got {ids.min()}..{ids.max()}")
        ids = ids.astype(np.uint8)
    return ids


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids (0..18, 255) to Cityscapes label ids for the official evaluation."""
    return _TRAIN_TO_LABEL[_as_uint8_ids(train_ids, "train ids")]


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label ids to train ids; every id outside the 19 classes becomes 255."""
    return _LABEL_TO_TRAIN[_as_uint8_ids(label_ids, "label ids")]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """H×W train ids -> H×W×3 uint8 RGB in the Cityscapes palette (ignore = black)."""
    return PALETTE[_as_uint8_ids(train_ids, "train ids")]


def class_names_and_palette(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """The class names and RGB colours an artifact's manifest records for a model with ``num_classes``
    outputs: Cityscapes' for the first 19, ``class_N`` and a colour drawn from a seeded generator for
    any beyond (the same for every artifact of that class count)."""
    names = list(CLASS_NAMES[:num_classes]) + [f"class_{i}" for i in range(len(CLASS_NAMES), num_classes)]
    colours = [[int(v) for v in PALETTE[i]] for i in range(min(num_classes, len(CLASS_NAMES)))]
    rng = np.random.default_rng(num_classes)
    colours += [[int(v) for v in rng.integers(0, 256, 3)] for _ in range(len(colours), num_classes)]
    return names, colours
