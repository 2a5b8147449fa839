"""ICNet (Zhao et al., ECCV 2018), faithful to the original Caffe design.

Three branches share work:

* **1/2 image → shared trunk.** conv1_x/pool/conv2_x/conv3_1 run once on the half-resolution
  image (output 1/16 of the input). The conv3_1 *features* are resized ×0.5 (1/32) and the
  rest of the trunk (conv3_2.., dilated conv4_x and conv5_x) runs there: no second pass over
  the image.
* **Pyramid pooling** with bins 1, 2, 3, 6, each upsampled and *summed* with its input (no
  per-bin conv, no concat), then a 1×1 conv to ``channels(512)``.
* **Cascade feature fusion** 1/32 → 1/16 (with conv3_1) and 1/16 → 1/8 (with the three-conv
  high-resolution branch on the full image), classifier at 1/4, ×4 bilinear to the input.

Size rule (any H×W ≥ 64): every stride-2 step maps n → ceil(n/2) — the 3×3/s2 convs and the
max-pool with padding 1 do so by construction, and the two feature resizes (image → 1/2,
conv3_1 → 1/32) use the same rule. So 1024×2048 gives branches 512×1024 / 64×128 / 32×64 and
the original's 1025×2049 gives 513×1025 / 65×129 / 33×65, exactly as the Caffe prototxt.
Every upsampling resizes to the *measured* size of the feature it meets, never by a scale
factor, so odd sizes line up. Interpolation is bilinear with ``align_corners=False``
(half-pixel centres): what PyTorch, ONNX Resize, ONNX Runtime and TensorRT agree on.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import ConvBNReLU, DilatedResNet
from .config import ICNetConfig

__all__ = ["ICNet", "CascadeOutputs", "upsample_logits", "PyramidPoolingSum", "CascadeFeatureFusion", "adaptive_pool_matrix", "branch_sizes"]


class CascadeOutputs(NamedTuple):
    """Training-mode outputs: logits at 1/16, 1/8 and 1/4 of the input (cascade label guidance)."""

    sub4: Tensor  # 1/16, from the low-resolution branch
    sub24: Tensor  # 1/8, after the first fusion
    sub124: Tensor  # 1/4, the final classifier


def _half(n):  # ceil(n / 2); works on ints and on traced sizes
    return (n + 1) // 2


def branch_sizes(height: int, width: int) -> dict[str, tuple[int, int]]:
    """Spatial size of each branch for an input size (the documented size rule)."""
    sizes = {"input": (height, width)}
    h, w = height, width
    for name in ("1/2", "1/4", "1/8", "1/16", "1/32"):
        h, w = _half(h), _half(w)
        sizes[name] = (h, w)
    return sizes


def _resize(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample_logits(logits: Tensor, size) -> Tensor:
    """The model's final step: ``forward_coarse``'s 1/4-resolution logits bilinearly to the input size."""
    return _resize(logits, size)


def adaptive_pool_matrix(n, bins: int, like: Tensor) -> Tensor:
    """bins×n averaging matrix with exact ``adaptive_avg_pool`` windows.

    Window i covers [floor(i·n/bins), ceil((i+1)·n/bins)). Built from arange and integer
    arithmetic on the feature size, so the ONNX graph uses Range/Div/Less/MatMul — no Gather,
    no loops — and stays correct when the size is dynamic.
    """
    j = torch.arange(n, device=like.device)
    i = torch.arange(bins, device=like.device)
    start = (i * n) // bins
    end = ((i + 1) * n + bins - 1) // bins
    inside = (j.unsqueeze(0) >= start.unsqueeze(1)) & (j.unsqueeze(0) < end.unsqueeze(1))
    return inside.to(like.dtype) / (end - start).unsqueeze(1).to(like.dtype)


class PyramidPoolingSum(nn.Module):
    """ICNet's pyramid pooling: average pools with the given bins, upsampled and summed with x."""

    def __init__(self, bins: tuple[int, ...]) -> None:
        super().__init__()
        self.bins = tuple(bins)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        out = x
        for b in self.bins:
            rows = adaptive_pool_matrix(h, b, x)  # b×h
            cols = adaptive_pool_matrix(w, b, x)  # b×w
            pooled = torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))  # N×C×b×b
            out = out + _resize(pooled, (h, w))
        return out


class CascadeFeatureFusion(nn.Module):
    """CFF: upsample the low-res feature to the high-res one's size, dilated 3×3 conv + BN,
    plus a 1×1 projection + BN of the high-res feature; sum and ReLU. The auxiliary classifier
    on the upsampled low-res feature is the cascade label guidance head (training only)."""

    def __init__(self, low_ch: int, high_ch: int, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.low = ConvBNReLU(low_ch, out_ch, 3, dilation=2, relu=False)
        self.high = ConvBNReLU(high_ch, out_ch, 1, relu=False)
        self.aux_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        low_up = _resize(low, high.shape[-2:])
        fused = self.relu(self.low(low_up) + self.high(high))
        return fused, low_up


class ICNet(nn.Module):
    """ICNet. Eval: N×3×H×W normalised image → N×classes×H×W logits.
    Train: ``CascadeOutputs`` (1/16, 1/8, 1/4 logits) for the cascade label guidance loss."""

    def __init__(self, config: ICNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ICNetConfig()
        self.trunk = DilatedResNet(config)
        self.pyramid = PyramidPoolingSum(config.pool_bins)
        self.conv5_4 = ConvBNReLU(self.trunk.out_channels, config.channels(512), 1)
        ch = config.high_res_channels
        self.high_res = nn.Sequential(
            ConvBNReLU(3, ch[0], 3, stride=2),
            ConvBNReLU(ch[0], ch[1], 3, stride=2),
            ConvBNReLU(ch[1], ch[2], 3, stride=2),
        )
        k = config.cff_channels
        self.cff_16 = CascadeFeatureFusion(config.channels(512), self.trunk.mid_channels, k, config.num_classes)
        self.cff_8 = CascadeFeatureFusion(k, ch[2], k, config.num_classes)
        self.classifier = nn.Conv2d(k, config.num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor | CascadeOutputs:
        out = self.forward_coarse(x)
        if self.training:
            return out
        return upsample_logits(out, (x.shape[-2], x.shape[-1]))

    def forward_coarse(self, x: Tensor) -> Tensor | CascadeOutputs:
        """``forward`` without the final bilinear upsample: logits at 1/4 of the input (the cascade's outputs in training).

        For callers that only want labels: ``upsample.bilinear_argmax`` gives the same labels
        from these without writing the full-resolution logits.
        """
        height, width = x.shape[-2], x.shape[-1]
        t = self.trunk
        # Shared trunk on the 1/2 image, up to conv3_1 (1/16 of the input).
        half = _resize(x, (_half(height), _half(width)))
        f = t.layer1(t.maxpool(t.stem(half)))
        f16 = t.layer2[0](f)
        # Low-resolution branch: conv3_1 features resized to 1/32, then the deep, dilated part.
        low = _resize(f16, (_half(f16.shape[-2]), _half(f16.shape[-1])))
        low = t.layer4(t.layer3(t.layer2[1:](low)))
        low = self.conv5_4(self.pyramid(low))
        # Two cascade fusions, then the classifier at 1/4.
        fused16, low_up16 = self.cff_16(low, f16)
        high = self.high_res(x)
        fused8, low_up8 = self.cff_8(fused16, high)
        quarter = _resize(fused8, (2 * fused8.shape[-2], 2 * fused8.shape[-1]))
        logits = self.classifier(quarter)
        if self.training:
            return CascadeOutputs(
                sub4=self.cff_16.aux_classifier(low_up16),
                sub24=self.cff_8.aux_classifier(low_up8),
                sub124=logits,
            )
        return logits
