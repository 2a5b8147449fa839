"""`icnet-deploy check`: a good engine passes, a perturbed one fails (exit 1), reports parse, layerwise finds the layer."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icnet_deploy.check import DEFAULT_THRESHOLDS, check, default_thresholds
from icnet_deploy.cli import app
from icnet_deploy.errors import ArtifactError, IcnetDeployError
from icnet_deploy.manifest import embed_manifest, read_manifest, write_manifest
from icnet_deploy.metrics import DEFAULT_DELTA

cli = CliRunner()
PERTURBED_CONV = 20  # index among the Conv nodes: a mid-network bottleneck conv


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory, small_onnx) -> tuple[Path, str]:
    """``small_onnx`` with one conv's weights scaled by 1.3, with a rewritten (valid) manifest naming its parent."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(small_onnx))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][PERTURBED_CONV]
    weight = {i.name: i for i in model.graph.initializer}[conv.input[1]]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.3, weight.name))
    folder = tmp_path_factory.mktemp("perturbed")
    path = folder / "perturbed.onnx"
    manifest = read_manifest(small_onnx)
    manifest.parent_sha256 = manifest.sha256
    manifest.details = dict(manifest.details, note=f"test: {conv.name} weights ×1.3")
    embed_manifest(model, manifest)  # what build_engine does: the embedded copy and the graph hash match
    onnx.save(model, str(path))
    write_manifest(path, manifest)
    shutil.copy(small_onnx, folder / "parent.onnx")  # so the parent is found beside it, by sha256
    shutil.copy(small_onnx.with_name(small_onnx.name + ".json"), folder / "parent.onnx.json")
    return path, conv.name


def _json(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_good_engine_passes_with_json_and_junit(small_onnx, tmp_path):
    junit = tmp_path / "reports" / "parity.xml"
    result = cli.invoke(app, ["check", "--engine", str(small_onnx), "--count", "2", "--threads", "1", "--json",
                              "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert data["passed"] and data["failures"] == [] and data["precision"] == "fp32"
    fp32_gate = DEFAULT_THRESHOLDS["fp32"]
    assert data["thresholds"]["min_agreement"] == fp32_gate.min_agreement
    sets = {s["set"]: s for s in data["sets"]}
    assert set(sets) == {"generated", "photos"}
    assert sets["generated"]["images"] == 2 and sets["photos"]["images"] == 4
    gen = sets["generated"]
    assert gen["agreement_pct"] >= fp32_gate.min_agreement and gen["max_abs_logit_error"] < 1e-2
    assert abs(gen["ground_truth"]["miou_drop"]) < 0.05  # the scenes' own labels give the mIoU for free
    assert set(gen["per_class"]["road"]) >= {"iou_vs_reference", "engine_iou", "reference_iou", "iou_delta"}
    assert gen["labelled"] and not sets["photos"]["labelled"]
    for s in sets.values():  # within δ counts every raw agreement and more
        assert s["delta_logit"] == DEFAULT_DELTA and s["agreement_within_delta_pct"] >= s["agreement_pct"]
        assert all(r["agreement_within_delta_pct"] >= r["agreement_pct"] for r in s["per_image"])
    assert 0.0 <= gen["near_tie_pct"] < 5.0 and gen["agreement_beyond_ties_pct"] >= fp32_gate.min_agreement
    for s in sets.values():  # infer's label path (the graph cut before its final Resize) gives the gated labels
        assert s["label_path"]["agreement_pct"] == 100.0 and s["label_path"]["output_shape"][1:] == [32, 64]
    assert {c["metric"] for c in data["checks"]} >= {"pixel_agreement", "label_path_agreement"}
    assert data["reference"]["checkpoint_sha256"] == read_manifest(small_onnx).checkpoint_sha256
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(data["checks"]) == int(suite.get("tests")) and suite.get("failures") == "0"
    assert {c.get("classname") for c in cases} == {"parity.generated", "parity.photos"}


def test_perturbed_engine_fails_with_exit_1(perturbed, tmp_path):
    path, _ = perturbed
    junit = tmp_path / "parity.xml"
    result = cli.invoke(app, ["check", "--engine", str(path), "--count", "1", "--no-photos", "--threads", "1",
                              "--junit", str(junit), "--json"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "pixel agreement" in result.output
    data = _json(result)
    assert not data["passed"] and data["failures"]
    suite = ET.parse(junit).getroot().find("testsuite")
    failures = suite.findall("testcase/failure")
    assert failures and int(suite.get("failures")) == len(failures)
    assert "pixel agreement" in failures[0].get("message")


def test_layerwise_names_the_perturbed_layer(perturbed):
    path, conv_name = perturbed
    report = check(path, count=1, photos=False, threads=1, layerwise=True)
    assert not report.passed
    lw = report.layerwise
    assert lw["reference"].endswith("parent.onnx")  # found by the manifest's parent_sha256
    assert lw["first_divergence"]["node"] == conv_name
    assert lw["matched"] == lw["reference_tensors"]
    before = [r for r in lw["layers"] if r["name"] == lw["first_divergence"]["name"]]
    assert before and before[0]["rel_error"] > 0.1


def test_layerwise_needs_a_reference(small_onnx):
    with pytest.raises(ArtifactError, match="--reference"):
        check(small_onnx, count=1, photos=False, threads=1, layerwise=True)


def test_layerwise_maps_qdq_dequantize_outputs(small_onnx, tmp_path):
    quantize = pytest.importorskip("icnet_deploy.quantization", reason="the INT8 quantizer is not importable")
    from icnet_deploy.data.transforms import preprocess
    from icnet_deploy.model.config import DEFAULT_MEAN, DEFAULT_STD
    from icnet_deploy.data.samples import verification_images
    import onnx

    from icnet_deploy.diagnostics.layerwise import DQ_SUFFIX, compare_layers

    prep = quantize.prepare_for_quantization(small_onnx, tmp_path / "prep.onnx")
    x = [preprocess(im, DEFAULT_MEAN, DEFAULT_STD) for _, _, im in verification_images(1, 128, 256)]
    cache = quantize.calibrate(prep, x, "minmax")
    qdq = tmp_path / "qdq.onnx"
    onnx.save(quantize.quantize_qdq(prep, cache), str(qdq))
    report = compare_layers(qdq, small_onnx, x[0], precision="int8", threads=1)
    # a Relu folded into the uint8 range takes over its Conv's output: that Conv output has no counterpart
    relus = sum(n.op_type == "Relu" for n in onnx.load(str(small_onnx)).graph.node)
    assert report.reference_tensors - relus <= report.matched <= report.reference_tensors
    assert sum(r["engine_name"].endswith(DQ_SUFFIX) for r in report.layers) > report.matched // 2
    assert all(np.isfinite(r["rel_error"]) for r in report.layers)
    assert report.notes


def test_checkpoint_mismatch_is_refused_with_exit_2(small_onnx, small_checkpoint, tmp_path):
    other = tmp_path / "other.safetensors"
    shutil.copy(small_checkpoint, other)
    with other.open("ab") as handle:
        handle.write(b" ")
    result = cli.invoke(app, ["check", "--engine", str(small_onnx), "--checkpoint", str(other), "--count", "1"])
    assert result.exit_code == 2 and "sha256" in result.output


def test_cityscapes_data_and_image_folder_with_labels(small_onnx, tmp_path):
    from icnet_deploy.data.synthetic import write_dataset

    root = tmp_path / "data"
    write_dataset(root, 2, 950_100, size=(96, 192), split="val")
    report = check(small_onnx, data_dir=root, threads=1)
    assert [s["set"] for s in report.sets] == ["data"] and report.sets[0]["images"] == 2
    assert "ground_truth" in report.sets[0] and report.passed
    report = check(small_onnx, images_dir=root / "leftImg8bit", labels_dir=root / "gtFine", threads=1,
                   thresholds={"min_agreement": 50.0, "max_miou_drop": 5.0, "max_logit_error": 1.0})
    (images,) = report.sets
    assert images["set"] == "images" and "ground_truth" in images
    assert {c["metric"] for c in report.checks} == {"pixel_agreement", "miou_drop", "max_logit_error", "label_path_agreement"}
    with pytest.raises(IcnetDeployError, match="no label"):
        check(small_onnx, images_dir=root / "leftImg8bit", labels_dir=tmp_path, threads=1)


def test_default_thresholds_by_precision():
    assert default_thresholds("fp32").min_agreement == 99.99
    assert default_thresholds("fp16").min_agreement == 99.9
    int8 = default_thresholds("int8")
    assert (int8.min_agreement, int8.max_miou_drop, int8.max_class_iou_drop) == (99.5, 0.5, 2.0)
    assert (int8.delta, int8.min_within_delta, int8.min_within_delta_worst) == (0.25, 99.5, 99.0)
    assert default_thresholds("int8", min_agreement=99.0, max_logit_error=2.0).max_logit_error == 2.0
    assert set(DEFAULT_THRESHOLDS) == {"fp32", "fp16", "int8"}
    # raw agreement: int8 asks 99.5 of labelled sets and only a floor of unlabelled ones (photos)
    assert (int8.agreement_for(labelled=False), int8.agreement_for(labelled=True)) == (97.0, 99.5)
    assert default_thresholds("fp16").agreement_for(labelled=False) == 99.9
    assert default_thresholds("fp32").min_within_delta is None  # fp32/fp16: raw agreement only
    mixed = default_thresholds("int8", min_agreement=99.7, min_agreement_unlabelled=98.0, delta=0.1)
    assert (mixed.agreement_for(labelled=False), mixed.agreement_for(labelled=True), mixed.delta) == (98.0, 99.7, 0.1)
    with pytest.raises(IcnetDeployError, match="unknown threshold"):
        default_thresholds("int8", min_agreement_photos=98.0)


def test_unlabelled_threshold_gates_the_photo_set(perturbed):
    """One report, two bars: the photos (no labels) are judged by the unlabelled floor, the scenes by the other."""
    from icnet_deploy.check import check

    loose = check(perturbed[0], count=1, photos=True, thresholds={"min_agreement": 0.0, "min_agreement_unlabelled": 100.0})
    by_set = {c["set"]: c for c in loose.checks if c["metric"] == "pixel_agreement"}
    assert by_set["photos"]["threshold"] == 100.0 and by_set["generated"]["threshold"] == 0.0
    assert by_set["generated"]["passed"]
    assert by_set["photos"]["passed"] == (by_set["photos"]["value"] >= 100.0)


def test_checkpoint_is_not_an_engine(small_checkpoint):
    with pytest.raises(IcnetDeployError, match="not an engine"):
        check(small_checkpoint)


def test_dynamic_labels_engine_passes_without_logit_metrics(small_labels_onnx):
    report = check(small_labels_onnx, count=1, size=(96, 160), threads=1, thresholds={"max_logit_error": 1e-3})
    assert report.passed, report.failures
    generated = next(s for s in report.sets if s["set"] == "generated")
    assert generated["per_image"][0]["size"] == [96, 160]
    assert "max_abs_logit_error" not in generated  # labels engine: agreement only
    assert {c["metric"] for c in report.checks} == {"pixel_agreement", "label_path_agreement"}
    assert generated["label_path"]["agreement_pct"] == 100.0  # a labels graph: infer's path is its output


def test_label_path_gate_fails_when_infers_labels_differ():
    """The gate's logic on arrays: labels from the 1/4-resolution path that differ from the full output's fail."""
    import torch

    from icnet_deploy.compare import LABEL_PATH_MIN_AGREEMENT, SetStats, default_thresholds, gate
    from icnet_deploy.model.icnet import upsample_logits

    coarse = np.random.default_rng(0).standard_normal((1, 19, 16, 32)).astype(np.float32)
    full = upsample_logits(torch.from_numpy(coarse), (64, 128)).numpy()[0]
    th = default_thresholds("fp32")
    for early, passed in ((coarse[0], True), (np.roll(coarse[0], 1, axis=0), False)):
        stats = SetStats("generated", 19)
        full_labels = stats.add("scene", full, full, "logits", (64, 128), None)
        stats.add_label_path("scene", early, full_labels, "logits")
        (entry,) = [c for c in gate([stats.result()], th) if c["metric"] == "label_path_agreement"]
        assert entry["passed"] is passed and entry["threshold"] == LABEL_PATH_MIN_AGREEMENT
        assert "labels of infer's path (output 19×16×32, UpsampleArgmax " in entry["message"]


def test_near_ties_are_counted_and_agreement_beyond_them_reported():
    """Hand-made logits: 2 of 8 pixels are near ties (top two within NEAR_TIE_LOGIT) and the engine
    flips both plus one confident pixel; the beyond-ties agreement counts only the confident flip."""
    from icnet_deploy.compare import SetStats
    from icnet_deploy.metrics import NEAR_TIE_LOGIT

    ref = np.zeros((3, 2, 4), np.float32)
    ref[0] = 5.0  # class 0 wins everywhere by 5 logits ...
    ref[1, 0, 0] = ref[1, 0, 1] = 5.0 - NEAR_TIE_LOGIT / 2  # ... except two near ties with class 1
    eng = ref.copy()
    eng[1, 0, 0] = eng[1, 0, 1] = 5.0 + NEAR_TIE_LOGIT / 2  # the engine flips the two ties
    eng[2, 1, 3] = 9.0  # and one confident pixel
    stats = SetStats("t", 3)
    stats.add("a", eng, ref, "logits", (2, 4), None)
    out = stats.result()
    assert out["agreement_pct"] == pytest.approx(100.0 * 5 / 8)
    assert out["near_tie_pct"] == pytest.approx(100.0 * 2 / 8)
    assert out["agreement_beyond_ties_pct"] == pytest.approx(100.0 * 5 / 6)
    assert out["per_image"][0]["near_tie_pct"] == pytest.approx(25.0)
