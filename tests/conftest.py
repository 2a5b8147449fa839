"""Shared, session-scoped artifacts (built once, reused by the export and backend tests)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A random-weight icnet_r50_half checkpoint (.safetensors), seeded, without touching the global RNG."""
    import torch

    from icnet_deploy.model import ICNet
    from icnet_deploy.model.weights import save_checkpoint

    path = tmp_path_factory.mktemp("checkpoint") / "random.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ICNet().eval()
    save_checkpoint(model, path, {"weights": "random", "note": "test fixture"})
    return path


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory, small_checkpoint) -> Path:
    """A verified 1×3×128×256 fp32 logits export of ``small_checkpoint``, with its .json sidecar."""
    from icnet_deploy.export import export

    path = tmp_path_factory.mktemp("onnx") / "icnet_128x256.onnx"
    export(small_checkpoint, path, height=128, width=256, verify_images=2)
    return path
