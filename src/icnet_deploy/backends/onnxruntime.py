"""ONNX Runtime backend (CPU / CUDA / TensorRT execution providers).

For now: the one helper the exporter needs to verify its graph. onnxruntime is imported
lazily, so the rest of the package works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, BackendUnavailable

__all__ = ["create_session", "INSTALL_HINT"]

INSTALL_HINT = "pip install icnet-deploy[cpu]  (or icnet-deploy[gpu] for onnxruntime-gpu; never both)"


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(f"onnxruntime is not installed: {INSTALL_HINT}") from None
    return onnxruntime


def create_session(path: str | Path | bytes, providers: Sequence[str] | None = None, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for a model file (or serialized model bytes).

    ``providers`` defaults to CPU only; ``threads`` sets the intra-op thread count (None:
    onnxruntime's default, one per physical core).
    """
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no provider/optimizer chatter on stderr
    providers = list(providers) if providers else ["CPUExecutionProvider"]
    model = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's pybind errors: keep the first line only
        what = "model" if isinstance(path, bytes) else str(path)
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"{what}: onnxruntime cannot load it: {message}") from None
