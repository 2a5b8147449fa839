"""Model configurations as frozen dataclasses (no config files to inherit).

``icnet_r50_half`` is the paper's network: a dilated ResNet-50 at half width (the
"compressed PSPNet50" of the original Caffe release). ``icnet_r50`` is the same topology
at full ResNet-50 width.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from ..errors import ModelError

__all__ = ["ICNetConfig", "CONFIGS", "get_config", "DEFAULT_MEAN", "DEFAULT_STD"]

# RGB mean/std in 0..255 units (ImageNet statistics, as mmsegmentation uses them). The
# Caffe original subtracted BGR means without dividing; we train from scratch, so we keep
# the common convention and store it with every checkpoint and artifact.
DEFAULT_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
DEFAULT_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ICNetConfig:
    name: str = "icnet_r50_half"
    num_classes: int = 19  # output channels (Cityscapes train ids)
    width: float = 0.5  # ResNet-50 width multiplier; 0.5 = the paper's compressed trunk
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks in conv2..conv5
    dilations: tuple[int, int] = (2, 4)  # conv4_x, conv5_x (the low-resolution branch)
    pool_bins: tuple[int, ...] = (1, 2, 3, 6)  # pyramid pooling bins, summed with the input
    cff_channels: int = 128  # width of both cascade feature fusion units
    high_res_channels: tuple[int, int, int] = (32, 32, 64)  # the three stride-2 convs on the full image
    mean: tuple[float, float, float] = field(default=DEFAULT_MEAN)  # RGB, 0..255 units
    std: tuple[float, float, float] = field(default=DEFAULT_STD)  # RGB, 0..255 units

    def __post_init__(self) -> None:
        if self.num_classes < 1 or self.num_classes > 255:
            raise ModelError(f"num_classes must be 1..255, got {self.num_classes}")
        if self.width <= 0:
            raise ModelError(f"width must be positive, got {self.width}")

    def channels(self, full_width: int) -> int:
        """A ResNet-50 channel count scaled by the width multiplier."""
        return max(8, int(round(full_width * self.width)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ICNetConfig":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model config is not valid JSON: {exc}") from None
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ModelError(f"model config has unknown fields: {sorted(unknown)}")
        for key, value in raw.items():  # JSON turns tuples into lists
            if isinstance(value, list):
                raw[key] = tuple(value)
        return cls(**raw)

    def with_classes(self, num_classes: int) -> "ICNetConfig":
        return replace(self, num_classes=num_classes)


CONFIGS: dict[str, ICNetConfig] = {
    "icnet_r50_half": ICNetConfig(),
    "icnet_r50": ICNetConfig(name="icnet_r50", width=1.0),
}


def get_config(name: str) -> ICNetConfig:
    """Look up a named configuration; unknown names list the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ModelError(f"unknown model config {name!r}; known: {', '.join(CONFIGS)}") from None
