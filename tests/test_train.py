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


def test_fake_quant_hooks_quantize_what_the_int8_build_quantizes():
    import torch

    from icnet_deploy.model.config import get_config
    from icnet_deploy.model.icnet import ICNet
    from icnet_deploy.qat import attach_fake_quant

    torch.manual_seed(0)
    model = ICNet(get_config("icnet_r50_half")).eval()
    hooks = attach_fake_quant(model, 19)
    names = set(hooks.quantizers)
    assert {"pyramid", "trunk.layer4.2.reduce.0", "trunk.layer4.2.conv.0", "trunk.stem.1.0"} <= names
    assert len(names) == 62  # 66 convs − 2 image-reading − 3 classifiers + the pyramid pooling
    assert not names & {"trunk.stem.0.0", "high_res.0.0", "classifier", "cff_8.aux_classifier"}  # fp32 by rule
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        quantized = model(x)
        with hooks.disabled():
            plain = model(x)
        hooks.remove()
        reference = model(x)
    assert torch.equal(plain, reference)  # disabled() is exactly the fp32 model
    assert not torch.equal(quantized, reference)  # and enabled it adds the uint8 rounding
    assert all(fq.scale.item() > 0 for fq in hooks.quantizers.values())  # every observer saw data


def test_fake_quant_fine_tuning_writes_a_plain_checkpoint(tiny_dataset, tmp_path):
    out = tmp_path / "qat.safetensors"
    first = tmp_path / "init.safetensors"
    base = dict(data=str(tiny_dataset), iters=4, batch=2, crop=(64, 128), warmup=1, val_every=4, val_images=1,
                threads=1)
    train(TrainConfig(out=str(first), **base))
    summary = train(TrainConfig(out=str(out), init=str(first), fake_quant=True, lr=2e-4, **base))
    assert summary["history"][-1]["iteration"] == 4
    model = load_model(out)  # loads strictly: no observer or fake-quant buffers leaked into the weights
    assert model.checkpoint_info["provenance"]["train_config"]["fake_quant"] is True
