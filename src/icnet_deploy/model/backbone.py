"""Dilated ResNet-50 trunk (bottleneck blocks) with a width multiplier.

Deep stem (three 3×3 convs, as in the Caffe ICNet/PSPNet), stride on the 3×3 conv of each
bottleneck, dilation instead of stride in conv4_x and conv5_x. The ICNet forward pass does not
run the stages in order: it splits conv3_x after its first block (see ``icnet.py``), so the
trunk only owns the layers and leaves the schedule to the network.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import ICNetConfig

__all__ = ["ConvBNReLU", "Bottleneck", "DilatedResNet"]


class ConvBNReLU(nn.Sequential):
    """conv (no bias) → BN → optional ReLU; padding keeps 'same' size for stride 1."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride, dilation) → 1×1 expand, plus projection shortcut when needed.

    ``reduce_stride`` puts the stride on the 1×1 reduce instead (Caffe's ResNet, the original ICNet)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1, dilation: int = 1,
                 reduce_stride: bool = False) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(in_ch, mid_ch, 1, stride=stride if reduce_stride else 1)
        self.conv = ConvBNReLU(mid_ch, mid_ch, 3, stride=1 if reduce_stride else stride, dilation=dilation)
        self.expand = ConvBNReLU(mid_ch, out_ch, 1, relu=False)
        self.shortcut = (
            ConvBNReLU(in_ch, out_ch, 1, stride=stride, relu=False) if stride != 1 or in_ch != out_ch else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.expand(self.conv(self.reduce(x))) + self.shortcut(x))


def _stage(in_ch: int, mid_ch: int, out_ch: int, blocks: int, stride: int, dilation: int,
           reduce_stride: bool = False, contract_dilation: bool = False) -> nn.Sequential:
    # contract_dilation: the first block at half the dilation (mmseg's ResLayer)
    first = dilation // 2 if contract_dilation and dilation > 1 else dilation
    layers = [Bottleneck(in_ch, mid_ch, out_ch, stride=stride, dilation=first, reduce_stride=reduce_stride)]
    layers += [Bottleneck(out_ch, mid_ch, out_ch, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class DilatedResNet(nn.Module):
    """The shared trunk: stem + max-pool + conv2_x..conv5_x (``layer1``..``layer4``)."""

    def __init__(self, config: ICNetConfig) -> None:
        super().__init__()
        c = config.channels
        stem = config.stem()
        self.stem = nn.Sequential(
            ConvBNReLU(3, stem[0], 3, stride=2),
            ConvBNReLU(stem[0], stem[1], 3),
            ConvBNReLU(stem[1], stem[2], 3),
        )
        # kernel 3, stride 2, padding 1: output ceil(n/2), the same rule as every stride-2 conv.
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        d4, d5 = config.dilations
        b = config.blocks
        self.layer1 = _stage(stem[2], c(64), c(256), b[0], stride=1, dilation=1)
        self.layer2 = _stage(c(256), c(128), c(512), b[1], stride=2, dilation=1, reduce_stride=config.reduce_stride)
        self.layer3 = _stage(c(512), c(256), c(1024), b[2], stride=1, dilation=d4, contract_dilation=config.contract_dilation)
        self.layer4 = _stage(c(1024), c(512), c(2048), b[3], stride=1, dilation=d5, contract_dilation=config.contract_dilation)
        self.out_channels = c(2048)
        self.mid_channels = c(512)  # conv3_1, the 1/16 feature the medium branch fuses
