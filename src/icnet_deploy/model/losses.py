"""Cascade label guidance loss (ICNet §3.3).

Cross-entropy at 1/16, 1/8 and 1/4 against the label map downsampled by nearest neighbour
(labels are ids: averaging them would invent classes), weighted 0.4 / 0.4 / 1.0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..labels import IGNORE_ID
from .icnet import CascadeOutputs

__all__ = ["CASCADE_WEIGHTS", "downsample_labels", "cascade_label_guidance_loss"]

CASCADE_WEIGHTS: tuple[float, float, float] = (0.4, 0.4, 1.0)  # sub4 (1/16), sub24 (1/8), sub124 (1/4)


def downsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """N×H×W integer labels → N×h×w by nearest neighbour."""
    return F.interpolate(labels.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).long()


def cascade_label_guidance_loss(
    outputs: CascadeOutputs,
    labels: Tensor,
    weights: tuple[float, float, float] = CASCADE_WEIGHTS,
    ignore_index: int = IGNORE_ID,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Weighted sum of per-scale cross-entropies. ``labels``: N×H×W train ids (255 = ignore)."""
    total = torch.zeros((), device=labels.device)
    for logits, weight in zip(outputs, weights):
        target = downsample_labels(labels, tuple(logits.shape[-2:]))
        total = total + weight * F.cross_entropy(logits, target, weight=class_weights, ignore_index=ignore_index)
    return total
