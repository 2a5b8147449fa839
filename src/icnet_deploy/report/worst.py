"""The few images where an engine disagrees most with eager, kept for the HTML report.

``check(engine, observe=WorstImages())`` hands every image's arrays to the keeper, which keeps,
per image set, the ``per_set`` images of lowest pixel agreement: the input at the engine's size,
both label maps and, per pixel, how far below eager's best class score the engine's class scored
(the *logit gap*: 0 where they agree, small for a near tie that any rounding may flip, large for a
real error). Only numpy and Pillow: no plotting library is needed to keep them.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from ..upsample import argmax_classes

__all__ = ["KeptImage", "WorstImages", "logit_gap"]


@dataclass
class KeptImage:
    """One image as the engine saw it (all arrays h×w, the engine's input size)."""

    set: str
    image: str
    agreement_pct: float  # pixels where engine and eager labels agree
    input: np.ndarray  # uint8 h×w×3 RGB, resized to the engine's input like the engine's own input
    reference: np.ndarray  # uint8 h×w, eager's labels
    engine: np.ndarray  # uint8 h×w, the engine's labels
    gap: np.ndarray  # float32 h×w, eager's best logit − eager's logit of the engine's class (0 where they agree)

    @property
    def flipped(self) -> int:
        return int((self.reference != self.engine).sum())


def logit_gap(ref_logits: np.ndarray, engine_labels: np.ndarray) -> np.ndarray:
    """h×w: eager's best logit minus eager's logit for the class the engine chose (C×h×w logits).

    0 where the engine picked eager's class; the margin by which a flipped pixel lost otherwise."""
    classes = np.clip(engine_labels.astype(np.int64), 0, ref_logits.shape[0] - 1)
    chosen = np.take_along_axis(ref_logits, classes[None], axis=0)[0]
    return (ref_logits.max(axis=0) - chosen).astype(np.float32)


class WorstImages:
    """A ``check(observe=…)`` hook keeping the ``per_set`` least-agreeing images of each image set."""

    def __init__(self, per_set: int = 2) -> None:
        if per_set < 1:
            raise ValueError(f"per_set must be ≥ 1, got {per_set}")
        self.per_set = per_set
        self._heaps: dict[str, list[tuple[float, int, KeptImage]]] = {}
        self._order = itertools.count()  # ties keep the first image seen

    def __call__(self, set_name: str, name: str, image: np.ndarray, ref_logits: np.ndarray,
                 engine_labels: np.ndarray) -> None:
        from ..data.transforms import resize_image

        reference = argmax_classes(ref_logits)
        engine = engine_labels.astype(np.uint8)
        agreement = 100.0 * float((reference == engine).mean())
        heap = self._heaps.setdefault(set_name, [])
        # a max-heap on agreement (negated): the best of the kept is the one to drop
        key = (-agreement, -next(self._order))
        if len(heap) >= self.per_set and key <= heap[0][:2]:
            return
        kept = KeptImage(set_name, name, agreement, resize_image(image, reference.shape), reference, engine,
                         logit_gap(ref_logits, engine))
        entry = (*key, kept)
        if len(heap) < self.per_set:
            heapq.heappush(heap, entry)  # type: ignore[arg-type]
        else:
            heapq.heapreplace(heap, entry)  # type: ignore[arg-type]

    def result(self) -> list[KeptImage]:
        """The kept images, set by set in the order the sets came, worst first within a set."""
        out = []
        for heap in self._heaps.values():
            out += [kept for *_, kept in sorted(heap, key=lambda e: (e[2].agreement_pct, -e[1]))]
        return out
