"""Evaluation on hand-made confusion cases: perfect, all wrong, ignored pixels, absent classes."""

from __future__ import annotations

import numpy as np
import pytest

from icnet_deploy.evaluate import evaluate_predictions
from icnet_deploy.metrics import ConfusionMatrix, logit_error, pixel_agreement


def test_perfect_prediction():
    truth = np.array([[0, 1], [2, 2]], dtype=np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(truth, truth)
    s = cm.scores(("a", "b", "c"))
    assert s.miou == 100.0 and s.pixel_accuracy == 100.0
    assert s.per_class == {"a": 100.0, "b": 100.0, "c": 100.0}


def test_all_wrong():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    s = cm.scores(("a", "b"))
    assert s.miou == 0.0 and s.pixel_accuracy == 0.0


def test_ignored_pixels_are_excluded():
    truth = np.array([0, 255, 255, 1])
    pred = np.array([0, 1, 1, 1])
    cm = ConfusionMatrix(2)
    cm.update(truth, pred)
    s = cm.scores(("a", "b"))
    assert s.miou == 100.0 and s.pixels == 2


def test_absent_class_is_none_and_not_averaged():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]))
    s = cm.scores(("a", "b", "c"))
    assert s.per_class["c"] is None
    # a: TP 2, FP 1 -> 2/3; b: TP 1, FN 1 -> 1/2
    assert s.per_class["a"] == pytest.approx(200 / 3)
    assert s.per_class["b"] == pytest.approx(50.0)
    assert s.miou == pytest.approx((200 / 3 + 50) / 2)
    assert s.pixel_accuracy == pytest.approx(75.0)


def test_false_positive_class_counts_with_zero_iou():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0]), np.array([0, 2]))
    s = cm.scores(("a", "b", "c"))
    assert s.per_class["c"] == 0.0 and s.per_class["b"] is None


def test_out_of_range_truth_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3).update(np.array([5]), np.array([0]))


def test_evaluate_predictions_accumulates_over_images():
    samples = [(np.zeros((2, 2, 3), np.uint8), np.array([[0, 1], [1, 1]], np.uint8))] * 3
    s = evaluate_predictions(lambda img: np.array([[0, 1], [1, 0]], np.uint8), samples, num_classes=2)
    assert s.pixels == 12 and s.pixel_accuracy == pytest.approx(75.0)


def test_agreement_and_logit_error():
    a = np.array([[1, 2], [3, 4]])
    assert pixel_agreement(a, a) == 1.0
    assert pixel_agreement(a, np.array([[1, 2], [3, 0]])) == 0.75
    assert logit_error(np.zeros(4), np.array([0, 0.5, -1, 0])) == (1.0, 0.375)
