"""mIoU evaluation for any predictor: a function image → train-id labels, so the eager model,
an ONNX Runtime session or a TensorRT engine are scored by the same code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .metrics import ConfusionMatrix, SegmentationScores

__all__ = ["evaluate_predictions", "generated_set_confusion", "summarise_sets"]


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


def generated_set_confusion(
    predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    seed: int,
    scenes: int = 12,
    size: tuple[int, int] = (1024, 2048),
    num_classes: int = 19,
) -> dict[str, ConfusionMatrix]:
    """Confusion matrices of one unseen generated set (scenes ``seed … seed+scenes-1``), one per predictor.

    The same scenes and labels as ``icnet-deploy synth --count SCENES --seed SEED`` followed by
    ``evaluate`` (the PNGs are lossless), without the disk. Each scene is made once and shown to
    every predictor, so checkpoints compared on a set see the same pixels. A checkpoint's claim
    is made per set, so many sets are scored and the matrices kept for pooling.
    """
    from .data.synthetic import generate_scene

    matrices = {name: ConfusionMatrix(num_classes) for name in predictors}
    for i in range(scenes):
        image, truth = generate_scene(seed + i, *size)
        for name, predict in predictors.items():
            matrices[name].update(truth, predict(image))
    return matrices


def summarise_sets(matrices: Mapping[int, np.ndarray], threshold: float = 75.0) -> dict:
    """Per-set mIoU, their mean, how many sets reach ``threshold``, the pooled mIoU and the sets below.

    Pooled sums the matrices (one big set). The per-set mean is usually lower: a class that a set
    lacks but that is predicted on a few pixels scores 0 in that set, and rare classes are noisy.
    """
    if not matrices:
        raise ValueError("no sets to summarise")

    def miou(m) -> float:
        m = np.asarray(m, dtype=np.int64)
        return ConfusionMatrix(num_classes=m.shape[0], matrix=m).scores().miou

    per_set = {seed: miou(m) for seed, m in sorted(matrices.items())}
    values = list(per_set.values())
    pooled = miou(sum(np.asarray(m, dtype=np.int64) for m in matrices.values()))
    return {
        "sets": len(values),
        "per_set": per_set,
        "mean": float(np.mean(values)),
        "at_least": sum(v >= threshold for v in values),
        "threshold": threshold,
        "pooled": pooled,
        "min": min(values),
        "below": {seed: v for seed, v in per_set.items() if v < threshold},
    }
