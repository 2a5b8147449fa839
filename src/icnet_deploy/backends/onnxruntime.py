"""ONNX Runtime backend (CPU / CUDA / TensorRT execution providers): the runner for ONNX engines.

Sessions come from ``ort_session.create_session``; onnxruntime is imported lazily, so the rest of
the package works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ArtifactError, BackendUnavailable
from ..onnx_graph import coarse_logits_graph
from ..ort_session import create_session, import_onnxruntime
from .base import Runner

__all__ = ["OnnxRuntimeRunner", "resolve_providers", "active_provider", "refuse_plugin_graph"]


def refuse_plugin_graph(path: str | Path, manifest: Any) -> None:
    """``BackendUnavailable`` for a graph that ends in the UpsampleArgmax TensorRT plugin (``export --plugin``):
    ONNX Runtime has no kernel for it, and its own error would not say what to do instead."""
    plugin = (manifest.details or {}).get("plugin")
    if plugin:
        raise BackendUnavailable(
            f"{path}: ends in the {plugin.get('domain', 'icnet_deploy')}:{plugin.get('name', 'UpsampleArgmax')} TensorRT "
            "plugin, which ONNX Runtime cannot run; build a TensorRT engine from it (build-engine --backend tensorrt) "
            "or export without --plugin for ONNX Runtime")


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------
_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def _runner_providers(device: str, provider: str | None) -> list[Any]:
    """The provider list for a session: the one asked for, then its fallbacks (TensorRT → CUDA → CPU).

    A provider onnxruntime does not have here is refused with ``BackendUnavailable`` instead of
    silently falling back to the CPU; ``OnnxRuntimeRunner.describe()`` reports what really runs.
    """
    ort = import_onnxruntime()
    wanted = _PROVIDER_ALIASES.get((provider or "").lower(), provider) if provider else (
        "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider")
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailable(
            f"onnxruntime {ort.__version__} here has no {wanted} (available: {', '.join(available)}); "
            f"for CUDA/TensorRT install icnet-deploy[gpu] (onnxruntime-gpu)"
        )
    chain = {"TensorrtExecutionProvider": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
             "CUDAExecutionProvider": ["CUDAExecutionProvider", "CPUExecutionProvider"]}.get(wanted, [wanted])
    device_id = int(device.split(":", 1)[1]) if ":" in device else 0
    out: list[Any] = []
    for name in chain:
        if name not in available:
            continue
        out.append((name, {"device_id": device_id}) if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else name)
    return out


def resolve_providers(requested: str | None = None, *, device_id: int = 0, precision: str = "fp32",
                      cache_dir: str | Path | None = None) -> list[Any]:
    """The provider list for ``requested`` (``"cpu"``, ``"cuda"``, ``"tensorrt"`` or an onnxruntime
    provider name) with its fallbacks, refusing one this onnxruntime does not have.

    The TensorRT execution provider gets an engine cache and a timing cache in ``cache_dir``
    (default ``~/.cache/icnet_deploy/ort_trt``), so a session does not rebuild its engines on
    every start, and fp16/int8 enabled to match ``precision`` (fp16 graphs and QDQ graphs).
    Check ``active_provider(session)`` afterwards: it is what really runs.
    """
    device = "cuda" if requested and requested.lower() not in ("cpu", "cpuexecutionprovider") else "cpu"
    chain = _runner_providers(f"{device}:{device_id}" if device == "cuda" else "cpu", requested)
    out: list[Any] = []
    for entry in chain:
        if isinstance(entry, tuple) and entry[0] == "TensorrtExecutionProvider":
            folder = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "icnet_deploy" / "ort_trt"
            folder.mkdir(parents=True, exist_ok=True)
            options = dict(entry[1], trt_engine_cache_enable=True, trt_engine_cache_path=str(folder),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(folder),
                           trt_fp16_enable=precision == "fp16", trt_int8_enable=precision == "int8")
            out.append((entry[0], options))
        else:
            out.append(entry)
    return out


def active_provider(session: Any) -> str:
    """The provider that really runs ``session``: onnxruntime-gpu silently drops a provider it
    cannot start (no CUDA driver, missing TensorRT libraries) and runs the graph on the CPU."""
    return session.get_providers()[0]


class OnnxRuntimeRunner(Runner):
    """Runs an icnet-deploy ONNX artifact (fp32, fp16 or QDQ int8) in ONNX Runtime.

    Input/output names, the static shape or size rule, the output kind (logits or labels) and the
    normalisation come from the artifact's manifest. ``infer`` takes float32 N×3×H×W (cast to
    float16 for graphs with a float16 input) and returns float32 logits N×C×H×W or N×H×W labels.
    ``describe()["provider"]`` is the provider onnxruntime really runs the graph with
    (``session.get_providers()[0]``), not the one asked for.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, *, manifest: Any = None, device: str = "cpu", provider: str | None = None,
                 threads: int | None = None, name: str = "") -> None:
        from ..manifest import read_manifest

        self.path = Path(path)
        manifest = manifest if manifest is not None else read_manifest(self.path)
        if manifest.format != "onnx":
            raise ArtifactError(f"{self.path}: is a {manifest.format} artifact, not an ONNX model")
        refuse_plugin_graph(self.path, manifest)
        super().__init__(name or f"onnx-{manifest.precision}")
        self._adopt_manifest(manifest)
        self.device, self.requested_provider, self.threads = device, provider, threads
        self.spinning = True  # set False before activate() when sessions share the cores (see create_session)
        self.input_name, self.output_name = manifest.input_name, manifest.output_name
        self._input_dtype = manifest.input_dtype

    def _activate_impl(self) -> None:
        requested = self.requested_provider or ("cuda" if self.device.startswith("cuda") else "cpu")
        device_id = int(self.device.split(":", 1)[1]) if ":" in self.device else 0
        providers = resolve_providers(requested, device_id=device_id, precision=self.precision)
        session = create_session(self.path, providers=providers, threads=self.threads, spinning=self.spinning)
        self.provider = active_provider(session)
        wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if wanted != "CPUExecutionProvider" and self.provider == "CPUExecutionProvider":
            # onnxruntime-gpu drops a provider it cannot start without an error: never time a CPU run as a GPU one
            raise BackendUnavailable(f"{self.path}: onnxruntime could not start {wanted} here (no usable GPU, driver "
                                     "or TensorRT libraries) and fell back to the CPU")
        self._session, self._providers, self._coarse = session, providers, None

    def _infer_impl(self, batch: Any) -> Any:
        return self._run(self._session, batch, [self.output_name])

    def _run(self, session: Any, batch: Any, outputs: list[str] | None = None) -> Any:
        import numpy as np

        if self._input_dtype == "float16":
            batch = batch.astype(np.float16)
        out = session.run(outputs, {self.input_name: batch})[0]
        if self.output_kind == "logits" and out.dtype != np.float32:
            out = out.astype(np.float32)
        return out

    def _infer_for_labels_impl(self, batch: Any) -> Any:
        if self._coarse is None:  # built on first use: only callers that want labels pay for it
            import onnx

            graph = coarse_logits_graph(onnx.load(str(self.path))) if self.output_kind == "logits" else None
            try:
                self._coarse = (create_session(graph.SerializeToString(), providers=self._providers,
                                               threads=self.threads, spinning=self.spinning)
                                if graph is not None else False)
            except ArtifactError:  # a graph onnxruntime will not take cut: the full one still gives the labels
                self._coarse = False
        if self._coarse is False:
            return self._infer_impl(batch)
        return self._run(self._coarse, batch)

    def _deactivate_impl(self) -> None:
        del self._session
        self._coarse = None

    def _describe_impl(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.precision,
            "provider": getattr(self, "provider", None) or self.requested_provider or "not active",
            "artifact": str(self.path),
        }
