"""Optional frameworks: import one, or say in one sentence which extra installs it.

The runtime an ONNX engine needs is ONNX Runtime, numpy and Pillow; torch (export, training,
eager and compiled runners), PyTriton (``serve``) and Ray (``infer --ray``) are extras, imported
only by the code that uses them. A missing one is a ``BackendUnavailable`` (exit 2), never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendUnavailable

__all__ = ["require", "missing_extra_message", "EXTRAS"]

# top-level module -> (what it is, the pip extra that installs it)
EXTRAS = {
    "torch": ("PyTorch", "torch"),
    "pytriton": ("PyTriton (nvidia-pytriton)", "serve"),
    "tritonclient": ("the Triton client (tritonclient)", "serve"),
    "ray": ("Ray (ray[data])", "ray"),
    "onnxruntime": ("ONNX Runtime", "cpu"),
    "matplotlib": ("matplotlib", "report"),
}


def missing_extra_message(module: str, feature: str | None = None) -> str:
    """'``feature`` needs PyTorch, which is not installed here: pip install 'icnet-deploy[torch]''."""
    top = module.split(".")[0]
    what, extra = EXTRAS.get(top, (top, None))
    how = f"pip install 'icnet-deploy[{extra}]'" if extra else f"pip install {top}"
    return f"{feature or 'this'} needs {what}, which is not installed here: {how}"


def require(module: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)``, or ``BackendUnavailable`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.split(".")[0] == exc.name.split(".")[0]:
            raise BackendUnavailable(missing_extra_message(module, feature)) from None
        raise
