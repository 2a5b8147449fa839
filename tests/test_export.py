"""PyTorch → ONNX export: graph contents, verification, manifest, and every error path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from icnet_deploy.ort_session import create_session
from icnet_deploy.cli import app
from icnet_deploy.labels import CLASS_NAMES, PALETTE
from icnet_deploy.data.transforms import preprocess
from icnet_deploy.model.config import DEFAULT_MEAN, DEFAULT_STD
from icnet_deploy.errors import IcnetDeployError, ParityError
from icnet_deploy.data.samples import verification_images
from icnet_deploy.export import export, op_histogram
from icnet_deploy.hashing import sha256_file
from icnet_deploy.manifest import ONNX_METADATA_KEY, Manifest, manifest_path, read_manifest
from icnet_deploy.model.weights import load_model

runner = CliRunner()
# What a static ICNet graph may contain after folding and simplification: nothing else.
STATIC_OPS = {"Conv", "Relu", "Add", "Resize", "MatMul", "MaxPool"}


def _inputs(height: int, width: int, count: int = 1) -> np.ndarray:
    return np.concatenate([preprocess(im, DEFAULT_MEAN, DEFAULT_STD) for _, _, im in verification_images(count, height, width)])


def _eager(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    model = load_model(checkpoint)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _leftovers(folder: Path, keep: tuple[str, ...] = ()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- the graph ------------------------------------------------------------------------------
def test_static_graph_is_plain_folded_and_checked(small_onnx):
    model = onnx.load(str(small_onnx))
    ops = op_histogram(model)
    assert set(ops) <= STATIC_OPS, ops
    for op in ("Gather", "Loop", "If", "BatchNormalization"):
        assert op not in ops
    assert ops["MatMul"] == 8  # pyramid pooling: 4 bins × (rows, cols) constant averaging matrices
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    onnx.checker.check_model(model, full_check=True)
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == [1, 3, 128, 256]
    assert dims(model.graph.output[0]) == [1, 19, 128, 256]


def test_onnxruntime_matches_eager(small_onnx, small_checkpoint):
    x = _inputs(128, 256, count=2)[1:]  # the photograph
    got = create_session(small_onnx, threads=1).run(None, {"image": x})[0]
    ref = _eager(small_checkpoint, x)
    assert got.shape == ref.shape == (1, 19, 128, 256)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()  # fp32 round-off, relative to the logit scale
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9999


# -- the manifest ---------------------------------------------------------------------------
def test_manifest_round_trip_sidecar_and_embedded(small_onnx, small_checkpoint, tmp_path):
    sidecar = read_manifest(small_onnx)
    assert manifest_path(small_onnx).is_file()
    assert sidecar.sha256 == sha256_file(small_onnx)
    assert (sidecar.format, sidecar.precision, sidecar.target) == ("onnx", "fp32", "any")
    assert (sidecar.input_name, sidecar.input_shape, sidecar.input_dtype) == ("image", [1, 3, 128, 256], "float32")
    assert (sidecar.output_name, sidecar.output_kind, sidecar.output_dtype) == ("logits", "logits", "float32")
    assert sidecar.num_classes == 19 and sidecar.class_names == list(CLASS_NAMES)
    assert sidecar.palette == PALETTE[:19].tolist()
    assert sidecar.mean == [123.675, 116.28, 103.53] and sidecar.std == [58.395, 57.12, 57.375]
    assert sidecar.size_rule == {"min": 64, "multiple_of": 1, "dynamic": False, "height": 128, "width": 256}
    assert sidecar.checkpoint_sha256 == sha256_file(small_checkpoint)
    # named relative to the export (never an absolute path), and found again from there
    assert not Path(sidecar.checkpoint_path).is_absolute()
    assert (small_onnx.parent / sidecar.checkpoint_path).resolve() == small_checkpoint.resolve()
    assert sidecar.model_config["name"] == "icnet_r50_half"
    assert {"torch", "onnx", "onnxruntime", "onnxslim", "python", "icnet_deploy"} <= set(sidecar.versions)
    details = sidecar.details
    assert details["opset"] == 17 and "TorchScript" in details["exporter"] and details["simplifier"].startswith("onnxslim")
    assert details["output_shape"] == [1, 19, 128, 256]
    parity = details["export_parity"]
    assert parity["passed"] and parity["agreement_pct"] >= 99.99
    assert parity["max_abs_logit_error"] <= parity["logit_error_bound"]
    assert {row["kind"] for row in parity["images"]} == {"scene", "photo"}

    # The same manifest is embedded in the ONNX metadata (minus the file's own hash).
    props = {p.key: p.value for p in onnx.load(str(small_onnx), load_external_data=False).metadata_props}
    embedded = Manifest.from_dict(json.loads(props[ONNX_METADATA_KEY]))
    assert embedded.sha256 is None
    assert embedded.to_dict() | {"sha256": sidecar.sha256} == sidecar.to_dict()
    # A copied .onnx without its sidecar still knows what it is.
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(small_onnx.read_bytes())
    assert read_manifest(copy).to_dict() == embedded.to_dict()


# -- labels output, dynamic shapes ------------------------------------------------------------
def test_labels_output_equals_argmax_of_logits(tmp_path, small_checkpoint, small_onnx):
    out = tmp_path / "labels.onnx"
    manifest = export(small_checkpoint, out, height=128, width=256, outputs="labels", verify_images=1)
    assert (manifest.output_name, manifest.output_kind, manifest.output_dtype) == ("labels", "labels", "uint8")
    assert manifest.details["output_shape"] == [1, 128, 256]
    ops = op_histogram(out)
    assert ops.get("ArgMax") == 1 and ops.get("Cast") == 1 and "Gather" not in ops
    x = _inputs(128, 256, count=2)[:1]  # the scene
    labels = create_session(out, threads=1).run(None, {"image": x})[0]
    logits = create_session(small_onnx, threads=1).run(None, {"image": x})[0]
    assert labels.dtype == np.uint8 and labels.shape == (1, 128, 256)
    np.testing.assert_array_equal(labels, logits.argmax(1))


def test_dynamic_export_at_two_sizes_and_batches(tmp_path, small_checkpoint):
    out = tmp_path / "dynamic.onnx"
    manifest = export(small_checkpoint, out, height=128, width=256, dynamic=True,
                      verify_sizes=[(128, 256), (160, 224)], verify_images=2)
    assert manifest.input_shape == ["batch", 3, "height", "width"]
    assert manifest.details["output_shape"] == ["batch", 19, "height", "width"]
    assert manifest.size_rule == {"min": 64, "multiple_of": 1, "dynamic": True}
    parity = manifest.details["export_parity"]
    assert parity["sizes"] == [[128, 256], [160, 224]] and parity["batch_sizes"] == [2] and parity["passed"]
    ops = op_histogram(out)
    for op in ("Loop", "If", "BatchNormalization"):
        assert op not in ops
    session = create_session(out, threads=1)
    for batch, h, w in ((2, 160, 224), (1, 97, 193)):  # a batch of 2 and an odd size, neither the tracing shape
        x = _inputs(h, w, count=batch)
        got = session.run(None, {"image": x})[0]
        ref = _eager(small_checkpoint, x)
        assert got.shape == (batch, 19, h, w)
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9999


# -- the one full-size, end-to-end run --------------------------------------------------------
@pytest.mark.slow
def test_full_size_export_via_cli(tmp_path):
    """Default checkpoint (random weights until one ships), 1024×2048, ORT vs eager on a scene and a photo."""
    out = tmp_path / "icnet.onnx"
    result = runner.invoke(app, ["export", "--output", str(out), "--verify-images", "2", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    parity = payload["parity"]
    assert parity["passed"] and parity["sizes"] == [[1024, 2048]]
    assert {row["kind"] for row in parity["images"]} == {"scene", "photo"}
    assert parity["agreement_pct"] >= 99.99 and parity["max_abs_logit_error"] <= parity["logit_error_bound"]
    manifest = read_manifest(out)
    assert manifest.input_shape == [1, 3, 1024, 2048] and manifest.details["export_parity"] == parity
    assert set(op_histogram(out)) <= STATIC_OPS
    assert _leftovers(tmp_path) == ["icnet.onnx", "icnet.onnx.json"]


# -- errors: one line, the right exit code, nothing written -----------------------------------
def _bad_checkpoints(tmp_path: Path, small_checkpoint: Path) -> dict[str, Path]:
    from safetensors.torch import load_file, save_file

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(small_checkpoint.read_bytes()[:1000])
    state = load_file(str(small_checkpoint))
    state.pop("classifier.weight")
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(state, str(mismatched))
    return {"missing": tmp_path / "nope.safetensors", "corrupt": corrupt, "mismatched": mismatched}


@pytest.mark.parametrize("kind", ["missing", "corrupt", "mismatched"])
def test_cli_bad_checkpoint_exits_2(tmp_path, small_checkpoint, kind):
    checkpoint = _bad_checkpoints(tmp_path, small_checkpoint)[kind]
    out = tmp_path / "out" / "m.onnx"
    result = runner.invoke(app, ["export", "--checkpoint", str(checkpoint), "--height", "64", "--width", "128",
                                 "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and str(checkpoint.name) in result.output
    assert not out.exists() and not manifest_path(out).exists()


@pytest.mark.parametrize("opset", ["16", "21"])
def test_cli_unsupported_opset_exits_2(tmp_path, small_checkpoint, opset):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--opset", opset, "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "17..20" in result.output
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("args", [["--outputs", "probs"], ["--height", "32"], ["--batch", "0"]])
def test_cli_bad_options_exit_2(tmp_path, small_checkpoint, args):
    result = runner.invoke(app, ["export", "--checkpoint", str(small_checkpoint), *args, "--output", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2, result.output
    assert _leftovers(tmp_path) == []


def test_cli_unwritable_output_exits_2(tmp_path, small_checkpoint):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for out in (blocker / "m.onnx", tmp_path):  # parent is a file; output is a directory
        result = runner.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "64", "--width", "128",
                                     "--output", str(out)])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
    assert _leftovers(tmp_path) == ["a_file"]


def test_cli_parity_failure_exits_1_and_writes_nothing(tmp_path, small_checkpoint):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "64", "--width", "128",
                                 "--verify-images", "1", "--max-logit-error", "0", "--output", str(out)])
    assert result.exit_code == 1, result.output
    assert "check failed" in result.output and "Δlogit" in result.output
    assert _leftovers(tmp_path) == []  # no ONNX, no sidecar, no temp file
    # The library raises ParityError with the report attached; an existing file stays untouched.
    out.write_bytes(b"previous export")
    with pytest.raises(ParityError) as info:
        export(small_checkpoint, out, height=64, width=128, verify_images=1, min_agreement=100.0, max_logit_error=0.0)
    assert not info.value.report.passed
    assert out.read_bytes() == b"previous export" and _leftovers(tmp_path) == ["m.onnx"]


def test_cli_json_output_and_no_verify(tmp_path, small_checkpoint):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "64", "--width", "128",
                                 "--no-verify", "--opset", "18", "--json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["parity"] is None and payload["manifest"]["details"]["verified"] is False
    assert payload["manifest"]["details"]["opset"] == 18
    assert read_manifest(out).sha256 == payload["manifest"]["sha256"] == sha256_file(out)


def test_library_rejects_bad_arguments_before_work(tmp_path):
    with pytest.raises(IcnetDeployError, match="17..20"):
        export(None, tmp_path / "m.onnx", opset=13)
    with pytest.raises(IcnetDeployError, match="dynamic"):
        export(None, tmp_path / "m.onnx", verify_sizes=[(64, 64)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(IcnetDeployError, match="percentage"):
            export(None, tmp_path / "m.onnx", min_agreement=0.9999 * 1000)
    assert _leftovers(tmp_path) == []
