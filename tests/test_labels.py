"""The label table against the facts in REFERENCE.md (cityscapesScripts helpers/labels.py)."""

from __future__ import annotations

import numpy as np

from icnet_deploy.labels import (
    CLASSES, CLASS_NAMES, IGNORE_ID, NUM_CLASSES, PALETTE, colorize, label_ids_to_train_ids, train_ids_to_label_ids,
)

REFERENCE = [  # trainId, name, labelId, colour
    (0, "road", 7, (128, 64, 128)), (1, "sidewalk", 8, (244, 35, 232)), (2, "building", 11, (70, 70, 70)),
    (3, "wall", 12, (102, 102, 156)), (4, "fence", 13, (190, 153, 153)), (5, "pole", 17, (153, 153, 153)),
    (6, "traffic light", 19, (250, 170, 30)), (7, "traffic sign", 20, (220, 220, 0)),
    (8, "vegetation", 21, (107, 142, 35)), (9, "terrain", 22, (152, 251, 152)), (10, "sky", 23, (70, 130, 180)),
    (11, "person", 24, (220, 20, 60)), (12, "rider", 25, (255, 0, 0)), (13, "car", 26, (0, 0, 142)),
    (14, "truck", 27, (0, 0, 70)), (15, "bus", 28, (0, 60, 100)), (16, "train", 31, (0, 80, 100)),
    (17, "motorcycle", 32, (0, 0, 230)), (18, "bicycle", 33, (119, 11, 32)),
]


def test_table_matches_reference():
    assert NUM_CLASSES == 19 and IGNORE_ID == 255
    assert [(c.train_id, c.name, c.label_id, c.color) for c in CLASSES] == REFERENCE
    assert CLASS_NAMES[13] == "car"


def test_conversions_round_trip():
    train = np.arange(19, dtype=np.uint8).reshape(1, 19)
    labels = train_ids_to_label_ids(train)
    assert labels.tolist() == [[r[2] for r in REFERENCE]]
    assert np.array_equal(label_ids_to_train_ids(labels), train)


def test_unlisted_label_ids_become_ignore():
    # 0 unlabeled, 1 ego vehicle, 6 ground, 9 parking, 34 license plate, -1 style 255
    assert label_ids_to_train_ids(np.array([0, 1, 6, 9, 14, 29, 30, 34, 255])).tolist() == [255] * 9
    assert train_ids_to_label_ids(np.array([255])).tolist() == [0]


def test_colorize_uses_the_palette():
    rgb = colorize(np.array([[0, 13], [255, 18]], dtype=np.uint8))
    assert rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 1]) == (0, 0, 142)
    assert tuple(rgb[1, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (119, 11, 32)
    assert PALETTE.shape == (256, 3)
