"""A short training run on a tiny generated dataset lowers the loss, checkpoints, and resumes."""

from __future__ import annotations

import json

import pytest

from icnet_deploy.model.weights import load_model
from icnet_deploy.train import TrainConfig, train

synthetic = pytest.importorskip("icnet_deploy.data.synthetic")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synthetic.write_dataset(root, 4, seed=100, size=(128, 256), split="train")
    synthetic.write_dataset(root, 1, seed=900, size=(128, 256), split="val")
    return root


def test_short_run_lowers_loss_and_resumes(tiny_dataset, tmp_path):
    out = tmp_path / "m.safetensors"
    cfg = TrainConfig(data=str(tiny_dataset), out=str(out), iters=30, batch=2, crop=(64, 128), lr=2e-3,
                      warmup=5, val_every=30, val_images=1, threads=1)
    losses: list[float] = []
    summary = train(cfg, progress=lambda it, s: losses.append(s["loss"]))
    assert len(losses) == 30
    assert losses[-1] < losses[0]
    assert out.is_file() and out.with_suffix(".state.pt").is_file()
    assert summary["history"] and "val_miou" in summary["history"][-1]
    model = load_model(out)
    assert model.checkpoint_info["provenance"]["iterations"] == 30
    # Resume to 40 iterations: continues from 30, does not start over.
    steps: list[int] = []
    train(TrainConfig(**{**cfg.__dict__, "iters": 40}), resume=True, progress=lambda it, s: steps.append(it))
    assert steps == list(range(31, 41))
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert log[-1]["iteration"] == 40
