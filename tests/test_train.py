"""A short training run on a tiny generated dataset lowers the loss, checkpoints, and resumes;
`train --scale` rejects bad ranges."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.cli.app import parse_scale_range
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
    out = tmp_path / "runs" / "a" / "m.safetensors"  # a folder that does not exist yet: train makes it
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


def test_ema_checkpoint_is_the_average_and_resumes(tiny_dataset, tmp_path):
    out = tmp_path / "ema.safetensors"
    cfg = TrainConfig(data=str(tiny_dataset), out=str(out), iters=12, batch=2, crop=(64, 128), lr=2e-3,
                      warmup=2, val_every=12, val_images=1, threads=1, ema=0.9)
    train(cfg)
    raw = out.with_suffix(".raw.safetensors")
    assert out.is_file() and raw.is_file()
    averaged, current = load_model(out), load_model(raw)
    assert averaged.checkpoint_info["provenance"]["ema_decay"] == 0.9
    a, c = averaged.state_dict(), current.state_dict()
    differs = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], c[k])]
    assert "classifier.weight" in differs  # the average lags the raw weights
    assert any(k.endswith("running_mean") for k in differs)  # BatchNorm statistics are averaged too
    state = torch.load(out.with_suffix(".state.pt"), weights_only=True)
    assert int(state["ema"]["n_averaged"]) == 12
    train(TrainConfig(**{**cfg.__dict__, "iters": 14}), resume=True)
    state = torch.load(out.with_suffix(".state.pt"), weights_only=True)
    assert int(state["ema"]["n_averaged"]) == 14 and state["iteration"] == 14


@pytest.mark.parametrize("scale", ["1.4-0.6", "0-1", "a-b", "0.5"])
def test_train_rejects_a_bad_scale_range_with_exit_2(tmp_path, scale):
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors"), "--scale", scale])
    assert result.exit_code == 2
    assert "scale" in result.output and not (tmp_path / "m.safetensors").exists()


def test_train_refuses_an_out_folder_it_cannot_make_with_exit_2(tiny_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_dataset), "--out", str(blocker / "m.safetensors"), "--iters", "1"])
    assert result.exit_code == 2
    assert "cannot write here" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "not a folder"


def test_scale_range_parses_low_high():
    assert parse_scale_range("0.45-1.4") == (0.45, 1.4)
    assert parse_scale_range("1,1") == (1.0, 1.0)


def test_decode_cache_trains_identically_and_redecodes_changed_scenes(tiny_dataset, tmp_path):
    """Memory-mapped decoded scenes give the very same batches as scenes held in memory; a scene
    whose PNG changes, or whose decoded file is damaged, is decoded again instead of being read stale."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)  # the test edits a scene: leave the shared dataset alone
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "a.safetensors"), iters=4, batch=2,
                      crop=(64, 128), warmup=2, val_every=4, val_images=1, threads=1)
    in_memory: list[float] = []
    train(cfg, progress=lambda it, s: in_memory.append(s["loss"]))
    cache = tmp_path / "decoded"
    mapped: list[float] = []
    train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b.safetensors"), "decode_cache": str(cache)}),
          progress=lambda it, s: mapped.append(s["loss"]))
    assert mapped == in_memory
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 8 and not list(cache.glob("*.tmp"))  # image + label per training scene, no leftovers
    assert "decode_cache" not in load_model(tmp_path / "b.safetensors").checkpoint_info["provenance"]["train_config"]

    from icnet_deploy.train import _load_split

    images, labels = _load_split(data, "train", cache=cache)
    assert all(isinstance(a, np.memmap) for a in images + labels) and sorted(cache.glob("*.npy")) == files
    first = sorted((data / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))[0]
    Image.fromarray(np.zeros((128, 256, 3), np.uint8)).save(first)  # the scene changes on disk
    images2, _ = _load_split(data, "train", cache=cache)
    assert len(list(cache.glob("*.image.npy"))) == 5  # one new decoded copy, under a new name
    assert not images2[0].any() and np.array_equal(images2[1], images[1])
    expected = [np.array(a) for a in labels]  # copies: truncating a mapped file invalidates its mapping
    del images, labels, images2
    damaged = sorted(cache.glob("*.label.npy"))[-1]
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated decoded file is decoded again
    _, labels3 = _load_split(data, "train", cache=cache)
    assert damaged.stat().st_size > 100 and all(np.array_equal(a, b) for a, b in zip(labels3, expected))


def test_checkpoint_records_its_class_weights_and_adjust_logits_undoes_them(tiny_dataset, tmp_path):
    """`train` writes the cross-entropy class weights it used into the provenance; the same weights come
    back from the labels alone (`class_weights_of`, for checkpoints older than that record), and
    `adjust-logits` removes tau·log w from the classifier bias either way."""
    from icnet_deploy.model.weights import read_checkpoint
    from icnet_deploy.train import class_weights_of

    out = tmp_path / "m.safetensors"
    train(TrainConfig(data=str(tiny_dataset), out=str(out), iters=2, batch=1, crop=(64, 128), warmup=1,
                      val_every=100, threads=1))
    recorded = load_model(out).checkpoint_info["provenance"]["class_weights"]
    progress: list[tuple[int, int]] = []
    assert class_weights_of(tiny_dataset, progress=lambda done, total: progress.append((done, total))) == recorded
    assert progress[-1] == (4, 4) and len(recorded) == 19 and min(recorded) >= 0.5 and max(recorded) <= 4.0

    cli = CliRunner()
    from_provenance, from_data = tmp_path / "p.safetensors", tmp_path / "d.safetensors"
    result = cli.invoke(app, ["adjust-logits", str(out), "--out", str(from_provenance), "--json"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    assert reported["tau"] == 1.0 and reported["class_weights_from"] == "checkpoint provenance"
    result = cli.invoke(app, ["adjust-logits", str(out), "--out", str(from_data), "--data", str(tiny_dataset), "--tau", "0.5"])
    assert result.exit_code == 0, result.output
    original = read_checkpoint(out)[0]["classifier.bias"]
    shift = torch.log(torch.tensor(recorded))
    torch.testing.assert_close(read_checkpoint(from_provenance)[0]["classifier.bias"], original - shift)
    torch.testing.assert_close(read_checkpoint(from_data)[0]["classifier.bias"], original - 0.5 * shift)
    assert read_checkpoint(from_data)[1]["provenance"]["logit_adjustment"]["class_weights_from"] == f"labels of {Path(tiny_dataset).name}/train"
    shown = cli.invoke(app, ["info", "--checkpoint", str(from_data)])  # its own row, not cut off with the provenance
    assert shown.exit_code == 0 and "logit adjustment" in shown.output and "0.5·log w" in shown.output

    # Bad input: one line, exit 2, nothing written.
    result = cli.invoke(app, ["adjust-logits", str(from_data), "--out", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "already logit-adjusted" in result.output
    result = cli.invoke(app, ["adjust-logits", str(out), "--out", str(tmp_path / "x.safetensors"), "--data", str(tmp_path / "none")])
    assert result.exit_code == 2 and "dataset folder not found" in result.output
    result = cli.invoke(app, ["adjust-logits", str(out), "--out", str(tmp_path / "x.safetensors"), "--tau", "2"])
    assert result.exit_code == 2
    assert not (tmp_path / "x.safetensors").exists()
