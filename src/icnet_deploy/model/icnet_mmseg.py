"""mmsegmentation's ICNet (``variant="mmseg"``): the network its model-zoo checkpoints were trained as.

Same three-branch idea as ``icnet.py``, different layers and schedule (mmseg 1.x,
``backbones/icnet.py``, ``necks/ic_neck.py``, ``decode_heads/fcn_head.py``):

* light branch ``high_res`` on the full image: three 3×3/s2 conv-BN-ReLU (1/8);
* the image resized by ``scale_factor=0.5`` (output ⌊n/2⌋), ResNetV1c stem, a 3×3/s2 max-pool
  with ``ceil_mode=True`` (so 256 → 129), conv2_x and *all* of conv3_x (1/16), then ``proj_16``
  (1×1 conv-BN-ReLU); the conv3_x output resized ×0.5 again, conv4_x/conv5_x (dilated 2/4, the
  first block of each at half the dilation), PSPNet's pyramid pooling (adaptive average pool →
  1×1 conv-BN-ReLU per bin, upsampled, concatenated *after* the bins with the input, 3×3
  conv-BN-ReLU) and ``proj_32`` (1×1 conv-BN-ReLU);
* two CFFs whose both inputs pass conv-BN-**ReLU** before the sum and ReLU; an FCN head
  (3×3 conv-BN-ReLU, 1×1 classifier) at 1/8. Every resize is bilinear, ``align_corners=False``.

The two auxiliary FCN heads (cascade label guidance, on the first CFF's upsampled low branch at
1/16 and the second's at 1/8) are kept so a converted checkpoint maps completely and can be
fine-tuned; inference never runs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import ConvBNReLU, DilatedResNet
from .config import ICNetConfig
from .icnet import CascadeOutputs, ICNet, adaptive_pool_matrix

__all__ = ["ICNetMMSeg", "mmseg_branch_sizes"]


def _resize(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _shrink(x: Tensor) -> Tensor:
    """mmseg's ``resize(x, scale_factor=0.5)``: output ⌊n/2⌋, source coordinates at scale 2 exactly."""
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def mmseg_branch_sizes(height: int, width: int) -> dict[str, tuple[int, int]]:
    """Spatial size of each branch of the mmseg network for an input size."""
    def s2(n: int) -> int:  # 3×3/s2 conv with padding 1
        return (n - 1) // 2 + 1

    def pool(n: int) -> int:  # 3×3/s2 max-pool, padding 1, ceil_mode
        out = -(-(n - 1) // 2) + 1
        return out - 1 if (out - 1) * 2 >= n + 1 else out

    half = (height // 2, width // 2)
    f16 = tuple(s2(pool(s2(n))) for n in half)
    return {
        "input": (height, width),
        "1/2 (trunk input)": half,
        "1/8 (light branch, logits)": tuple(s2(s2(s2(n))) for n in (height, width)),
        "1/16 (conv3_x)": f16,
        "1/32 (conv4_x, conv5_x)": tuple(n // 2 for n in f16),
    }


class PyramidPoolingConcat(nn.Module):
    """PSPNet's pyramid pooling as mmseg's ICNet uses it: per bin an adaptive average pool and a
    1×1 conv-BN-ReLU, upsampled to the input size; the bins then the input, concatenated; 3×3 conv-BN-ReLU."""

    def __init__(self, in_ch: int, channels: int, bins: tuple[int, ...]) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.branches = nn.ModuleList(ConvBNReLU(in_ch, channels, 1) for _ in self.bins)
        self.bottleneck = ConvBNReLU(in_ch + len(self.bins) * channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        outs = []
        for b, branch in zip(self.bins, self.branches):
            rows = adaptive_pool_matrix(h, b, x)  # the windows of adaptive_avg_pool2d, as matmuls (exports cleanly)
            cols = adaptive_pool_matrix(w, b, x)
            pooled = torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
            outs.append(_resize(branch(pooled), (h, w)))
        return self.bottleneck(torch.cat([*outs, x], dim=1))


class CascadeFeatureFusionReLU(nn.Module):
    """mmseg's CFF: low upsampled to high's size → 3×3 dilation-2 conv-BN-ReLU; high → 1×1 conv-BN-ReLU;
    sum, ReLU. Also returns the low branch after its conv (what the auxiliary head classifies)."""

    def __init__(self, low_ch: int, high_ch: int, out_ch: int) -> None:
        super().__init__()
        self.low = ConvBNReLU(low_ch, out_ch, 3, dilation=2)
        self.high = ConvBNReLU(high_ch, out_ch, 1)

    def forward(self, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        low = self.low(_resize(low, high.shape[-2:]))
        return F.relu(low + self.high(high)), low


class FCNHead(nn.Sequential):
    """mmseg's FCNHead with one conv, no input concat, no dropout: 3×3 conv-BN-ReLU, 1×1 classifier."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__(ConvBNReLU(channels, channels, 3), nn.Conv2d(channels, num_classes, 1))


class ICNetMMSeg(nn.Module):
    """mmseg's ICNet. Eval: N×3×H×W normalised RGB → N×classes×H×W logits (the 1/8 logits
    upsampled, as mmseg's ``predict`` does). Train: ``CascadeOutputs`` (auxiliary heads at 1/16
    and 1/8, main logits at 1/8)."""

    def __init__(self, config: ICNetConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = DilatedResNet(config)
        self.trunk.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        ch = config.high_res_channels
        self.high_res = nn.Sequential(
            ConvBNReLU(3, ch[0], 3, stride=2),
            ConvBNReLU(ch[0], ch[1], 3, stride=2),
            ConvBNReLU(ch[1], ch[2], 3, stride=2),
        )
        self.pyramid = PyramidPoolingConcat(self.trunk.out_channels, config.psp_channels, config.pool_bins)
        self.proj_16 = ConvBNReLU(self.trunk.mid_channels, config.branch_channels, 1)
        self.proj_32 = ConvBNReLU(config.psp_channels, config.branch_channels, 1)
        k = config.cff_channels
        self.cff_16 = CascadeFeatureFusionReLU(config.branch_channels, config.branch_channels, k)
        self.cff_8 = CascadeFeatureFusionReLU(k, ch[2], k)
        self.head = ConvBNReLU(k, k, 3)  # decode head: its conv, then the classifier
        self.classifier = nn.Conv2d(k, config.num_classes, 1)
        self.aux_16 = FCNHead(k, config.num_classes)
        self.aux_8 = FCNHead(k, config.num_classes)

    def training_only_modules(self) -> list[nn.Module]:
        return [self.aux_16, self.aux_8]

    forward = ICNet.forward  # the same contract: forward_coarse, then the shared final upsample in eval

    def forward_coarse(self, x: Tensor) -> Tensor | CascadeOutputs:
        """``forward`` without the final upsample: logits at 1/8 (mmseg's ``mode="tensor"`` output)."""
        t = self.trunk
        sub1 = self.high_res(x)
        f = t.layer2(t.layer1(t.maxpool(t.stem(_shrink(x)))))
        sub2 = self.proj_16(f)
        low = t.layer4(t.layer3(_shrink(f)))
        sub4 = self.proj_32(self.pyramid(low))
        fused16, low16 = self.cff_16(sub4, sub2)
        fused8, low8 = self.cff_8(fused16, sub1)
        logits = self.classifier(self.head(fused8))
        if self.training:
            return CascadeOutputs(sub4=self.aux_16(low16), sub24=self.aux_8(low8), sub124=logits)
        return logits
