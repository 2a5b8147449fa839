"""Model configurations as frozen dataclasses (no config files to inherit).

``icnet_r50_half`` is the paper's network: a dilated ResNet-50 at half width (the
"compressed PSPNet50" of the original Caffe release). ``icnet_r50`` is the same topology
at full ResNet-50 width.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace

from ..errors import ModelError

__all__ = ["ICNetConfig", "CONFIGS", "get_config", "DEFAULT_MEAN", "DEFAULT_STD", "MIN_SIZE"]

# the smallest height and width an input may have (every engine and export refuses smaller)
MIN_SIZE = 64

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
        """Refuse a field of the wrong type or range (configs come from checkpoint metadata and manifests)."""
        if not isinstance(self.name, str):
            raise ModelError(f"model config: name must be a string, got {self.name!r}")
        if not _is_int(self.num_classes) or not 1 <= self.num_classes <= 255:
            raise ModelError(f"model config: num_classes must be an integer 1..255, got {self.num_classes!r}")
        if not _is_number(self.width) or self.width <= 0:
            raise ModelError(f"model config: width must be a positive number, got {self.width!r}")
        for name, length in (("blocks", 4), ("dilations", 2), ("pool_bins", None), ("high_res_channels", 3)):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list)) or (length is not None and len(value) != length) or not value
                    or not all(_is_int(v) and v >= 1 for v in value)):
                raise ModelError(f"model config: {name} must be {length or 'one or more'} positive integers, got {value!r}")
        if not _is_int(self.cff_channels) or self.cff_channels < 1:
            raise ModelError(f"model config: cff_channels must be a positive integer, got {self.cff_channels!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(_is_number(v) for v in value):
                raise ModelError(f"model config: {name} must be 3 finite numbers, got {value!r}")
        if not all(v > 0 for v in self.std):
            raise ModelError(f"model config: std must be positive, got {self.std!r}")

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
        if not isinstance(raw, dict):
            raise ModelError(f"model config must be a JSON object, got {type(raw).__name__}")
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
