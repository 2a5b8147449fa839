"""Model configurations as frozen dataclasses (no config files to inherit).

``icnet_r50_half`` is the paper's network: a dilated ResNet-50 at half width (the
"compressed PSPNet50" of the original Caffe release). ``icnet_r50`` is the same topology
at full ResNet-50 width.

Configs for weights made elsewhere (``icnet-deploy convert``) describe those networks exactly:
``icnet_mmseg_r50``/``_r101`` are mmsegmentation's ICNet (``variant="mmseg"``: PSPNet's
pyramid pooling with concat, ReLU in both CFF inputs, classifier at 1/8 — see
``icnet_mmseg.py``); ``icnet_r50_half_caffe`` is the original Caffe release (the paper's
topology with the conv3_1 stride on its 1×1 reduce, ``align_corners=True`` resizes and the
prototxt's fixed pooling windows), whose weights expect BGR-ordered means without a std.
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
    # Fields for converted weights (``icnet-deploy convert``). Written to JSON only when they
    # differ from these defaults, so the configs of existing checkpoints and manifests read as before.
    variant: str = "icnet"  # "icnet": this package's network (icnet.py); "mmseg": mmsegmentation's (icnet_mmseg.py)
    stem_channels: tuple[int, int, int] | None = None  # the deep stem's widths; None: channels(64, 64, 128)
    reduce_stride: bool = False  # stride of conv3_1 on its 1×1 reduce (Caffe), not on the 3×3 (torchvision)
    contract_dilation: bool = False  # first block of a dilated stage at half the dilation (mmseg's ResNetV1c)
    align_corners: bool = False  # the network's inner resizes (Caffe's Interp layer aligns corners); the final upsample never does
    caffe_pooling: bool = False  # pyramid pooling windows as the Caffe prototxt sets them (see icnet.caffe_pool_windows)
    psp_channels: int = 512  # mmseg: width of each pyramid branch and of the bottleneck after the concat
    branch_channels: int = 256  # mmseg: width of the 1/16 and 1/32 projections fed to the CFFs

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
        if self.variant not in VARIANTS:
            raise ModelError(f"model config: variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.stem_channels is not None and (
                not isinstance(self.stem_channels, (tuple, list)) or len(self.stem_channels) != 3
                or not all(_is_int(v) and v >= 1 for v in self.stem_channels)):
            raise ModelError(f"model config: stem_channels must be 3 positive integers or null, got {self.stem_channels!r}")
        for name in ("reduce_stride", "contract_dilation", "align_corners", "caffe_pooling"):
            if not isinstance(getattr(self, name), bool):
                raise ModelError(f"model config: {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("psp_channels", "branch_channels"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ModelError(f"model config: {name} must be a positive integer, got {getattr(self, name)!r}")

    def channels(self, full_width: int) -> int:
        """A ResNet-50 channel count scaled by the width multiplier."""
        return max(8, int(round(full_width * self.width)))

    def stem(self) -> tuple[int, int, int]:
        """Widths of the three stem convs."""
        if self.stem_channels is not None:
            return tuple(self.stem_channels)
        return self.channels(64), self.channels(64), self.channels(128)

    def to_json(self) -> str:
        raw = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if raw[name] == default or (isinstance(raw[name], tuple) and list(raw[name]) == default):
                del raw[name]
        return json.dumps(raw, sort_keys=True)

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


VARIANTS = ("icnet", "mmseg")
_LATER_FIELDS = {"variant": "icnet", "stem_channels": None, "reduce_stride": False, "contract_dilation": False,
                 "align_corners": False, "caffe_pooling": False, "psp_channels": 512, "branch_channels": 256}

# mmsegmentation's configs/_base_/models/icnet_r50-d8.py: ResNetV1c (deep stem 32-32-64), dilations
# (1, 1, 2, 4) with contract_dilation, light branch 32-32-64, PPM 512, projections 256, ICNeck 128.
_MMSEG = dict(width=1.0, variant="mmseg", stem_channels=(32, 32, 64), contract_dilation=True,
              high_res_channels=(32, 32, 64), cff_channels=128, psp_channels=512, branch_channels=256)

CONFIGS: dict[str, ICNetConfig] = {
    "icnet_r50_half": ICNetConfig(),
    "icnet_r50": ICNetConfig(name="icnet_r50", width=1.0),
    "icnet_mmseg_r50": ICNetConfig(name="icnet_mmseg_r50", blocks=(3, 4, 6, 3), **_MMSEG),
    "icnet_mmseg_r101": ICNetConfig(name="icnet_mmseg_r101", blocks=(3, 4, 23, 3), **_MMSEG),
    # hszhao/ICNet evaluation/prototxt/icnet_cityscapes.prototxt: preprocessing subtracts the RGB
    # means and feeds BGR without a std; the converter folds the channel order into the two convs
    # that read the image, so the stored normalisation is RGB like every other config's.
    "icnet_r50_half_caffe": ICNetConfig(name="icnet_r50_half_caffe", reduce_stride=True, align_corners=True,
                                        caffe_pooling=True, mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0)),
}


def get_config(name: str) -> ICNetConfig:
    """Look up a named configuration; unknown names list the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ModelError(f"unknown model config {name!r}; known: {', '.join(CONFIGS)}") from None
