"""Cascade label guidance loss on hand-made cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from icnet_deploy.model.icnet import CascadeOutputs
from icnet_deploy.model.losses import cascade_label_guidance_loss, downsample_labels


def _confident(labels: torch.Tensor, classes: int = 3, margin: float = 20.0) -> torch.Tensor:
    return F.one_hot(labels.clamp(max=classes - 1), classes).permute(0, 3, 1, 2).float() * margin


def test_downsample_is_nearest_not_blended():
    labels = torch.tensor([[[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 255, 255], [1, 1, 255, 255]]])
    small = downsample_labels(labels, (2, 2))
    assert small.tolist() == [[[0, 2], [1, 255]]]


def test_uniform_logits_give_log_c_per_scale():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    outs = CascadeOutputs(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))
    loss = cascade_label_guidance_loss(outs, labels)
    assert math.isclose(loss.item(), (0.4 + 0.4 + 1.0) * math.log(3), rel_tol=1e-6)


def test_weights_apply_per_scale():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    perfect4 = _confident(torch.zeros(1, 4, 4, dtype=torch.long))
    outs = CascadeOutputs(perfect4, torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))
    loss = cascade_label_guidance_loss(outs, labels)
    # sub4 is (almost) perfect, the other two are uniform.
    assert math.isclose(loss.item(), 1.4 * math.log(3), rel_tol=1e-4)


def test_ignored_pixels_do_not_count():
    labels = torch.full((1, 16, 16), 255, dtype=torch.long)
    labels[:, :8] = 1
    logits = _confident(torch.ones(1, 16, 16, dtype=torch.long))
    # Wrong predictions only where the label is ignored: loss stays ~0.
    logits[:, :, 8:] = _confident(torch.zeros(1, 8, 16, dtype=torch.long))
    outs = CascadeOutputs(
        F.interpolate(logits, size=(4, 4)), F.interpolate(logits, size=(8, 8)), logits
    )
    assert cascade_label_guidance_loss(outs, labels).item() < 1e-6
