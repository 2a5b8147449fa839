"""Segmentation metrics: confusion matrix, IoU/mIoU (official Cityscapes protocol), and what
parity between two engines is measured in: raw pixel agreement, agreement within a logit
tolerance, near ties, logit error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .labels import CLASS_NAMES, IGNORE_ID, NUM_CLASSES

__all__ = ["ConfusionMatrix", "SegmentationScores", "pixel_agreement", "logit_error", "within_delta", "near_ties",
           "DEFAULT_DELTA", "NEAR_TIE_LOGIT"]

# logits: an engine's label counts as agreeing "within δ" when the reference scored it within this
# of its own best class (the INT8 gate's tolerance; see ``within_delta``)
DEFAULT_DELTA = 0.25
# logits: a pixel whose two best reference scores are closer than this is a near tie (diagnostic)
NEAR_TIE_LOGIT = 0.1


@dataclass
class SegmentationScores:
    miou: float  # percent, mean over classes present in ground truth or prediction
    pixel_accuracy: float  # percent of non-ignored pixels
    per_class: dict[str, float | None]  # name -> IoU percent; None when the class never occurs
    pixels: int  # non-ignored pixels counted

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "per_class": self.per_class, "pixels": self.pixels}


@dataclass
class ConfusionMatrix:
    """Accumulates ground truth × prediction counts; ignored ground-truth pixels are excluded.

    IoU = TP / (TP + FP + FN) per class. mIoU averages the classes that occur (in ground truth
    or prediction) — a class absent from both has no defined IoU and is reported as None; the
    official evaluation on the full Cityscapes val set has every class present.
    """

    num_classes: int = NUM_CLASSES
    ignore_id: int = IGNORE_ID
    matrix: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.matrix is None:
            self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, truth: np.ndarray, prediction: np.ndarray) -> None:
        truth = np.asarray(truth).reshape(-1).astype(np.int64)
        prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
        if truth.shape != prediction.shape:
            raise ValueError(f"label maps differ in size: {truth.shape} vs {prediction.shape}")
        keep = truth != self.ignore_id
        truth, prediction = truth[keep], prediction[keep]
        bad = (truth >= self.num_classes) | (truth < 0)
        if bad.any():
            raise ValueError(f"ground truth holds ids outside 0..{self.num_classes - 1} and {self.ignore_id}: {np.unique(truth[bad])[:5]}")
        prediction = np.clip(prediction, 0, self.num_classes - 1)
        self.matrix += np.bincount(truth * self.num_classes + prediction, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def scores(self, class_names: tuple[str, ...] = CLASS_NAMES) -> SegmentationScores:
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        denom = m.sum(0) + m.sum(1) - tp
        present = denom > 0
        iou = np.where(present, tp / np.maximum(denom, 1), np.nan)
        names = class_names if len(class_names) == self.num_classes else tuple(str(i) for i in range(self.num_classes))
        total = m.sum()
        return SegmentationScores(
            miou=float(np.nanmean(iou) * 100) if present.any() else 0.0,
            pixel_accuracy=float(tp.sum() / total * 100) if total else 0.0,
            per_class={n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(names, iou)},
            pixels=int(total),
        )


def pixel_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction (0..1) of pixels where two label maps agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in size: {a.shape} vs {b.shape}")
    return float((a == b).mean())


def logit_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max, mean) absolute difference between two logit tensors."""
    diff = np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32))
    return float(diff.max()), float(diff.mean())


def within_delta(reference_logits: np.ndarray, labels: np.ndarray, delta: float = DEFAULT_DELTA) -> np.ndarray:
    """H×W mask: where the reference (C×H×W logits) scored ``labels``' class within ``delta`` of its
    own best class. An engine's label that is the reference's own is always within; one the
    reference itself could barely tell from its best (a near tie that any rounding may flip) is
    within too; a class the reference thought clearly worse is not."""
    ref = np.asarray(reference_logits)
    labels = np.asarray(labels)
    if ref.shape[1:] != labels.shape:
        raise ValueError(f"logits {ref.shape} and labels {labels.shape} differ in size")
    idx = np.clip(labels.astype(np.intp), 0, ref.shape[0] - 1)[None]
    chosen = np.take_along_axis(ref, idx, axis=0)[0]
    return (chosen >= ref.max(axis=0) - np.float32(delta)) & (labels < ref.shape[0])


def near_ties(logits: np.ndarray, gap: float = NEAR_TIE_LOGIT) -> np.ndarray:
    """H×W mask of the pixels whose two best class scores (C×H×W) are within ``gap``: any
    rounding may flip them, so they say how much raw agreement a precision can hope for."""
    logits = np.asarray(logits)
    if logits.shape[0] < 2:
        return np.zeros(logits.shape[1:], dtype=bool)
    top2 = np.partition(logits, logits.shape[0] - 2, axis=0)[-2:]
    return (top2[1] - top2[0]) < gap
