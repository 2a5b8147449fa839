"""The eager PyTorch baseline every engine is judged against (cpu/cuda, fp32/fp16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable, IcnetDeployError
from .base import Runner

__all__ = ["TorchRunner"]


class TorchRunner(Runner):
    """Runs an ICNet ``nn.Module`` (or loads one from a checkpoint) in eval mode.

    ``precision="fp16"`` runs the model in half precision (CUDA only: CPU fp16 convolutions are
    slow and not what anyone deploys); inputs and logits stay float32 at the interface.
    """

    backend = "torch"

    def __init__(self, model: Any = None, checkpoint: str | Path | None = None, device: str = "cpu",
                 precision: str = "fp32", threads: int | None = None, name: str = "") -> None:
        super().__init__(name or f"eager-{precision}")
        if precision not in ("fp32", "fp16"):
            raise IcnetDeployError(f"eager runner: precision must be fp32 or fp16, got {precision!r}")
        self._model, self._checkpoint = model, checkpoint
        self.device, self.precision, self.threads = device, precision, threads

    def _activate_impl(self) -> None:
        import torch

        from ..model.weights import load_model

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("eager runner: CUDA was requested but torch sees no GPU")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise IcnetDeployError("eager runner: fp16 needs a CUDA device")
        if self.threads:
            torch.set_num_threads(self.threads)
        model = self._model if self._model is not None else load_model(self._checkpoint)
        model = model.eval().to(self.device)
        if self.precision == "fp16":
            model = model.half()
        self._net = model.to(memory_format=torch.channels_last)
        self.num_classes = model.config.num_classes
        self.mean, self.std = model.config.mean, model.config.std
        self.checkpoint_info = getattr(model, "checkpoint_info", None) or {}

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, coarse=False)

    def _infer_for_labels_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, coarse=True)

    @property
    def labels_on_device(self) -> bool:
        """On CUDA, with the Triton kernel: labels from the coarse logits without leaving the GPU."""
        from ..plugins import cuda_available

        return self.device.startswith("cuda") and self.output_kind == "logits" and cuda_available()[0]

    def _predict_labels_impl(self, batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if not self.labels_on_device:
            return super()._predict_labels_impl(batch, size)
        import torch

        from ..plugins import upsample_argmax_cuda

        with torch.inference_mode():
            coarse = self._forward(self._device_input(batch), True)  # float16 logits stay float16: exact either way
            return upsample_argmax_cuda(coarse, size).cpu().numpy()

    def _device_input(self, batch: np.ndarray) -> Any:
        import torch

        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        return x.half() if self.precision == "fp16" else x

    def _run(self, batch: np.ndarray, coarse: bool) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._forward(self._device_input(batch), coarse).float().cpu().numpy()

    def _forward(self, x: Any, coarse: bool) -> Any:
        """The model on a ready device tensor: its full output, or ``forward_coarse``'s where asked and it has one."""
        coarse = coarse and hasattr(self._net, "forward_coarse")  # any other nn.Module: its own output
        return self._net.forward_coarse(x) if coarse else self._net(x)

    def _deactivate_impl(self) -> None:
        del self._net

    def _describe_impl(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision, "provider": "torch eager"}
