"""The ICNet reference model, its configurations, loss and weight files.

The configurations import without torch; the network (``ICNet``) loads torch when it is first named.
"""

from .config import CONFIGS, MIN_SIZE, ICNetConfig, get_config

__all__ = ["CONFIGS", "MIN_SIZE", "ICNetConfig", "get_config", "ICNet", "CascadeOutputs", "branch_sizes"]

_NETWORK = ("ICNet", "CascadeOutputs", "branch_sizes")


def __getattr__(name: str):
    if name in _NETWORK:
        from . import icnet

        return getattr(icnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
