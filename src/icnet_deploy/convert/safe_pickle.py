"""Read a PyTorch ``.pth`` without running code from it.

``torch.load(weights_only=True)`` first: it accepts tensors and plain containers only. mmengine
checkpoints usually fail it — their ``meta``/``message_hub`` hold numpy scalars and mmengine
objects (``HistoryBuffer``) — so the fallback is ``torch.load`` with a restricted unpickler:

* torch's own tensor/storage rebuild functions (those the weights-only unpickler allows) and
  ``OrderedDict``/``set``/``frozenset`` are the only callables the file can reach;
* globals of data-holding modules (numpy, mmengine, mmcv, mmseg, datetime, ``_codecs``,
  ``copyreg``'s reconstructor) become *inert placeholders*: they record their arguments and do
  nothing, so nothing of those packages is imported or called; ``getattr`` works on placeholders
  only (mmengine's ``HistoryBuffer`` pickles ``getattr(HistoryBuffer, "min")``);
* any other global — ``os.system``, ``builtins.eval``, ``subprocess.Popen``, … — refuses the file.

The result is only trusted as far as it is plain: the caller takes the ``state_dict`` and
checks that every value is a tensor.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ..errors import ModelError

__all__ = ["load_pth", "Placeholder"]

# Modules whose globals are stood in for by placeholders (data carried in meta, never needed).
_DATA_ROOTS = frozenset({"numpy", "mmengine", "mmcv", "mmseg", "datetime", "_codecs", "collections", "copyreg"})
# The only real callables: what torch's weights_only unpickler allows for tensors, and plain containers.
_TORCH_REBUILD = {
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter", "_rebuild_parameter_with_state",
    "_rebuild_device_tensor_from_numpy", "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
}


class Placeholder:
    """Stands in for an object of a data-holding class from the file: keeps its arguments, runs nothing."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualname}>"


def _placeholder(module: str, name: str) -> type:
    return type(f"Placeholder[{module}.{name}]", (Placeholder,), {"qualname": f"{module}.{name}"})


class RefusedGlobal(pickle.UnpicklingError):
    pass


def _getattr_of_placeholder(obj: Any, name: str) -> Any:
    """``getattr`` for placeholders only (an attribute of a stand-in is another stand-in); on any real
    object — where it could reach a method — the file is refused."""
    if isinstance(obj, Placeholder) or (isinstance(obj, type) and issubclass(obj, Placeholder)):
        return _placeholder(obj.qualname, str(name))
    raise RefusedGlobal(f"builtins.getattr on a {type(obj).__name__}")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import collections

        import torch

        if module == "torch._utils" and name in _TORCH_REBUILD:
            return getattr(torch._utils, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) in (("torch", "Size"), ("torch", "device")):
            return getattr(torch, name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module in ("builtins", "__builtin__"):  # protocol 2 writes __builtin__
            if name in ("set", "frozenset"):
                return {"set": set, "frozenset": frozenset}[name]
            if name == "getattr":  # mmengine's HistoryBuffer pickles getattr(HistoryBuffer, "min")
                return _getattr_of_placeholder
        if module.split(".")[0] in _DATA_ROOTS:
            return _placeholder(module, name)
        raise RefusedGlobal(f"{module}.{name}")


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: an Unpickler class (torch subclasses it for storages)."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda f, **kw: _RestrictedUnpickler(f, **kw).load())
    __name__ = "icnet_deploy.convert.safe_pickle"


def load_pth(path: str | Path) -> tuple[Any, str]:
    """The object in a ``.pth``/``.pt`` file and how it was read (``weights_only`` or ``restricted``).

    Raises ``ModelError`` for a file that is not a PyTorch checkpoint, is truncated, or references
    code (the name of the first such global in the message)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError:
        pass  # a global outside the weights-only allow-list: decide with the restricted reader below
    except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler fail in any way (KeyError, EOFError, …)
        raise ModelError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(exc)}") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except RefusedGlobal as exc:
        raise ModelError(f"{path}: refused: the pickle references {exc}, which is code, not data "
                         "(this reader never runs code from a file)") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a restricted read is a bad file, said in one line
        raise ModelError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(exc)}") from None
    return obj, "restricted"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
