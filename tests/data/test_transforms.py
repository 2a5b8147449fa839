"""The one preprocessing: normalisation, layout, resizes that never blend label ids."""

from __future__ import annotations

import numpy as np
import pytest

from icnet_deploy import preprocess
from icnet_deploy.data.transforms import overlay, preprocess_batch, resize_image, resize_labels
from icnet_deploy.model.config import DEFAULT_MEAN, DEFAULT_STD


def test_preprocess_normalises_rgb_to_nchw():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255
    x = preprocess(image, DEFAULT_MEAN, DEFAULT_STD)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == pytest.approx((255 - DEFAULT_MEAN[0]) / DEFAULT_STD[0])
    assert x[0, 2, 0, 0] == pytest.approx(-DEFAULT_MEAN[2] / DEFAULT_STD[2])


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_preprocess_rejects_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        preprocess(bad, DEFAULT_MEAN, DEFAULT_STD)


def test_batch_stacks():
    assert preprocess_batch([np.zeros((8, 8, 3), np.uint8)] * 3, DEFAULT_MEAN, DEFAULT_STD).shape == (3, 3, 8, 8)


def test_label_resize_is_nearest():
    labels = np.array([[0, 18], [5, 255]], np.uint8)
    big = resize_labels(labels, (5, 7))
    assert big.shape == (5, 7)
    assert set(np.unique(big)) <= {0, 18, 5, 255}


def test_image_resize_and_overlay():
    image = np.full((10, 20, 3), 200, np.uint8)
    assert resize_image(image, (5, 9)).shape == (5, 9, 3)
    blended = overlay(image, np.zeros((10, 20), np.uint8), alpha=0.5)
    assert tuple(blended[0, 0]) == (164, 132, 164)
