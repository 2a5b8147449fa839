"""The fused ops built from ``plugins/``, loaded in one place (the numpy reference where one is missing).

One op so far, **UpsampleArgmax**: N×C×h×w logits (float32/float16) and a size H×W → N×H×W uint8
labels, exactly ``argmax_c(resize_bilinear(logits, H×W, align_corners=False))`` as
``upsample.bilinear_argmax`` (the reference) computes it — the same taps, the same float32
arithmetic in the same order, the same first-maximum rule — without writing the C×H×W resized
logits. It is the last step of every label path (``data.transforms.to_labels``). Its implementations:

* **CPU** — ``plugins/upsample_argmax/upsample_argmax.c``: plain C and pthreads, compiled into
  the package when it is installed (``setup.py``; optional: no compiler, no kernel) and loaded
  here with ctypes. Refused (the reference serves, and ``label_path()`` says why) when the
  library is missing, fails to load, was built from another source than the one installed
  beside it (an editable install whose C source changed: reinstall), or when
  ``ICNET_DEPLOY_NO_NATIVE`` is set. ``threads``: default, the CPUs this process may use.
* **CUDA** — ``plugins/upsample_argmax/triton_kernel.py`` (Triton, shipped with CUDA builds of
  torch), imported on first use by ``upsample_argmax_cuda``.
* **TensorRT** — ``plugins/upsample_argmax/tensorrt_plugin.py``: the op as a TensorRT plugin
  (``tensorrt.plugin``, running the Triton kernel), registered by ``register_tensorrt_plugin``.

``plugins/`` is installed as the package ``icnet_deploy.kernels``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.machinery
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .upsample import bilinear_argmax, bilinear_taps

__all__ = [
    "OP_NAME", "OP_DOMAIN", "OP_VERSION", "NO_NATIVE_ENV", "cpu_threads", "upsample_argmax", "label_path",
    "label_path_text", "native_library", "op_record", "cuda_available", "upsample_argmax_cuda",
    "register_tensorrt_plugin",
]

OP_NAME = "UpsampleArgmax"
OP_DOMAIN = "icnet_deploy"  # the ONNX domain of the node, and the TensorRT plugin namespace
OP_VERSION = "1"
NO_NATIVE_ENV = "ICNET_DEPLOY_NO_NATIVE"  # set (to anything but "" or "0"): the numpy reference serves
_LIBRARY = "_upsample_argmax"
_SOURCE = "upsample_argmax.c"
_PLUGIN_SOURCES = ("triton_kernel.py", "tensorrt_plugin.py")  # what a TensorRT engine's plugin is made of
_MAX_NATIVE_CLASSES = 255  # uint8 labels, one value kept for "corners disagree"


@dataclass(frozen=True)
class NativeLibrary:
    """The loaded CPU kernel: where it is, what it was built from, which of its builds runs here."""

    path: Path
    version: str
    source_sha256: str
    isa: str
    function: Any  # the ctypes function ``upsample_argmax``


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _kernel_files() -> Any:
    return resources.files("icnet_deploy.kernels.upsample_argmax")


def _sha256_of(*names: str) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(_kernel_files().joinpath(name).read_bytes())
    return digest.hexdigest()


def _library_path() -> Path | None:
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{_LIBRARY}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=1)
def _load_native() -> tuple[NativeLibrary | None, str]:
    """(the library, "") or (None, why not)."""
    if os.environ.get(NO_NATIVE_ENV, "") not in ("", "0"):
        return None, f"{NO_NATIVE_ENV} is set"
    path = _library_path()
    if path is None:
        return None, "not built (no C compiler when the package was installed?); reinstall with one: pip install -e ."
    try:
        lib = ctypes.CDLL(str(path))
        lib.upsample_argmax_source_sha256.restype = ctypes.c_char_p
        built_from = lib.upsample_argmax_source_sha256().decode()
        source = _sha256_of(_SOURCE)
        if built_from != source:  # first: an older library may also lack newer functions
            return None, (f"{path.name} was built from another source (sha256 {built_from[:12]}…, the installed "
                          f"{_SOURCE} is {source[:12]}…): reinstall (pip install -e .) to rebuild it")
        for name in ("upsample_argmax_version", "upsample_argmax_isa"):
            getattr(lib, name).restype = ctypes.c_char_p
        function = lib.upsample_argmax
    except (OSError, AttributeError) as exc:
        return None, f"{path.name} does not load: {exc}"
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    function.argtypes = [p, ctypes.c_int, i64, i64, i64, i64, i64, i64, p, p, p, p, p, p, p, ctypes.c_int]
    function.restype = ctypes.c_int
    return NativeLibrary(path=path, version=lib.upsample_argmax_version().decode(), source_sha256=built_from,
                         isa=lib.upsample_argmax_isa().decode(), function=function), ""


def native_library() -> NativeLibrary | None:
    """The CPU kernel, or None when the numpy reference serves (``label_path()["reason"]`` says why)."""
    return _load_native()[0]


@functools.lru_cache(maxsize=64)
def _taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's taps as the kernel takes them (int32 indices, float32 weights), per pair of sizes."""
    first, second, weight = bilinear_taps(n_out, n_in)
    taps = (first.astype(np.int32), second.astype(np.int32), np.ascontiguousarray(weight, dtype=np.float32))
    for a in taps:
        a.setflags(write=False)
    return taps


def upsample_argmax(logits: np.ndarray, size: tuple[int, int], *, threads: int | None = None) -> np.ndarray:
    """C×h×w (or N×C×h×w) logits → H×W (or N×H×W) labels of their bilinear resize to ``size``.

    The CPU kernel where it is loaded (``threads``: default ``cpu_threads()``), else
    ``upsample.bilinear_argmax`` per image; the labels are the same either way. uint8 for up to
    255 classes (the reference's labels beyond that, and for logits other than float32/float16).
    """
    logits = np.asarray(logits)
    if logits.ndim not in (3, 4):
        raise ValueError(f"expected C×h×w or N×C×h×w logits, got shape {logits.shape}")
    batch = logits if logits.ndim == 4 else logits[None]
    n, classes, h, w = batch.shape
    height, width = int(size[0]), int(size[1])
    lib = native_library()
    # the kernel takes float32/float16 (what every runner returns); the reference's coarse argmax of
    # other dtypes compares in that dtype, so those stay with it
    if (lib is None or classes > _MAX_NATIVE_CLASSES or batch.dtype not in (np.float32, np.float16)
            or min(n, classes, h, w, height, width) < 1):
        out = np.stack([bilinear_argmax(one, (height, width)) for one in batch]) if n else \
            np.zeros((0, height, width), np.uint8)
        return out if logits.ndim == 4 else out[0]
    batch = np.ascontiguousarray(batch)
    y0, y1, wy = _taps(height, h)
    x0, x1, wx = _taps(width, w)
    labels = np.empty((n, height, width), np.uint8)
    status = lib.function(batch.ctypes.data, 0 if batch.dtype == np.float32 else 1, n, classes, h, w, height, width,
                          y0.ctypes.data, y1.ctypes.data, wy.ctypes.data, x0.ctypes.data, x1.ctypes.data,
                          wx.ctypes.data, labels.ctypes.data, int(threads or cpu_threads()))
    if status != 0:
        raise MemoryError(f"{lib.path.name}: upsample_argmax failed on {batch.shape} → {height}×{width} (out of memory?)")
    return labels if logits.ndim == 4 else labels[0]


def label_path() -> dict[str, Any]:
    """Which implementation turns logits into labels on the CPU here, for ``info`` and ``bench``."""
    lib, reason = _load_native()
    if lib is None:
        return {"op": OP_NAME, "implementation": "numpy reference", "reason": reason}
    return {"op": OP_NAME, "implementation": "C kernel", "library": str(lib.path), "version": lib.version,
            "source_sha256": lib.source_sha256, "isa": lib.isa, "threads": cpu_threads()}


def label_path_text(info: dict[str, Any] | None = None) -> str:
    """``label_path()`` in one line."""
    info = info or label_path()
    if info["implementation"] == "C kernel":
        return f"{info['op']} C kernel v{info['version']} ({info['isa']}, up to {info['threads']} threads)"
    return f"{info['op']}: numpy reference ({info['reason']})"


def op_record() -> dict[str, Any]:
    """What a graph or engine that contains the op records about it (manifests): name, version and the
    sha256 of the sources its TensorRT plugin is made of."""
    return {"name": OP_NAME, "domain": OP_DOMAIN, "version": OP_VERSION,
            "source_sha256": _sha256_of(*_PLUGIN_SOURCES), "sources": [f"plugins/upsample_argmax/{n}" for n in _PLUGIN_SOURCES]}


# --------------------------------------------------------------------------------------------
# CUDA and TensorRT: the Triton kernel, imported on first use
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _cuda_status() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    try:
        import triton  # noqa: F401 - shipped with CUDA builds of torch
    except ImportError:
        return False, "triton is not installed (it ships with CUDA builds of torch)"
    return True, ""


def cuda_available() -> tuple[bool, str]:
    """(True, "") when the Triton kernel can run here, else (False, why not)."""
    return _cuda_status()


def upsample_argmax_cuda(logits: Any, size: tuple[int, int], *, out: Any = None) -> Any:
    """A CUDA tensor N×C×h×w (float32/float16) → N×H×W labels on the device (the Triton kernel).

    ``out``: an N×H×W uint8 or int32 CUDA tensor to write into (default: a new uint8 one).
    """
    ok, reason = cuda_available()
    if not ok:
        from .errors import BackendUnavailable

        raise BackendUnavailable(f"{OP_NAME} on CUDA: {reason}")
    from .kernels.upsample_argmax.triton_kernel import upsample_argmax as launch

    return launch(logits, size, out=out)


def register_tensorrt_plugin() -> dict[str, Any]:
    """Register the op with TensorRT's plugin registry (idempotent); returns ``op_record()``.

    Needed before TensorRT parses a graph with the op and before it deserialises an engine built
    from one (the plugin runs the Triton kernel from Python).
    """
    from .kernels.upsample_argmax.tensorrt_plugin import register

    register()
    return op_record()
