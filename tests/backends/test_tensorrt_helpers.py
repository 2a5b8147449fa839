"""The TensorRT backend's pure parts, on any machine: the optimisation profile of a dynamic export,
the refusal of an engine built with another TensorRT / GPU / plugin, and the engine-dtype → torch map.

No fake ``tensorrt`` module: these helpers take plain values (versions, the ``gpu_info`` record,
DataType member names). What needs the real package and a GPU is in ``test_tensorrt.py``.
"""

from __future__ import annotations

import enum

import pytest
import torch

from icnet_deploy.backends.tensorrt import TORCH_DTYPE_OF, incompatibility, profile_shapes, torch_dtype
from icnet_deploy.errors import ArtifactError
from icnet_deploy.model.config import MIN_SIZE
from icnet_deploy.manifest import read_manifest
from icnet_deploy.plugins import op_record

HERE = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}  # what gpu_info() gives on such a machine
TRT = "10.13.0.35"


# -- optimisation profile ---------------------------------------------------------------------
@pytest.mark.parametrize("input_shape, hw", [(["batch", 3, "height", "width"], (128, 256)),
                                             ([1, 3, 1024, 2048], (1024, 2048)),
                                             ([4, 3, 512, 1024], (512, 1024)),
                                             (["batch", 3, "height", "width"], (MIN_SIZE, MIN_SIZE))])
def test_profile_covers_the_optimum_from_the_smallest_input_to_twice_the_size(input_shape, hw):
    lo, opt, hi = profile_shapes(input_shape, hw)
    batch = input_shape[0] if isinstance(input_shape[0], int) else 1
    assert opt == (batch, 3, *hw)  # tuned for the size the engine is built for
    assert lo == (1, 3, MIN_SIZE, MIN_SIZE)  # the smallest input the model accepts
    assert hi == (max(2 * batch, 2), 3, 2 * hw[0], 2 * hw[1])
    assert all(a <= b <= c for a, b, c in zip(lo, opt, hi))  # TensorRT refuses a profile otherwise
    assert lo[1] == opt[1] == hi[1] == 3


# -- engines built elsewhere ------------------------------------------------------------------
@pytest.fixture()
def engine_manifest(small_onnx):
    """A real manifest, with what build_serialized_engine records about a TensorRT build."""
    manifest = read_manifest(small_onnx)
    manifest.details = {**manifest.details, **HERE, "tensorrt": TRT}
    manifest.versions = {**manifest.versions, "tensorrt": TRT}
    return manifest


def test_an_engine_built_here_is_compatible(engine_manifest):
    assert incompatibility(engine_manifest, tensorrt_version=TRT, gpu=HERE) is None
    engine_manifest.details["plugin"] = op_record()  # built with this icnet-deploy's plugin
    assert incompatibility(engine_manifest, tensorrt_version=TRT, gpu=HERE) is None


def test_another_tensorrt_version_is_refused(engine_manifest):
    reason = incompatibility(engine_manifest, tensorrt_version="11.0.0.1", gpu=HERE)
    assert reason == (f"engine was built with TensorRT {TRT}, this is TensorRT 11.0.0.1; "
                      "rebuild it here with build-engine --backend tensorrt")
    del engine_manifest.details["tensorrt"]  # older manifests: the version only under versions
    assert "built with TensorRT " + TRT in incompatibility(engine_manifest, tensorrt_version="11.0.0.1", gpu=HERE)


def test_another_gpu_architecture_is_refused_naming_both(engine_manifest):
    other = {"gpu": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    reason = incompatibility(engine_manifest, tensorrt_version=TRT, gpu=other)
    assert reason and "NVIDIA H100 80GB HBM3 (compute capability 9.0)" in reason
    assert "this GPU is a NVIDIA A100-SXM4-80GB (8.0)" in reason
    # the same architecture under another name (another board of one generation) runs the engine
    assert incompatibility(engine_manifest, tensorrt_version=TRT, gpu={**HERE, "gpu": "NVIDIA H100 PCIe"}) is None


def test_the_version_is_checked_before_the_gpu(engine_manifest):
    reason = incompatibility(engine_manifest, tensorrt_version="9.0.0", gpu={"gpu": "X", "compute_capability": "1.0"})
    assert "TensorRT 9.0.0" in reason and "compute capability" not in reason


@pytest.mark.parametrize("field, value", [("source_sha256", "0" * 64), ("version", "0")])
def test_an_engine_with_another_plugin_build_is_refused(engine_manifest, field, value):
    engine_manifest.details["plugin"] = {**op_record(), field: value}
    reason = incompatibility(engine_manifest, tensorrt_version=TRT, gpu=HERE)
    assert reason and reason.startswith(f"engine was built with the {op_record()['name']} plugin")
    assert "rebuild it with build-engine --backend tensorrt" in reason


def test_a_manifest_without_tensorrt_records_is_not_refused(small_onnx):
    """Nothing recorded, nothing to compare (the runner's format check refuses non-TensorRT artifacts)."""
    assert incompatibility(read_manifest(small_onnx), tensorrt_version=TRT, gpu=HERE) is None


# -- engine tensor types --------------------------------------------------------------------------
# TensorRT's DataType members, as its Python bindings name them, and the buffers they need.
DataType = enum.Enum("DataType", ["FLOAT", "HALF", "BF16", "INT8", "INT32", "INT64", "BOOL", "UINT8", "FP8", "INT4"])
ITEMSIZE = {"FLOAT": 4, "HALF": 2, "BF16": 2, "INT8": 1, "INT32": 4, "INT64": 8, "BOOL": 1, "UINT8": 1}


@pytest.mark.parametrize("member", [m for m in DataType if m.name in ITEMSIZE], ids=lambda m: m.name)
def test_engine_tensor_types_map_to_torch_buffers_of_the_same_width(member):
    dtype = torch_dtype(member)  # a DataType member, as engine.get_tensor_dtype returns it
    assert dtype is torch_dtype(member.name)
    assert torch.empty(0, dtype=dtype).element_size() == ITEMSIZE[member.name]
    assert dtype.is_floating_point == (member.name in ("FLOAT", "HALF", "BF16"))
    assert dtype.is_signed == (member.name not in ("BOOL", "UINT8"))


def test_the_dtype_map_covers_exactly_the_types_with_a_torch_buffer():
    assert set(TORCH_DTYPE_OF) == set(ITEMSIZE)


@pytest.mark.parametrize("member", [DataType.FP8, DataType.INT4], ids=lambda m: m.name)
def test_a_type_without_a_torch_buffer_is_refused_in_one_sentence(member):
    with pytest.raises(ArtifactError, match="has no torch equivalent"):
        torch_dtype(member)


@pytest.mark.tensorrt
def test_the_real_bindings_use_these_names():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs a GPU machine)")
    assert set(TORCH_DTYPE_OF) <= set(trt.DataType.__members__)
    assert (torch_dtype(trt.float32), torch_dtype(trt.float16), torch_dtype(trt.int8)) == (
        torch.float32, torch.float16, torch.int8)
