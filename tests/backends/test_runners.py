"""Every backend through the same Runner tests (lifecycle, shapes, validation, describe, parity).

Parametrised over the backends that can run here: eager PyTorch and ONNX Runtime (CPU) on the
shared 128×256 random-weight fixtures; TensorRT needs a GPU and the tensorrt package.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import icnet_deploy
from icnet_deploy.backends import load
from icnet_deploy.backends.base import Runner
from icnet_deploy.backends.loader import eager_reference, reference_checkpoint
from icnet_deploy.compare import LABEL_PATH_MIN_AGREEMENT
from icnet_deploy.labels import NUM_CLASSES
from icnet_deploy.errors import ArtifactError, BackendUnavailable, IcnetDeployError
from icnet_deploy.manifest import read_manifest, write_manifest
from icnet_deploy.model.config import DEFAULT_MEAN, DEFAULT_STD

H, W = 128, 256
BACKENDS = [
    "eager",
    "onnxruntime",
    pytest.param("tensorrt", marks=[pytest.mark.tensorrt, pytest.mark.gpu]),
]


def _tensorrt_engine(tmp_path_factory, small_onnx):
    """An fp16 TensorRT engine of ``small_onnx`` (TensorRT builds fp16/int8 only; the graph carries the precision)."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs a GPU machine)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    from icnet_deploy.build import build_engine

    path = tmp_path_factory.mktemp("trt") / "icnet_fp16.engine"
    build_engine(small_onnx, path, precision="fp16", backend="tensorrt")
    return path


@pytest.fixture(params=BACKENDS)
def runner(request, small_checkpoint, small_onnx, tmp_path_factory) -> Runner:
    kind = request.param
    if kind == "eager":
        return load(small_checkpoint, threads=1)
    if kind == "onnxruntime":
        return load(small_onnx, threads=1)
    return load(_tensorrt_engine(tmp_path_factory, small_onnx))


def _batch(n: int = 1, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)


# -- the shared contract ---------------------------------------------------------------------
def test_lifecycle_guards_and_context_manager(runner):
    assert not runner.is_active
    with pytest.raises(IcnetDeployError, match="not active"):
        runner.infer(_batch())
    with runner as active:
        assert active is runner and runner.is_active
        with pytest.raises(IcnetDeployError, match="already active"):
            runner.activate()
    assert not runner.is_active
    runner.deactivate()  # idempotent


def test_infer_gives_nchw_float32_logits_and_labels(runner):
    with runner:
        out = runner.infer(_batch())
        labels = runner.predict_labels(_batch())
        assert runner.last_inference_ms is not None and runner.last_inference_ms > 0
    assert out.shape == (1, NUM_CLASSES, H, W) and out.dtype == np.float32
    assert labels.shape == (1, H, W) and labels.dtype == np.uint8
    # the label path against the full output: check's gate (TensorRT's own Resize kernel may flip a
    # near tie); on the CPU backends the fused upsample-argmax gives exactly the full output's labels
    assert (labels == out.argmax(1)).mean() * 100 >= LABEL_PATH_MIN_AGREEMENT
    if runner.backend != "tensorrt":
        assert (labels == out.argmax(1)).all()


def test_describe_reports_what_runs(runner):
    with runner:
        desc = runner.describe()
    assert {"name", "backend", "device", "precision", "provider"} <= set(desc)
    if desc["backend"] == "tensorrt":
        assert desc["device"].startswith("cuda") and desc["precision"] == "fp16"
    else:
        assert desc["device"] == "cpu" and desc["precision"] == "fp32"
    if desc["backend"] == "onnxruntime":
        assert desc["provider"] == "CPUExecutionProvider"  # the provider the session really uses
    json.dumps(desc)


def test_mean_std_known_after_activation(runner):
    with runner:
        assert runner.mean == pytest.approx(DEFAULT_MEAN)
        assert runner.std == pytest.approx(DEFAULT_STD)
        assert runner.output_kind == "logits" and runner.num_classes == NUM_CLASSES


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((1, 3, H, W), np.float64), "float32"),
        (np.zeros((1, H, W, 3), np.float32), "N×3×H×W"),
        (np.zeros((3, H, W), np.float32), "N×3×H×W"),
        ([[0.0]], "numpy array"),
    ],
)
def test_inputs_are_validated(runner, bad, message):
    with runner, pytest.raises(IcnetDeployError, match=message):
        runner.infer(bad)


def test_size_rule_is_enforced(runner):
    with runner:
        if runner.input_height is not None:  # static engine: exactly its size and batch
            with pytest.raises(IcnetDeployError, match="128×256"):
                runner.infer(_batch(1, 96, 192))
            with pytest.raises(IcnetDeployError, match="batch 1"):
                runner.infer(_batch(2))
        else:  # dynamic: anything ≥ 64, including odd sizes
            assert runner.infer(_batch(1, 65, 131)).shape == (1, NUM_CLASSES, 65, 131)
            with pytest.raises(IcnetDeployError, match="minimum size 64"):
                runner.infer(_batch(1, 32, 256))


# -- backends agree --------------------------------------------------------------------------
def test_onnxruntime_matches_eager_through_the_runner_api(small_checkpoint, small_onnx):
    x = _batch()
    with load(small_checkpoint, threads=1) as eager, load(small_onnx, threads=1) as onnx_runner:
        ref, got = eager.infer(x), onnx_runner.infer(x)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9999


# -- load(): dispatch on the manifest --------------------------------------------------------
def test_onnxruntime_spinning_can_be_turned_off_and_gives_the_same_logits(small_onnx):
    """bench turns ORT's busy-waiting threads off (several sessions share the cores); results must not change."""
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 256)).astype(np.float32)
    outputs = []
    for spinning in (True, False):
        r = load(small_onnx, threads=1)
        r.spinning = spinning
        with r:
            if not spinning:
                options = r._session.get_session_options()
                assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
            outputs.append(r.infer(x))
    assert np.array_equal(outputs[0], outputs[1])


def test_onnxruntime_cpu_sessions_run_without_the_memory_pattern(small_onnx):
    """The arena reuses freed blocks instead of one planned block per run: a lower peak, same speed
    (measured in create_session's docstring), and the same logits."""
    from icnet_deploy.ort_session import create_session

    x = np.random.default_rng(0).standard_normal((1, 3, 128, 256)).astype(np.float32)
    session = create_session(small_onnx, threads=1)
    assert session.get_session_options().enable_mem_pattern is False
    with load(small_onnx, threads=1) as r:
        assert r._session.get_session_options().enable_mem_pattern is False
        got = r.infer(x)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    planned = ort.InferenceSession(str(small_onnx), options, providers=["CPUExecutionProvider"])
    assert planned.get_session_options().enable_mem_pattern is True  # onnxruntime's default
    assert np.array_equal(got, planned.run(None, {session.get_inputs()[0].name: x})[0])


def test_load_dispatches_on_manifest_and_suffix(small_checkpoint, small_onnx):
    from icnet_deploy.backends.onnxruntime import OnnxRuntimeRunner
    from icnet_deploy.backends.torch_eager import TorchRunner

    assert icnet_deploy.load is load
    assert isinstance(load(small_checkpoint), TorchRunner)
    assert isinstance(load(None), TorchRunner) and isinstance(load("eager"), TorchRunner)
    r = load(small_onnx)
    assert isinstance(r, OnnxRuntimeRunner)
    assert (r.input_height, r.input_width, r.batch_size) == (H, W, 1)
    assert r.manifest.sha256 == read_manifest(small_onnx).sha256


def test_load_refuses_missing_and_foreign_files(tmp_path, small_onnx):
    with pytest.raises(ArtifactError, match="no such engine"):
        load(tmp_path / "missing.onnx")
    with pytest.raises(ArtifactError, match="folder"):
        load(tmp_path)
    stray = tmp_path / "stray.onnx"
    stray.write_bytes(b"not onnx")
    with pytest.raises(ArtifactError):
        load(stray)
    with pytest.raises(IcnetDeployError, match="precision is fixed"):
        load(small_onnx, precision="fp16")


def test_tensorrt_artifact_without_tensorrt_is_unavailable(tmp_path, small_onnx):
    """A TensorRT engine on a machine without TensorRT or a GPU: a clear BackendUnavailable, not a crash."""
    import importlib.util

    torch = pytest.importorskip("torch")
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("this machine has TensorRT and a GPU")
    engine = tmp_path / "icnet.engine"
    engine.write_bytes(b"\0" * 64)
    manifest = read_manifest(small_onnx)
    manifest.format = "tensorrt"
    write_manifest(engine, manifest)
    with pytest.raises(BackendUnavailable):
        runner = load(engine)  # the backend module may itself be missing: then load() refuses
        runner.activate()  # else activation does (no tensorrt package, no GPU)


def test_unavailable_provider_is_refused_not_silently_replaced(small_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    runner = load(small_onnx, provider="cuda")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        runner.activate()
    assert not runner.is_active


def test_reference_checkpoint_is_checked_by_sha256(tmp_path, small_onnx, small_checkpoint):
    manifest = read_manifest(small_onnx)
    assert reference_checkpoint(manifest, artifact=small_onnx) == small_checkpoint
    other = tmp_path / "other.safetensors"
    shutil.copy(small_checkpoint, other)
    with other.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        reference_checkpoint(manifest, other)
    manifest.checkpoint_sha256 = None
    with pytest.raises(ArtifactError, match="random weights"):
        eager_reference(manifest, artifact=small_onnx)
