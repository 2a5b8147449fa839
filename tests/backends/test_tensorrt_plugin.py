"""A TensorRT engine that outputs labels through the UpsampleArgmax plugin (``export --outputs labels
--plugin`` → ``build-engine --backend tensorrt``): built, run, recorded in the manifest, refused when
the plugin's sources changed.

Needs the real ``tensorrt`` package (10+, with ``tensorrt.plugin``), triton and a CUDA GPU; skips
with the reason otherwise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install icnet-deploy[tensorrt] on a GPU machine)")
pytest.importorskip("tensorrt.plugin", reason="this TensorRT has no tensorrt.plugin (quickly deployable plugins: 10.6+)")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("TensorRT needs a CUDA GPU; torch sees none", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed (it ships with CUDA builds of torch)")

from icnet_deploy.backends import load
from icnet_deploy.backends.tensorrt import TensorRTRunner
from icnet_deploy.build import build_engine
from icnet_deploy.errors import ArtifactError
from icnet_deploy.export import export
from icnet_deploy.manifest import manifest_path
from icnet_deploy.plugins import op_record

H, W = 128, 256


@pytest.fixture(scope="module")
def plugin_engine(tmp_path_factory, small_checkpoint):
    folder = tmp_path_factory.mktemp("trt_plugin")
    source = folder / "plugin.onnx"
    export(small_checkpoint, source, height=H, width=W, outputs="labels", plugin=True, verify_images=1)
    path = folder / "plugin_fp16.engine"
    manifest = build_engine(source, path, precision="fp16", backend="tensorrt", timing_cache=folder / "timing.cache")
    return path, manifest


def test_engine_records_the_plugin(plugin_engine):
    _, manifest = plugin_engine
    assert (manifest.output_kind, manifest.output_name) == ("labels", "labels")
    assert manifest.details["plugin"]["source_sha256"] == op_record()["source_sha256"]
    assert manifest.details["coarse_output"] is None


def test_engine_outputs_the_labels_of_the_eager_model(plugin_engine, small_checkpoint):
    path, _ = plugin_engine
    x = np.random.default_rng(0).standard_normal((1, 3, H, W)).astype(np.float32)
    with load(small_checkpoint, device="cuda") as eager:
        ref = eager.infer(x).argmax(1)
    with TensorRTRunner(path) as runner:
        labels = runner.infer(x)
        at_image = runner.predict_labels(x, (100, 300))
    assert labels.shape == (1, H, W) and labels.dtype == np.uint8 and at_image.shape == (1, 100, 300)
    assert (labels == ref).mean() >= 0.99  # fp16 engine of random weights vs eager fp32


def test_engine_with_other_plugin_sources_is_refused(plugin_engine, tmp_path):
    path, _ = plugin_engine
    copy = tmp_path / "copy.engine"
    copy.write_bytes(path.read_bytes())
    data = json.loads(manifest_path(path).read_text())
    data["details"]["plugin"]["source_sha256"] = "0" * 64
    data["sha256"] = None
    manifest_path(copy).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="UpsampleArgmax plugin"):
        TensorRTRunner(copy).activate()
