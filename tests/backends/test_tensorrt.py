"""TensorRT engines from the 128×256 fixture export: build (strongly typed, timing cache), run
(name-based I/O, execute_async_v3), agree with fp32, and refuse engines built elsewhere.

Needs the real ``tensorrt`` package and a CUDA GPU; everything here skips with the reason
otherwise (no fake TensorRT module: a fake would test nothing but itself).
"""

from __future__ import annotations


import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install icnet-deploy[tensorrt] on a GPU machine)")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("TensorRT needs a CUDA GPU; torch sees none", allow_module_level=True)

from icnet_deploy.ort_session import create_session
from icnet_deploy.backends.tensorrt import TensorRTRunner, gpu_info
from icnet_deploy.build import build_engine
from icnet_deploy.compare import LABEL_PATH_MIN_AGREEMENT
from icnet_deploy.errors import ArtifactError
from icnet_deploy.manifest import read_manifest, write_manifest

H, W = 128, 256


@pytest.fixture(scope="module")
def engines(tmp_path_factory, small_onnx, calib_dir):
    folder = tmp_path_factory.mktemp("trt")
    cache = folder / "timing.cache"
    fp16 = build_engine(small_onnx, folder / "fp16.engine", precision="fp16", backend="tensorrt", timing_cache=cache)
    int8 = build_engine(small_onnx, folder / "int8.engine", precision="int8", backend="tensorrt", calib=calib_dir,
                        timing_cache=cache, target_agreement=None)  # fixed rule: the search is tested on CPU
    return {"fp16": (folder / "fp16.engine", fp16), "int8": (folder / "int8.engine", int8), "cache": cache}


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engine_manifest(engines, precision):
    path, manifest = engines[precision]
    assert read_manifest(path).sha256 == manifest.sha256
    assert (manifest.format, manifest.precision, manifest.target) == ("tensorrt", precision, "tensorrt")
    here = gpu_info()
    d = manifest.details
    assert d["tensorrt"] == trt.__version__ and d["gpu"] == here["gpu"]
    assert d["compute_capability"] == here["compute_capability"] and "strongly typed" in d["network"]
    if precision == "int8":
        assert d["activation_dtype"] == "int8" and d["calibration"]["images"] == 4
    assert engines["cache"].is_file() and engines["cache"].stat().st_size > 0


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engine_runs_and_agrees_with_fp32(engines, small_onnx, precision):
    path, _ = engines[precision]
    x = np.random.default_rng(0).standard_normal((1, 3, H, W)).astype(np.float32)
    session = create_session(small_onnx)
    ref = session.run(None, {session.get_inputs()[0].name: x})[0]
    with TensorRTRunner(path) as runner:
        out = runner.infer(x)
        assert runner.describe()["provider"] == "TensorRT"
    assert out.shape == ref.shape == (1, 19, H, W) and out.dtype == np.float32
    agreement = float((out.argmax(1) == ref.argmax(1)).mean()) * 100
    assert agreement > (99.0 if precision == "fp16" else 80.0)  # random weights: loose for int8


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_labels_path_copies_only_the_coarse_logits(engines, precision):
    """The engine marks the final Resize's input as a second output; labels from it equal the full output's argmax."""
    from icnet_deploy.upsample import labels_of

    path, manifest = engines[precision]
    assert manifest.details["coarse_output"]
    x = np.random.default_rng(1).standard_normal((1, 3, H, W)).astype(np.float32)
    with TensorRTRunner(path) as runner:
        full = runner.infer(x)
        coarse = runner.infer_for_labels(x)
        labels = runner.predict_labels(x)
    assert coarse.shape == (1, 19, H // 4, W // 4) and coarse.dtype == np.float32
    # TensorRT's own Resize kernel vs the exact upsample: check's gate on the label path
    assert (labels == labels_of(full)).mean() * 100 >= LABEL_PATH_MIN_AGREEMENT


def _tampered(engines, tmp_path, **details):
    path, _ = engines["fp16"]
    copy = tmp_path / "copy.engine"
    copy.write_bytes(path.read_bytes())
    manifest = read_manifest(path)
    manifest.details.update(details)
    write_manifest(copy, manifest)  # sealed as the toolkit writes it (a hand edit is refused)
    return copy


def test_engine_for_another_tensorrt_version_is_refused(engines, tmp_path):
    copy = _tampered(engines, tmp_path, tensorrt="9.0.0")
    with pytest.raises(ArtifactError, match="TensorRT 9.0.0"):
        TensorRTRunner(copy).activate()


def test_engine_for_another_gpu_is_refused(engines, tmp_path):
    copy = _tampered(engines, tmp_path, compute_capability="1.0", gpu="Imaginary GPU")
    with pytest.raises(ArtifactError, match="Imaginary GPU"):
        TensorRTRunner(copy).activate()
