"""The ICNet reference model, its configurations, loss and weight files.

The configurations (``config``) need only the standard library; the network (``icnet``) needs
torch, so it is imported when first used: an ONNX runtime without torch can read model configs.
"""

from .config import CONFIGS, ICNetConfig, get_config

__all__ = ["CONFIGS", "ICNetConfig", "get_config", "ICNet", "CascadeOutputs", "branch_sizes"]

_TORCH_NAMES = {"ICNet", "CascadeOutputs", "branch_sizes"}


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from . import icnet

        return getattr(icnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
