"""build-engine: FP16 / INT8 ONNX Runtime engines from the 128×256 fixture export, their manifests,
the calibration cache, and the error paths (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from icnet_deploy import build_engine
from icnet_deploy.quantization.bias import BIAS_CORRECTION_IMAGES
from icnet_deploy.cli import app
from icnet_deploy.errors import ArtifactError, BackendUnavailable, IcnetDeployError
from icnet_deploy.compare import DEFAULT_THRESHOLDS
from icnet_deploy.manifest import read_manifest
from icnet_deploy.quantization import CalibrationCache

runner = CliRunner()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def int8_build(tmp_path_factory, small_onnx, calib_dir):
    """One INT8 build through the CLI (JSON on stdout), with an explicit calibration cache."""
    out_dir = tmp_path_factory.mktemp("int8")
    out, cache = out_dir / "icnet_int8.onnx", out_dir / "calib_cache.json"
    result = runner.invoke(app, ["build-engine", str(small_onnx), "--int8", "--calib", str(calib_dir),
                                 "--calib-cache", str(cache), "--threads", "1",
                                 "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, cache, json.loads(result.stdout)


def test_int8_cli_writes_engine_manifest_and_cache(int8_build, small_onnx):
    out, cache, payload = int8_build
    assert _files(out.parent) == ["calib_cache.json", "icnet_int8.onnx", "icnet_int8.onnx.json"]
    manifest = read_manifest(out)  # sha256 verified
    assert payload["manifest"]["sha256"] == manifest.sha256
    assert (manifest.format, manifest.precision, manifest.target) == ("onnx", "int8", "cpu")
    assert manifest.parent_sha256 == read_manifest(small_onnx).sha256
    assert manifest.input_shape == [1, 3, 128, 256] and manifest.input_dtype == "float32"
    d = manifest.details
    assert d["activation_dtype"] == "uint8" and "QDQQuantizer" in d["quantizer"]
    calib = d["calibration"]
    assert calib["method"] == "percentile" and calib["images"] == 4 and calib["cache"] == cache.name
    assert calib["cache_sha256"] == CalibrationCache.load(cache).sha256()  # names the cache it wrote, not another
    assert "/classifier/Conv" in d["fp32_layers"] and d["fp32_rule"] == "fixed rule"
    wr = d["weight_rounding"]  # GPTQ by default, on the (4) calibration images
    assert wr["images"] == 4 and wr["convs"] > 0 and "GPTQ" in wr["method"]
    assert wr["mean_relative_output_error"]["gptq"] < wr["mean_relative_output_error"]["nearest"]
    assert d["bias_correction"] is None  # GPTQ fits the biases itself: no bias correction by default
    parity = d["parity"]  # check's gate, on held-out images against the fp32 export
    sets = {s["set"]: s for s in parity["sets"]}
    assert set(sets) == {"generated", "photos"}
    assert sets["generated"]["images"] and "ground_truth" in sets["generated"] and "ground_truth" not in sets["photos"]
    assert all(50.0 < s["agreement_pct"] <= s["agreement_within_delta_pct"] <= 100.0 for s in sets.values())
    int8_gate = DEFAULT_THRESHOLDS["int8"]
    assert parity["thresholds"]["min_within_delta"] == int8_gate.min_within_delta
    assert parity["thresholds"]["delta"] == int8_gate.delta
    assert {c["metric"] for c in parity["checks"]} >= {"agreement_within_delta", "worst_image_within_delta", "miou_drop"}
    assert parity["passed"] == all(c["passed"] for c in parity["checks"])
    # the machine it was built on, and the weight range chosen for its INT8 kernels
    assert d["cpu"]["int8_kernel"] and d["cpu"]["arch"]
    assert d["reduce_range"]["enabled"] == (d["cpu"]["int8_kernel"] in ("avx2", "avx512", "baseline"))
    # the manifest travels inside the ONNX file too
    embedded = {p.key for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert "icnet_deploy.manifest" in embedded


def test_int8_engine_runs_through_load(int8_build):
    from icnet_deploy.backends import load

    out, _, _ = int8_build
    with load(out) as r:
        y = r.infer(np.zeros((1, 3, 128, 256), np.float32))
        assert y.shape == (1, 19, 128, 256) and r.describe()["precision"] == "int8"
        # the QDQ graph also runs up to its final Resize, and gives the full graph's labels from there
        x = np.random.default_rng(3).standard_normal((1, 3, 128, 256)).astype(np.float32)
        coarse = r.infer_for_labels(x)
        assert coarse.shape == (1, 19, 32, 64)
        assert (r.predict_labels(x) == r.infer(x).argmax(1)).all()


def test_calibration_cache_is_reused(int8_build, small_onnx, tmp_path):
    _, cache, payload = int8_build
    again = build_engine(small_onnx, tmp_path / "again.onnx", precision="int8", calib_cache=cache, threads=1,
                         target_agreement=None, weight_rounding="nearest")
    assert again.details["weight_rounding"] == {"method": "nearest"}
    bc = again.details["bias_correction"]  # on by default with nearest rounding; no --calib: the shipped calib/
    assert bc["images"] == BIAS_CORRECTION_IMAGES and bc["convs"] > 0 and bc["max_abs_shift"] > 0
    c0, c1 = payload["manifest"]["details"]["calibration"], again.details["calibration"]
    assert c1["cache_sha256"] == c0["cache_sha256"] and c1["image_set_sha256"] == c0["image_set_sha256"]
    assert _files(tmp_path) == ["again.onnx", "again.onnx.json"]  # no new cache written


def test_cache_for_another_model_is_refused(int8_build, small_checkpoint, tmp_path):
    from icnet_deploy.export import export

    other = tmp_path / "other.onnx"
    export(small_checkpoint, other, height=128, width=192, verify=False)  # same weights, another graph
    _, cache, _ = int8_build
    out = tmp_path / "x.onnx"
    result = runner.invoke(app, ["build-engine", str(other), "--int8", "--calib-cache", str(cache), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "another model" in result.output and not out.exists()


def test_cache_made_with_another_method_is_refused(int8_build, small_onnx, tmp_path):
    _, cache, _ = int8_build
    with pytest.raises(ArtifactError, match="'percentile', not 'minmax'"):
        build_engine(small_onnx, tmp_path / "x.onnx", precision="int8", calib_cache=cache, calib_method="minmax")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("asked, message", [({"tail_cap": 0}, "--tail-cap 3, this build asks for 0"),
                                             ({"percentile": 99.9}, "--percentile 99.99, this build asks for 99.9")])
def test_cache_made_with_other_settings_is_refused(int8_build, small_onnx, tmp_path, asked, message):
    """A reused cache must not silently override an explicit --tail-cap / --percentile."""
    _, cache, _ = int8_build
    with pytest.raises(ArtifactError, match=message.replace(".", r"\.")):
        build_engine(small_onnx, tmp_path / "x.onnx", precision="int8", calib_cache=cache, **asked)
    assert _files(tmp_path) == []


def test_cache_reuse_accepts_matching_settings(int8_build, small_onnx, tmp_path):
    _, cache, _ = int8_build
    m = build_engine(small_onnx, tmp_path / "m.onnx", precision="int8", calib_cache=cache, percentile=99.99,
                     tail_cap=3.0, threads=1, target_agreement=None)
    assert m.details["calibration"]["tail_cap"] == 3.0


def test_fixed_rule_by_default(int8_engine_small):
    d = read_manifest(int8_engine_small).details  # built with no layer rule argument
    assert d["fp32_rule"] == "fixed rule" and d["sensitivity_search"] is None


def test_search_is_opt_in(small_onnx, calib_dir, tmp_path):
    """A target agreement turns the sensitivity search on (the fixed rule without one:
    ``test_fixed_rule_by_default`` and the CLI build above)."""
    # random weights agree ~96% fully quantized: a 0.5 (= 50%) target is met with no fp32 layer
    m = build_engine(small_onnx, tmp_path / "s.onnx", precision="int8", calib=calib_dir, target_agreement=0.5,
                     search_images=2, threads=1)
    d = m.details
    assert d["fp32_rule"] == "sensitivity search" and d["target_agreement"] == 50.0
    assert d["fp32_layers"] == {} and len(d["sensitivity_search"]["trials"]) == 1
    assert d["sensitivity_search"]["met"] and d["sensitivity_search"]["images"] == 2
    assert "within δ=0.25" in d["sensitivity_search"]["metric"]


def test_fp16_engine(small_onnx, tmp_path):
    manifest = build_engine(small_onnx, tmp_path / "fp16.onnx", precision="fp16", threads=1)
    assert (manifest.precision, manifest.input_dtype, manifest.output_dtype) == ("fp16", "float32", "float32")
    d = manifest.details
    assert set(d["fp32_ops"]) == {"Resize", "MatMul"} and d["fp32_layers"]
    early = [n for n in d["fp32_layers"] if n.startswith("/stem/")]
    assert any("/Conv" in n for n in early) and all("first layers" in d["fp32_layers"][n] for n in early)
    assert not [n for n in d["fp32_layers"] if n.startswith("/layer1/")]
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    kept_types = {n.op_type for n in graph.node if n.name in early}
    assert "Conv" in kept_types  # the stem's convolutions are still there, in fp32
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:  # inside the fp32 stem, each node reads its fp32 neighbour directly
        if node.name in early:
            src = producer.get(node.input[0])
            assert src is None or src.op_type != "Cast" or producer.get(src.input[0]) is None or \
                producer[src.input[0]].op_type != "Cast", node.name
    final = next(n for n in graph.node if "logits" in n.output)
    assert final.op_type == "Resize"  # no fp32 → fp16 → fp32 rounding of the output after the fp32 Resize
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert "not faster on CPU" in d["note"]
    for s in d["parity"]["sets"]:
        assert s["agreement_pct"] >= 99.0  # random weights; the trained checkpoint gives ≥ 99.9
    assert _files(tmp_path) == ["fp16.onnx", "fp16.onnx.json"]


def test_fp16_fp32_layers_replace_the_default_blocks(small_onnx, tmp_path):
    """``fp32_layers`` replaces the stem list: [] gives an all-fp16 graph but Resize/MatMul."""
    manifest = build_engine(small_onnx, tmp_path / "all16.onnx", precision="fp16", fp32_layers=[], threads=1)
    kept = manifest.details["fp32_layers"]
    assert kept and not [n for n in kept if n.startswith(("/stem/", "/layer1/"))]
    assert {n.op_type for n in onnx.load(str(tmp_path / "all16.onnx")).graph.node if n.name in kept} <= {"Resize", "MatMul"}
    with pytest.raises(IcnetDeployError, match="'/nope' is not a node of"):
        build_engine(small_onnx, tmp_path / "bad.onnx", precision="fp16", fp32_layers=["/nope"], threads=1)
    assert not (tmp_path / "bad.onnx").exists()


def test_fp16_cli_says_it_is_not_faster_on_cpu(small_onnx, tmp_path):
    result = runner.invoke(app, ["build-engine", str(small_onnx), "--fp16", "-o", str(tmp_path / "f.onnx")])
    assert result.exit_code == 0, result.output
    assert "not faster" in result.output and "kept in fp32" in result.output


def test_explicit_fp32_layers_and_tensorrt_target(small_onnx, calib_dir, tmp_path):
    m = build_engine(small_onnx, tmp_path / "t.onnx", precision="int8", calib=calib_dir, target="tensorrt",
                     fp32_layers=["/classifier/Conv"], calib_method="minmax", threads=1)
    assert m.target == "tensorrt" and m.details["activation_dtype"] == "int8"
    assert m.details["fp32_layers"] == {"/classifier/Conv": "kept fp32 on request"}
    assert m.details["calibration"]["method"] == "minmax"
    with pytest.raises(IcnetDeployError, match="not a node"):
        build_engine(small_onnx, tmp_path / "u.onnx", precision="int8", calib=calib_dir, fp32_layers=["/nope"])


# -- errors: one line, exit 2, no output file ----------------------------------------------------------
def _bad_calib(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "not-images":
        (folder / "readme.txt").write_text("calibration images go here")
    elif kind == "broken-image":
        (folder / "scene.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.mark.parametrize("kind, message", [
    ("missing", "calibration folder not found"),
    ("empty", "no images found"),
    ("not-images", "no images found"),
    ("broken-image", "scene.jpg: cannot read image"),
])
def test_bad_calibration_folders(small_onnx, tmp_path, kind, message):
    calib = _bad_calib(tmp_path, kind)
    out = tmp_path / "out" / "e.onnx"
    result = runner.invoke(app, ["build-engine", str(small_onnx), "--int8", "--calib", str(calib), "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not out.exists() and not (out.parent.exists() and _files(out.parent))


@pytest.mark.parametrize("args, message", [
    (["--int8", "--calib-method", "kl"], "unknown calibration method 'kl'"),
    (["--int8", "--fp16"], "exactly one of --fp16 or --int8"),
    ([], "exactly one of --fp16 or --int8"),
    (["--int8", "--target", "gpu"], "unknown target 'gpu'"),
    (["--int8", "--weight-rounding", "stochastic"], "unknown weight rounding 'stochastic'"),
    (["--int8", "--search", "--target-agreement", "150"], "percentage"),
    (["--fp16", "--backend", "tvm"], "unknown backend 'tvm'"),
])
def test_bad_arguments(small_onnx, calib_dir, tmp_path, args, message):
    out = tmp_path / "e.onnx"
    result = runner.invoke(app, ["build-engine", str(small_onnx), *args, "--calib", str(calib_dir), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and not out.exists()


def test_bad_models(int8_build, tmp_path):
    out = tmp_path / "e.onnx"
    engine, _, _ = int8_build
    result = runner.invoke(app, ["build-engine", str(engine), "--fp16", "-o", str(out)])
    assert result.exit_code == 2 and "already int8" in result.output
    foreign = tmp_path / "foreign.onnx"
    shutil.copy(engine, foreign)
    foreign.write_bytes(foreign.read_bytes()[:1000])
    result = runner.invoke(app, ["build-engine", str(foreign), "--fp16", "-o", str(out)])
    assert result.exit_code == 2 and "foreign.onnx" in result.output
    result = runner.invoke(app, ["build-engine", str(tmp_path / "nope.onnx"), "--fp16", "-o", str(out)])
    assert result.exit_code == 2 and "not found" in result.output
    assert not out.exists()


def test_a_static_batch_export_is_refused_in_one_line(small_checkpoint, tmp_path):
    from icnet_deploy.export import export

    batched = tmp_path / "b2.onnx"
    export(small_checkpoint, batched, height=64, width=128, batch=2, verify=False)
    out = tmp_path / "e.onnx"
    for flag in ("--fp16", "--int8"):
        result = runner.invoke(app, ["build-engine", str(batched), flag, "-o", str(out)])
        assert result.exit_code == 2 and "static batch-2 export" in result.output and "--dynamic" in result.output
    assert not out.exists()


def test_tensorrt_backend_without_tensorrt_is_one_clear_error(small_onnx, tmp_path):
    try:
        import tensorrt  # noqa: F401
        import torch

        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are here: tests/backends/test_tensorrt.py builds real engines")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable, match="TensorRT|GPU"):
        build_engine(small_onnx, tmp_path / "x.engine", precision="fp16", backend="tensorrt")
    assert _files(tmp_path) == []


# -- ONNX Runtime providers ----------------------------------------------------------------------------
def test_provider_helpers_report_what_really_runs(small_onnx):
    import onnxruntime as ort

    from icnet_deploy.backends.onnxruntime import active_provider, resolve_providers
    from icnet_deploy.ort_session import create_session

    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    session = create_session(small_onnx, providers=resolve_providers("cpu"), threads=1)
    assert active_provider(session) == "CPUExecutionProvider"
    available = ort.get_available_providers()
    for wanted, name in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if name in available:
            chain = resolve_providers(wanted, precision="int8")
            assert chain[0][0] == name and chain[-1] == "CPUExecutionProvider"
            if name == "TensorrtExecutionProvider":
                assert chain[0][1]["trt_engine_cache_enable"] and chain[0][1]["trt_int8_enable"]
        else:  # onnxruntime (CPU build) here: refused instead of a silent CPU fallback
            with pytest.raises(BackendUnavailable, match=name):
                resolve_providers(wanted)
