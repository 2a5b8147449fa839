"""Quantization-aware fine-tuning: train through the noise the INT8 engine will add.

Why: post-training INT8 of the shipped ICNet loses ~2% of the pixels when the dilated
low-resolution branch is quantized (its "massive activations" on flat sky force wide ranges, so
ordinary activations get few levels, and many sky pixels sit on a knife edge). Fine-tuning with
the activations fake-quantized the way ``build-engine --int8 --target cpu`` quantizes them
(uint8, asymmetric, per tensor, at every quantized Conv's input and the pyramid pooling's input)
teaches the weights to keep their decisions under that noise.

Not fake-quantized: the convs that read the normalised image and the classifiers, the layers
the INT8 build keeps in fp32 by rule; weights (per-channel int8 in the engine, a far smaller
error). Ranges follow a moving-average min/max, a stand-in for the build's percentile
calibration (which runs again on the fine-tuned weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

__all__ = ["FakeQuantHooks", "attach_fake_quant"]


@dataclass
class FakeQuantHooks:
    """The fake quantizers (module name → FakeQuantize) and their hook handles."""

    quantizers: dict[str, FakeQuantize] = field(default_factory=dict)
    handles: list[Any] = field(default_factory=list)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Plain fp32 inside (validation measures the fp32 model the checkpoint ships)."""
        for fq in self.quantizers.values():
            fq.disable_fake_quant()
            fq.disable_observer()
        try:
            yield
        finally:
            for fq in self.quantizers.values():
                fq.enable_fake_quant()
                fq.enable_observer()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _uint8_per_tensor() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine, averaging_constant=0.01)


def attach_fake_quant(model: nn.Module, num_classes: int) -> FakeQuantHooks:
    """Fake-quantize the input of every Conv2d the INT8 build quantizes (all but the image-reading
    convs and the ``num_classes``-output classifiers) and of the pyramid pooling."""
    hooks = FakeQuantHooks()

    def pre_hook(fq: FakeQuantize) -> Any:
        return lambda _module, args: (fq(args[0]), *args[1:])

    for name, module in model.named_modules():
        conv = isinstance(module, nn.Conv2d) and module.in_channels != 3 and module.out_channels != num_classes
        if conv or type(module).__name__ == "PyramidPoolingSum":
            fq = _uint8_per_tensor()
            hooks.quantizers[name] = fq
            hooks.handles.append(module.register_forward_pre_hook(pre_hook(fq)))
    return hooks
