"""What ``icnet-deploy info`` reports: parameters, GFLOPs at a size, branch sizes, provenance."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import MIN_SIZE
from .icnet import ICNet, branch_sizes

__all__ = ["model_summary", "count_flops"]


def count_flops(model: ICNet, height: int, width: int) -> float:
    """Forward FLOPs (multiply and add counted separately) at 1×3×H×W, from torch's counter."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    return float(counter.get_total_flops())


def model_summary(model: ICNet, height: int = 1024, width: int = 2048) -> dict:
    """A JSON-ready description of the model at one input size."""
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"input size must be at least {MIN_SIZE}×{MIN_SIZE}, got {height}×{width}")
    info = getattr(model, "checkpoint_info", None) or {}
    params = sum(p.numel() for p in model.parameters())
    inference_params = params - sum(
        p.numel() for m in (model.cff_16.aux_classifier, model.cff_8.aux_classifier) for p in m.parameters()
    )
    flops = count_flops(model, height, width)
    return {
        "config": asdict(model.config),
        "parameters": params,
        "inference_parameters": inference_params,
        "size": [height, width],
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,
        "branches": {k: list(v) for k, v in branch_sizes(height, width).items()},
        "checkpoint": info.get("path"),
        "sha256": info.get("sha256"),
        "provenance": info.get("provenance", {}),
    }
