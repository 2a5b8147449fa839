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


@pytest.fixture(scope="session")
def small_labels_onnx(tmp_path_factory, small_checkpoint) -> Path:
    """A dynamic-size export of ``small_checkpoint`` that outputs labels (ArgMax in the graph), verified at 128×256."""
    from icnet_deploy.export import export

    path = tmp_path_factory.mktemp("onnx_labels") / "icnet_dynamic_labels.onnx"
    export(small_checkpoint, path, height=128, width=256, dynamic=True, outputs="labels", verify_images=2,
           verify_sizes=[(128, 256)])
    return path


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory) -> Path:
    """Four small generated calibration scenes (PNG + one JPEG, seeds 700000…, like the shipped calib/)."""
    from PIL import Image

    from icnet_deploy.data.synthetic import generate_scene

    folder = tmp_path_factory.mktemp("calib")
    for i in range(4):
        image, _ = generate_scene(700_000 + i, 128, 256)
        Image.fromarray(image).save(folder / f"scene_{700_000 + i}.{'jpg' if i == 3 else 'png'}")
    return folder


@pytest.fixture(scope="session")
def small_quant_setup(small_onnx, calib_dir, tmp_path_factory):
    """What an INT8 build starts from at 128×256: the pre-processed fp32 graph, a percentile
    calibration cache of ``calib_dir`` and its four input batches."""
    import onnx

    from icnet_deploy import quantization as Q
    from icnet_deploy.manifest import read_manifest

    m = read_manifest(small_onnx)
    pre = onnx.load(str(Q.prepare_for_quantization(small_onnx, tmp_path_factory.mktemp("pre") / "pre.onnx")))
    loader = Q.ImageBatches.from_folder(calib_dir, height=128, width=256, mean=m.mean, std=m.std)
    cache = Q.calibrate(pre, loader, "percentile")
    return pre, cache, list(loader)


@pytest.fixture(scope="session")
def int8_engine_small(small_onnx, calib_dir, tmp_path_factory) -> Path:
    """A quick INT8 engine of ``small_onnx`` (the defaults, but nearest rounding), built on this machine."""
    from icnet_deploy.build import build_engine

    path = tmp_path_factory.mktemp("int8_small") / "icnet_128x256_int8.onnx"
    build_engine(small_onnx, path, precision="int8", calib=calib_dir, weight_rounding="nearest", threads=1)
    return path


@pytest.fixture(scope="session")
def shipped_set_scores(tmp_path_factory):
    """``scores(seed)``: the shipped checkpoint's ``evaluate --json`` record on the 12-scene generated set
    at ``seed``, made as a user makes it (``synth --count 12 --seed S --split val``, then ``evaluate``),
    through the CLI; each seed is evaluated once per session (the gate and the regression test share it)."""
    import json

    from typer.testing import CliRunner

    from icnet_deploy.cli import app
    from icnet_deploy.model.weights import SHIPPED_CHECKPOINT_NAME, shipped_checkpoint

    if shipped_checkpoint() is None:
        pytest.skip(f"models/{SHIPPED_CHECKPOINT_NAME} is not in this checkout")
    cli, done = CliRunner(), {}

    def scores(seed: int) -> dict:
        if seed not in done:
            data = tmp_path_factory.mktemp(f"val_{seed}")
            result = cli.invoke(app, ["synth", "--out", str(data), "--count", "12", "--seed", str(seed), "--split", "val"])
            assert result.exit_code == 0, result.output
            result = cli.invoke(app, ["evaluate", "--data", str(data), "--json"])
            assert result.exit_code == 0, result.output
            done[seed] = json.loads(result.stdout[result.stdout.find("{"):])
        return done[seed]

    return scores


@pytest.fixture(scope="session")
def shipped_onnx_small(tmp_path_factory) -> Path:
    """The shipped checkpoint exported at 1×3×128×256 (fp32 logits): real labels, small and fast."""
    from icnet_deploy.export import export

    path = tmp_path_factory.mktemp("shipped_onnx") / "icnet_shipped_128x256.onnx"
    export(None, path, height=128, width=256, verify_images=2)
    return path


@pytest.fixture(scope="session")
def shipped_int8_small(shipped_onnx_small, calib_dir, tmp_path_factory) -> Path:
    """A quick INT8 engine of ``shipped_onnx_small`` (the defaults, but nearest rounding)."""
    from icnet_deploy.build import build_engine

    path = tmp_path_factory.mktemp("shipped_int8") / "icnet_shipped_128x256_int8.onnx"
    build_engine(shipped_onnx_small, path, precision="int8", calib=calib_dir, weight_rounding="nearest", threads=1)
    return path
