"""mIoU evaluation for any predictor: a function image → train-id labels, so the eager model,
an ONNX Runtime session or a TensorRT engine are scored by the same code."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .metrics import ConfusionMatrix, SegmentationScores

__all__ = ["evaluate_predictions"]


def evaluate_predictions(
    predict: Callable[[np.ndarray], np.ndarray],
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int = 19,
    progress: Callable[[int], None] | None = None,
) -> SegmentationScores:
    """Accumulate one confusion matrix over ``(image, train_ids)`` samples."""
    confusion = ConfusionMatrix(num_classes)
    for image, truth in samples:
        prediction = predict(image)
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction {prediction.shape} and label {truth.shape} differ in size")
        confusion.update(truth, prediction)
        if progress:
            progress(1)
    return confusion.scores()
