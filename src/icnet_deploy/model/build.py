"""One constructor for every config: the network its ``variant`` names."""

from __future__ import annotations

from torch import nn

from .config import ICNetConfig

__all__ = ["build_model"]


def build_model(config: ICNetConfig) -> nn.Module:
    """An untrained network for ``config`` (``ICNet``, or ``ICNetMMSeg`` for ``variant="mmseg"``)."""
    if config.variant == "mmseg":
        from .icnet_mmseg import ICNetMMSeg

        return ICNetMMSeg(config)
    from .icnet import ICNet

    return ICNet(config)
