"""One way to open an ONNX Runtime session, for every part of the toolkit that runs an ONNX graph.

The runner (``backends.onnxruntime``), export verification, quantization and the INT8 diagnostics
all open their sessions here, so threads, spinning, logging and the memory arena are set once.
onnxruntime is imported lazily: the rest of the package works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ArtifactError, BackendUnavailable

__all__ = ["INSTALL_HINT", "create_session", "import_onnxruntime"]

INSTALL_HINT = "pip install icnet-deploy[cpu]  (or icnet-deploy[gpu] for onnxruntime-gpu; never both)"


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(f"onnxruntime is not installed: {INSTALL_HINT}") from None
    return onnxruntime


def create_session(path: str | Path | bytes, providers: Sequence[str] | None = None, threads: int | None = None,
                   spinning: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` for a model file (or serialized model bytes).

    ``providers`` defaults to CPU only; ``threads`` sets the intra-op thread count (None:
    onnxruntime's default, one per physical core). ``spinning=False`` stops the intra-op
    threads from busy-waiting after each op: what a process that interleaves several sessions
    needs, because one session's spinning threads otherwise steal the cores from the next.

    On the CPU the memory pattern (one block planned for all of a run's intermediate tensors) is
    off: the arena then reuses freed blocks, which measured at 1024×2048 (2 threads, shipped
    checkpoint) took the peak RSS of a run from 1220 to 868–898 MiB (fp32 export) and from 1038 to
    739 MiB (fixed-rule INT8), 509 → 381–415 and 493 → 314–320 MiB on the label path, at the same
    speed (interleaved, 11 rounds: 294.3 vs 294.2 ms and 121.9 vs 122.7 ms).
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no provider/optimizer chatter on stderr
    providers = list(providers) if providers else ["CPUExecutionProvider"]
    if all((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in providers):
        options.enable_mem_pattern = False
    model = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's pybind errors: keep the first line only
        what = "model" if isinstance(path, bytes) else str(path)
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"{what}: onnxruntime cannot load it: {message}") from None
