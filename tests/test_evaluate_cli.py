"""`icnet-deploy evaluate`: the command end to end on a tiny generated dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.data.folders import CityscapesDataset
from icnet_deploy.labels import CLASS_NAMES
from icnet_deploy.data.synthetic import write_dataset
from icnet_deploy.data.transforms import preprocess
from icnet_deploy.evaluate import evaluate_predictions
from icnet_deploy.model.weights import load_model

cli = CliRunner()


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    write_dataset(root, count=2, seed=910000, size=(128, 256), split="val")
    return root


def test_evaluate_json_matches_a_direct_eager_evaluation(tiny_val, small_checkpoint):
    result = cli.invoke(app, ["evaluate", "--data", str(tiny_val), "--checkpoint", str(small_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 2
    assert set(report["per_class"]) == set(CLASS_NAMES)
    assert 0.0 <= report["miou"] <= 100.0 and 0.0 <= report["pixel_accuracy"] <= 100.0

    # The command goes through the Runner; the numbers must equal the model called by hand.
    model = load_model(small_checkpoint)
    dataset = CityscapesDataset(tiny_val, "val")

    def by_hand(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(preprocess(image, model.config.mean, model.config.std))).argmax(1)[0].numpy()

    direct = evaluate_predictions(by_hand, (dataset[i] for i in range(len(dataset))), model.config.num_classes).to_dict()
    assert report["miou"] == pytest.approx(direct["miou"], abs=1e-6)
    assert report["pixel_accuracy"] == pytest.approx(direct["pixel_accuracy"], abs=1e-6)


def test_evaluate_an_engine_scores_like_its_checkpoint(tiny_val, small_checkpoint, small_onnx, int8_engine_small):
    """`evaluate --engine`: the fp32 export scores what its eager checkpoint scores; INT8 close to it."""
    def scores(*args: str) -> dict:
        result = cli.invoke(app, ["evaluate", "--data", str(tiny_val), "--threads", "1", "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    eager = scores("--checkpoint", str(small_checkpoint))
    fp32 = scores("--engine", str(small_onnx))
    int8 = scores("--engine", str(int8_engine_small))
    assert fp32["engine"]["precision"] == "fp32" and int8["engine"]["precision"] == "int8"
    assert fp32["miou"] == pytest.approx(eager["miou"], abs=0.01)
    assert abs(int8["miou"] - eager["miou"]) < 5.0 and int8["images"] == 2
    result = cli.invoke(app, ["evaluate", "--data", str(tiny_val), "--engine", str(small_onnx),
                              "--checkpoint", str(small_checkpoint)])
    assert result.exit_code == 2 and "not both" in result.output


def test_evaluate_a_folder_without_the_layout_is_exit_2(tmp_path):
    result = cli.invoke(app, ["evaluate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert str(tmp_path) in result.output


def test_generated_sets_score_as_the_cli_does_and_summarise(tiny_val, small_checkpoint):
    """The many-set scorer (benchmarks/unseen_sets.py) must give the CLI's number for the same seeds."""
    from icnet_deploy.backends.torch_eager import TorchRunner
    from icnet_deploy.evaluate import generated_set_confusion, summarise_sets

    result = cli.invoke(app, ["evaluate", "--data", str(tiny_val), "--checkpoint", str(small_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    with TorchRunner(checkpoint=small_checkpoint) as runner:
        matrices = generated_set_confusion({"model": lambda image: runner.predict([image])[0],
                                            "all road": lambda image: np.zeros(image.shape[:2], np.uint8)},
                                           seed=910000, scenes=2, size=(128, 256))
    assert matrices["model"].scores().miou == pytest.approx(json.loads(result.stdout)["miou"], abs=1e-9)
    road = matrices["all road"].matrix
    assert road[:, 1:].sum() == 0 and road[:, 0].sum() == matrices["model"].matrix.sum()  # same pixels, all road

    # Two hand-made 2-class sets: one perfect, one with a single false pixel of an absent class.
    perfect = np.array([[10, 0], [0, 10]])
    stray = np.array([[20, 1], [0, 0]])  # class 1 absent from the truth, predicted once: IoU 0
    s = summarise_sets({5: perfect, 7: stray})
    assert s["per_set"] == {5: 100.0, 7: pytest.approx(50.0 * 20 / 21)}
    assert s["at_least"] == 1 and s["below"] == {7: s["per_set"][7]} and s["min"] == s["per_set"][7]
    assert s["mean"] == pytest.approx((100.0 + s["per_set"][7]) / 2)
    assert s["pooled"] == pytest.approx((30 / 31 + 10 / 11) / 2 * 100)  # the summed matrix [[30, 1], [0, 10]]
    with pytest.raises(ValueError):
        summarise_sets({})


def test_unseen_sets_script_scores_resumes_and_reports(tmp_path, small_checkpoint):
    """benchmarks/unseen_sets.py end to end at a small size: JSON summary, resumable state, --report."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "unseen_sets.py"
    state = tmp_path / "sets.npz"
    run = [sys.executable, str(script), "--ckpt", f"rand={small_checkpoint}", "--sets", "910000:2:5",
           "--scenes", "1", "--size", "128x256", "--state", str(state), "--threads", "1", "--json"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)["rand"]
    assert summary["sets"] == 2 and set(summary["per_set"]) == {"910000", "910005"}
    assert "set 910005" in first.stderr

    again = subprocess.run(run, capture_output=True, text=True, timeout=300, check=False)  # resumes: nothing to score
    assert again.returncode == 0 and "set 9100" not in again.stderr
    assert json.loads(again.stdout)["rand"] == summary

    report = subprocess.run([sys.executable, str(script), "--report", "--state", str(state), "--sets", "910005:1",
                             "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert report.returncode == 0, report.stderr[-2000:]
    only = json.loads(report.stdout)["rand"]
    assert only["sets"] == 1 and only["per_set"]["910005"] == summary["per_set"]["910005"]

    # Bad input: one line naming the problem, exit 2, the state file untouched.
    before = state.read_bytes()
    other = tmp_path / "other.safetensors"
    from icnet_deploy.model import ICNet
    from icnet_deploy.model.weights import save_checkpoint

    save_checkpoint(ICNet().eval(), other)
    for args, message in [(["--sets", "910000"], "--sets"), (["--sets", "a:b"], "--sets"), (["--size", "big"], "--size"),
                          (["--ckpt", f"rand={other}"], "other weights"),
                          (["--ckpt", f"x={tmp_path / 'missing.safetensors'}"], "missing.safetensors")]:
        bad = run[:]
        for flag, value in zip(args[::2], args[1::2], strict=True):
            bad[bad.index(flag) + 1] = value
        done = subprocess.run(bad, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr[-500:])
    assert state.read_bytes() == before
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    junk = [sys.executable, str(script), "--report", "--state", str(tmp_path / "junk.npz")]
    done = subprocess.run(junk, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2 and "junk.npz" in done.stderr
