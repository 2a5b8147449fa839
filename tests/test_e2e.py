"""End to end on the shipped checkpoint: export fp32 → build INT8 → `icnet-deploy check` gates both.

This is the CI parity gate exercised the way CI and users run it: through the CLI, with its exit
codes and JUnit files, on the shipped defaults (1024×2048, all of ``calib/``, the default
thresholds and check images), and broken INT8 engines that the gate must fail. Marked ``slow``; `python3 tasks.py test` (what `.ci/run` calls) runs it too.
"""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icnet_deploy.check import DEFAULT_THRESHOLDS, HELDOUT_COUNT
from icnet_deploy.cli import app

pytestmark = pytest.mark.slow
cli = CliRunner()
H, W = 1024, 2048  # the shipped default size: the size whose parity the README reports


@pytest.fixture(scope="module")
def shipped() -> Path:
    from icnet_deploy.model.weights import SHIPPED_CHECKPOINT_NAME, shipped_checkpoint

    path = shipped_checkpoint()
    if path is None:
        pytest.skip(f"models/{SHIPPED_CHECKPOINT_NAME} is not in this checkout yet (the training run ships it)")
    return path


@pytest.fixture(scope="module")
def fp32_engine(shipped, tmp_path_factory) -> Path:
    from icnet_deploy.export import export

    path = tmp_path_factory.mktemp("e2e") / "icnet_fp32.onnx"
    export(shipped, path, height=H, width=W, verify_images=2)
    return path


@pytest.fixture(scope="module")
def int8_engine(fp32_engine) -> Path:
    """`icnet-deploy build-engine FP32 --int8`: the default (fixed rule) on the shipped calib/."""
    if importlib.util.find_spec("icnet_deploy.build") is None:
        pytest.skip("the INT8 builder (icnet_deploy.build, `build-engine`) is not in this checkout yet")
    out = fp32_engine.with_name("icnet_int8.onnx")
    result = cli.invoke(app, ["build-engine", str(fp32_engine), "--int8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _check(engine: Path, junit: Path) -> tuple[int, dict, str]:
    result = cli.invoke(app, ["check", "--engine", str(engine), "--json", "--junit", str(junit)])
    start = result.stdout.find("{")
    data = json.loads(result.stdout[start:]) if start >= 0 else {}
    return result.exit_code, data, result.output


def test_fp32_engine_passes_the_gate(fp32_engine, tmp_path):
    code, data, output = _check(fp32_engine, tmp_path / "fp32.xml")
    assert code == 0, output
    assert data["passed"] and data["precision"] == "fp32"
    assert all(s["agreement_pct"] >= DEFAULT_THRESHOLDS["fp32"].min_agreement for s in data["sets"])
    assert ET.parse(tmp_path / "fp32.xml").getroot().find("testsuite").get("failures") == "0"


def test_int8_engine_passes_the_gate(int8_engine, tmp_path):
    """The default INT8 build passes the int8 defaults, and exit code, JSON and JUnit agree."""
    code, data, output = _check(int8_engine, tmp_path / "int8.xml")
    assert data.get("precision") == "int8", output
    gate = DEFAULT_THRESHOLDS["int8"]
    assert data["thresholds"] == asdict(gate)  # the defaults: test_check.py pins their values
    assert code == 0, output
    assert data["passed"] and data["failures"] == []
    junit = ET.parse(tmp_path / "int8.xml").getroot().find("testsuite")
    assert junit.get("failures") == "0"
    assert {c["metric"] for c in data["checks"]} >= {"pixel_agreement", "agreement_within_delta",
                                                     "worst_image_within_delta", "miou_drop", "class_iou_drop"}
    assert {s["set"] for s in data["sets"]} == {"generated", "photos"}
    gen = next(s for s in data["sets"] if s["set"] == "generated")
    assert gen["images"] == HELDOUT_COUNT and gen["agreement_pct"] >= gate.min_agreement
    assert gen["ground_truth"]["miou_drop"] <= gate.max_miou_drop
    photos = next(s for s in data["sets"] if s["set"] == "photos")
    assert photos["agreement_pct"] >= gate.min_agreement_unlabelled
    assert photos["agreement_within_delta_pct"] >= gate.min_within_delta
    # per image, raw and within δ, in the JSON and in the JUnit output
    assert all(r["agreement_within_delta_pct"] >= r["agreement_pct"] for r in photos["per_image"])
    case = next(c for c in junit.findall("testcase") if c.get("name") == "agreement_within_delta"
                and c.get("classname") == "parity.photos")
    assert all(f"{r['image']}: agreement" in case.find("system-out").text for r in photos["per_image"])
    # the engine knows the CPU it was built on, and check says which one it ran on
    assert data["environment"]["int8_kernel"] == data["engine"]["manifest"]["details"]["cpu"]["int8_kernel"]


def _write_variant(engine: Path, out: Path, edit, note: str) -> Path:
    """``engine`` with ``edit(graph)`` applied, under its own (valid) manifest: an engine that a
    broken tool or a bad build could have written."""
    import onnx

    from icnet_deploy.manifest import embed_manifest, read_manifest, write_manifest

    model = onnx.load(str(engine))
    edit(model.graph)
    manifest = read_manifest(engine)
    manifest.details = dict(manifest.details, note=note)
    embed_manifest(model, manifest)  # sealed for the edited graph, as build-engine would have written it
    onnx.save(model, str(out))
    write_manifest(out, manifest)
    return out


def _sabotaged(int8_engine: Path, _fp32: Path) -> Path:
    """The classifier's bias of one class raised by 8 logits (the classifier stays fp32 in INT8 engines)."""
    from onnx import numpy_helper

    from icnet_deploy.manifest import read_manifest

    classifier = next(n for n, why in read_manifest(int8_engine).details["fp32_layers"].items()
                      if why.startswith("classifier"))

    def edit(graph):
        conv = next(n for n in graph.node if n.name == classifier)
        bias = next(i for i in graph.initializer if i.name == conv.input[2])
        b = numpy_helper.to_array(bias).copy()
        b[2] += 8.0  # building
        bias.CopyFrom(numpy_helper.from_array(b, bias.name))

    return _write_variant(int8_engine, int8_engine.with_name("sabotaged.onnx"), edit, "classifier bias +8")


def _poisoned(int8_engine: Path, _fp32: Path) -> Path:
    """Every activation range blown up a millionfold, as a calibration cache of ±1e38-like ranges gives."""
    from onnx import numpy_helper

    def edit(graph):
        inits = {i.name: i for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "QuantizeLinear" and node.input[1] in inits:
                scale = inits[node.input[1]]
                scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(1e6), scale.name))

    return _write_variant(int8_engine, int8_engine.with_name("poisoned.onnx"), edit, "activation ranges ×1e6")


def _minmax(_int8: Path, fp32_engine: Path) -> Path:
    """A real build, calibrated by min/max: outliers stretch every range and round the rest away."""
    out = fp32_engine.with_name("minmax.onnx")
    result = cli.invoke(app, ["build-engine", str(fp32_engine), "--int8", "--calib-method", "minmax", "--calib-limit", "8",
                              "--weight-rounding", "nearest", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("make", [_sabotaged, _poisoned, _minmax], ids=["sabotaged", "poisoned", "minmax"])
def test_the_int8_gate_fails_broken_engines(int8_engine, fp32_engine, tmp_path, make):
    """Agreement within δ must not let a broken INT8 engine through: exit 1, and the JSON says why."""
    engine = make(int8_engine, fp32_engine)
    result = cli.invoke(app, ["check", "--engine", str(engine), "--count", "2", "--json"])
    start = result.stdout.find("{")
    data = json.loads(result.stdout[start:]) if start >= 0 else {}
    assert result.exit_code == 1, result.output
    assert not data["passed"] and data["failures"]
    failed = {c["metric"] for c in data["checks"] if not c["passed"]}
    assert failed & {"agreement_within_delta", "worst_image_within_delta"}, data["failures"]


# The model card's promise: ≥ 75% mIoU on any unseen 12-scene generated set. The exact values the
# card reports for these sets are pinned in test_regression_shipped_checkpoint.py.
MIOU_TARGET = 75.0
UNSEEN_SETS = (900_000, 1_395_963_513)  # the card's held-out set; the lowest of its sets at random seeds


@pytest.mark.parametrize("seed", UNSEEN_SETS)
def test_shipped_checkpoint_meets_the_miou_target_on_unseen_sets_through_the_cli(shipped_set_scores, seed):
    """`synth --count 12 --seed S` then `evaluate --json`, as a user runs them: at least the target."""
    assert shipped_set_scores(seed)["miou"] >= MIOU_TARGET


def test_labels_skip_the_final_upsample_and_match_the_full_output(shipped, fp32_engine, int8_engine):
    """`infer`/`bench` stop before the ×4 upsample (`Runner.infer_for_labels`) and take the labels from there:
    at 1024×2048, on a real photograph and a generated scene, exactly the full output's argmax."""
    from icnet_deploy.assets import real_photos
    from icnet_deploy.backends import load
    from icnet_deploy.data.folders import read_rgb
    from icnet_deploy.data.synthetic import generate_scene
    from icnet_deploy.data.transforms import resize_image

    images = [resize_image(read_rgb(real_photos()[0]), (H, W)), generate_scene(960_000, H, W)[0]]
    for path in (shipped, fp32_engine, int8_engine):
        with load(path, threads=2) as runner:
            for image in images:
                x = runner.prepare(image)
                assert runner.infer_for_labels(x).shape == (1, 19, H // 4, W // 4)
                full = runner.infer(x).argmax(1)
                assert (runner.predict_labels(x) == full).all(), path.name
