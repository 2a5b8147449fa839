"""TensorRT backend: engine builder and runner on the TensorRT 10/11 API (imported lazily).

One builder path for 10.x and 11.x: the ONNX graph already carries its precision (fp16 tensors,
or QuantizeLinear/DequantizeLinear for int8 — see ``quantization``), so the network is created
**strongly typed** (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) and no FP16/INT8 builder
flag or calibrator is used (TensorRT 10 deprecated both, 11 removed them). The builder gets a
workspace limit (``set_memory_pool_limit``), an on-disk timing cache (loaded if present, saved
after the build) and, for dynamic exports, one optimisation profile.

Engines are tied to the TensorRT version and the GPU's compute capability: both are recorded in
the manifest, and ``TensorRTRunner`` refuses an engine built for another GPU or TensorRT version
with one clear sentence instead of TensorRT's deserialisation error (or worse, a silent
fallback).

The runner uses the name-based I/O API (``num_io_tensors``, ``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) with torch CUDA tensors as
device buffers, so neither pycuda nor cuda-python is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, BackendUnavailable, IcnetDeployError
from ..fileio import atomic_write_bytes
from .base import Runner

__all__ = [
    "INSTALL_HINT",
    "TORCH_DTYPE_OF",
    "EngineBuild",
    "TensorRTRunner",
    "build_serialized_engine",
    "check_compatible",
    "gpu_info",
    "incompatibility",
    "profile_shapes",
    "require",
    "torch_dtype",
]

INSTALL_HINT = "pip install icnet-deploy[tensorrt] (TensorRT ≥ 10 from NVIDIA's index) on a machine with an NVIDIA GPU"


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable(f"TensorRT is not installed: {INSTALL_HINT}") from None
    return tensorrt


def require() -> Any:
    """The ``tensorrt`` module, if it imports and a CUDA GPU is visible; else ``BackendUnavailable``."""
    trt = _import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU, and torch sees no CUDA device here")
    return trt


def gpu_info(device: int = 0) -> dict[str, Any]:
    """GPU name and compute capability (what an engine is tied to)."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.WARNING)


@dataclass
class EngineBuild:
    engine: bytes  # the serialised engine (plan)
    details: dict = field(default_factory=dict)  # for the manifest: GPU, TensorRT, profile, timing cache
    versions: dict = field(default_factory=dict)


def profile_shapes(input_shape: list, hw: tuple[int, int]) -> tuple[tuple, tuple, tuple]:
    """min/opt/max for a dynamic N×3×H×W input: batch 1..2×N, sizes from the model's minimum to 2× the optimum."""
    from ..model.config import MIN_SIZE

    h, w = hw
    n = input_shape[0] if isinstance(input_shape[0], int) else 1
    return (1, 3, MIN_SIZE, MIN_SIZE), (n, 3, h, w), (max(2 * n, 2), 3, 2 * h, 2 * w)


def _mark_coarse_output(network: Any, name: str | None) -> str | None:
    """Mark the tensor ``name`` (the logits before the final upsample) as a second network output.

    The engine still computes its full-resolution logits, but a caller that only wants labels
    copies 19×H/4×W/4 values to the host instead of 19×H×W (``TensorRTRunner.infer_for_labels``).
    Returns the name if it was marked, None if the network has no such tensor.
    """
    if not name:
        return None
    for layer in network:  # what Polygraphy's mark_outputs does: the parser keeps ONNX tensor names
        for i in range(layer.num_outputs):
            tensor = layer.get_output(i)
            if tensor is not None and tensor.name == name:
                if not tensor.is_network_output:
                    network.mark_output(tensor)
                return name
    return None


def build_serialized_engine(onnx_path: str | Path, *, dynamic: bool = False, shape: tuple[list, tuple[int, int]] | None = None,
                            workspace_mib: int = 4096, timing_cache: str | Path | None = None,
                            device: int = 0, coarse_output: str | None = None, plugin: bool = False) -> EngineBuild:
    """Parse ``onnx_path`` into a strongly typed network and build a serialised engine.

    ``shape`` = (the manifest's input_shape, (height, width) to optimise for) sets the
    optimisation profile of a ``dynamic`` model. ``timing_cache``: read if it exists, written
    (atomically) after the build, so rebuilds on the same GPU skip kernel timing.
    ``coarse_output``: the ONNX tensor the final Resize reads, marked as an extra output
    (``_mark_coarse_output``) and recorded as ``details["coarse_output"]``. ``plugin``: the graph
    ends in the UpsampleArgmax op, so its TensorRT plugin is registered before the parser looks
    for it (``plugins.register_tensorrt_plugin``), and recorded as ``details["plugin"]``.
    """
    trt = require()
    import torch

    record = None
    if plugin:
        from ..plugins import register_tensorrt_plugin

        record = register_tensorrt_plugin()

    torch.cuda.set_device(device)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "unknown parser error"
        raise ArtifactError(f"{onnx_path}: TensorRT's ONNX parser rejects it: {errors.splitlines()[0]}")
    coarse = _mark_coarse_output(network, coarse_output)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    profile_info = None
    if dynamic:
        if shape is None:
            raise IcnetDeployError("a dynamic model needs the shape to optimise for")
        input_shape, hw = shape
        lo, opt, hi = profile_shapes(input_shape, hw)
        profile = builder.create_optimization_profile()
        profile.set_shape(network.get_input(0).name, lo, opt, hi)
        config.add_optimization_profile(profile)
        profile_info = {"min": list(lo), "opt": list(opt), "max": list(hi)}

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ArtifactError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT log above)")
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    details = {
        **gpu_info(device),
        "tensorrt": trt.__version__,
        "network": "strongly typed (precision from the ONNX graph)",
        "workspace_mib": int(workspace_mib),
        "timing_cache": str(cache_path) if cache_path else None,
        "optimization_profile": profile_info,
        "coarse_output": coarse,
        **({"plugin": record} if record else {}),
    }
    return EngineBuild(engine=bytes(memoryview(plan)), details=details, versions={"tensorrt": trt.__version__})


def check_compatible(path: str | Path, manifest: Any, trt: Any, device: int = 0) -> None:
    """Refuse (``ArtifactError``) an engine that cannot run with this TensorRT on this GPU (``incompatibility``)."""
    reason = incompatibility(manifest, tensorrt_version=trt.__version__, gpu=gpu_info(device))
    if reason:
        raise ArtifactError(f"{path}: {reason}")


def incompatibility(manifest: Any, *, tensorrt_version: str, gpu: dict[str, Any]) -> str | None:
    """Why an engine with this manifest cannot run here, or None: built with another TensorRT version,
    for another GPU architecture (``gpu`` as ``gpu_info`` gives it), or with other sources of its
    UpsampleArgmax plugin than this icnet-deploy's (the plugin runs from them)."""
    built_plugin = manifest.details.get("plugin")
    if built_plugin:
        from ..plugins import op_record

        here = op_record()
        if (built_plugin.get("version"), built_plugin.get("source_sha256")) != (here["version"], here["source_sha256"]):
            return (f"engine was built with the {here['name']} plugin v{built_plugin.get('version')} "
                    f"from sources sha256 {str(built_plugin.get('source_sha256'))[:12]}…, this icnet-deploy "
                    f"has v{here['version']} ({here['source_sha256'][:12]}…); rebuild it with build-engine "
                    "--backend tensorrt")
    built_trt = manifest.details.get("tensorrt") or manifest.versions.get("tensorrt")
    if built_trt and built_trt != tensorrt_version:
        return (f"engine was built with TensorRT {built_trt}, this is TensorRT {tensorrt_version}; "
                "rebuild it here with build-engine --backend tensorrt")
    built_cc = manifest.details.get("compute_capability")
    if built_cc and built_cc != gpu["compute_capability"]:
        return (f"engine was built for a {manifest.details.get('gpu')} (compute capability {built_cc}), "
                f"this GPU is a {gpu['gpu']} ({gpu['compute_capability']}); rebuild it on this GPU")
    return None


# TensorRT's DataType member names (tensorrt.DataType.FLOAT, ...) → torch dtype names: the buffers
# the runner allocates for an engine's tensors.
TORCH_DTYPE_OF = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                  "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


def torch_dtype(dtype: Any) -> Any:
    """The torch dtype of a TensorRT ``DataType`` (or of its member name, e.g. ``"HALF"``)."""
    import torch

    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", str(dtype))
    try:
        return getattr(torch, TORCH_DTYPE_OF[name])
    except KeyError:
        raise ArtifactError(f"engine tensor type {dtype} has no torch equivalent") from None


class TensorRTRunner(Runner):
    """Runs a serialised TensorRT engine built by ``build-engine --backend tensorrt``.

    ``infer`` takes float32 N×3×H×W numpy (cast to the engine's input type), copies it to the
    GPU, runs ``execute_async_v3`` on a private CUDA stream and returns numpy (logits float32).
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, *, manifest: Any = None, device: str = "cuda", name: str = "") -> None:
        from ..manifest import read_manifest

        self.path = Path(path)
        manifest = manifest if manifest is not None else read_manifest(self.path)
        if manifest.format != "tensorrt":
            raise ArtifactError(f"{self.path}: is a {manifest.format} artifact, not a TensorRT engine")
        super().__init__(name or f"tensorrt-{manifest.precision}")
        if not str(device).startswith("cuda"):
            raise IcnetDeployError(f"TensorRT runs on a CUDA device, not {device!r}")
        self._adopt_manifest(manifest)
        self.device = str(device)
        self.device_index = int(self.device.split(":", 1)[1]) if ":" in self.device else 0

    def _activate_impl(self) -> None:
        trt = require()
        import torch

        check_compatible(self.path, self.manifest, trt, self.device_index)
        torch.cuda.set_device(self.device_index)
        if self.manifest.details.get("plugin"):  # before deserialising: the engine calls the plugin by name
            from ..plugins import register_tensorrt_plugin

            register_tensorrt_plugin()
        self._trt = trt
        self._runtime = trt.Runtime(_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ArtifactError(f"{self.path}: TensorRT {trt.__version__} cannot deserialise this engine")
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream(device=self.device_index)
        self._inputs, self._outputs = [], []
        for i in range(self._engine.num_io_tensors):
            tname = self._engine.get_tensor_name(i)
            is_input = self._engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(tname)
        if len(self._inputs) != 1 or not self._outputs:
            raise ArtifactError(f"{self.path}: expected one input and at least one output, got {self._inputs} / {self._outputs}")

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._execute(batch, self.manifest.output_name)

    def _infer_for_labels_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._execute(batch, self._coarse_name())

    def _coarse_name(self) -> str:
        coarse = self.manifest.details.get("coarse_output")
        return coarse if coarse in self._outputs else self.manifest.output_name

    @property
    def labels_on_device(self) -> bool:
        """A logits engine, with the Triton kernel: labels from its coarse logits without leaving the GPU
        (an engine built with the UpsampleArgmax plugin outputs labels itself)."""
        from ..plugins import cuda_available

        return self.output_kind == "logits" and cuda_available()[0]

    def _predict_labels_impl(self, batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if not self.labels_on_device:
            return super()._predict_labels_impl(batch, size)
        from ..plugins import upsample_argmax_cuda

        logits = self._execute(batch, self._coarse_name(), to_host=False)
        return upsample_argmax_cuda(logits, size).cpu().numpy()

    def _execute(self, batch: np.ndarray, wanted: str, to_host: bool = True) -> Any:
        """Run the engine; copy only the output ``wanted`` to the host (the first output if it has no such
        name), or with ``to_host=False`` return it as a CUDA tensor (the engine's stream has finished)."""
        import torch

        engine, context = self._engine, self._context
        name_in = self._inputs[0]
        x = torch.from_numpy(batch).to(f"cuda:{self.device_index}", non_blocking=False)
        x = x.to(torch_dtype(engine.get_tensor_dtype(name_in))).contiguous()
        if not context.set_input_shape(name_in, tuple(x.shape)):
            raise IcnetDeployError(f"{self.name}: input shape {tuple(x.shape)} is outside the engine's profile")
        context.set_tensor_address(name_in, x.data_ptr())
        outputs = {}
        for tname in self._outputs:
            shape = tuple(context.get_tensor_shape(tname))
            out = torch.empty(shape, dtype=torch_dtype(engine.get_tensor_dtype(tname)), device=x.device)
            context.set_tensor_address(tname, out.data_ptr())
            outputs[tname] = out
        self._stream.wait_stream(torch.cuda.current_stream())  # x was written on the default stream
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise IcnetDeployError(f"{self.name}: TensorRT execution failed (see the TensorRT log)")
        self._stream.synchronize()
        out = outputs.get(wanted, next(iter(outputs.values())))
        if not to_host:
            return out
        result = out.cpu().numpy()
        return result.astype(np.float32) if self.output_kind == "logits" and result.dtype != np.float32 else result

    def _deactivate_impl(self) -> None:
        for attr in ("_context", "_engine", "_runtime", "_stream"):
            if hasattr(self, attr):
                delattr(self, attr)

    def _describe_impl(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision, "provider": "TensorRT",
                "tensorrt": self.manifest.details.get("tensorrt"), "gpu": self.manifest.details.get("gpu"),
                "artifact": str(self.path)}
