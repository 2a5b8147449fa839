"""The pre- and post-processing models of an exported Triton model repository (Python backend).

``export_repository`` writes, for each, a ``model.py`` of one import line
(``from icnet_deploy.serve.python_models import PreprocessModel as TritonPythonModel``), so the
server runs the toolkit's own functions — ``Runner.prepare`` and ``data.transforms.to_labels`` — and an
ensemble of image → preprocess → engine → postprocess gives ``infer``'s labels. Triton's Python
backend environment needs ``pip install icnet-deploy`` (no torch: numpy, Pillow and the engine's
manifest are all these models read).

The engine's shape contract (input size or size rule, normalisation, output kind) comes from a copy
of its manifest, ``engine.json``, beside each ``model.py``. A model whose config has
``max_batch_size`` > 0 takes and gives batch-first tensors; with 0 (an engine with a static batch)
the image comes without a batch dimension and the engine tensors carry the engine's fixed batch of 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Runner
from ..errors import IcnetDeployError

__all__ = ["EngineContract", "preprocess_request", "postprocess_request", "PreprocessModel", "PostprocessModel",
           "MANIFEST_NAME"]

MANIFEST_NAME = "engine.json"


class EngineContract(Runner):
    """An engine's shape contract read from its manifest, for ``prepare`` and ``to_labels``: nothing runs here."""

    backend = "contract"

    def __init__(self, manifest: Any) -> None:
        super().__init__(f"{manifest.format}-{manifest.precision}")
        self._adopt_manifest(manifest)

    @classmethod
    def from_file(cls, path: str | Path) -> "EngineContract":
        from ..manifest import Manifest

        return cls(Manifest.from_dict(json.loads(Path(path).read_text()), source=str(path)))

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        raise IcnetDeployError(f"{self.name}: a shape contract does not run (the engine runs in Triton)")


def preprocess_request(contract: EngineContract, image: np.ndarray, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ([N,H,W,3], or one [H,W,3] when not ``batched``) → (engine input float32 N×3×h×w,
    image sizes int32 [N,2] or [2])."""
    images = image if batched else image[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise IcnetDeployError(f"image must be uint8 H×W×3 RGB, got {images.dtype} {list(image.shape)}")
    x = np.concatenate([contract.prepare(np.ascontiguousarray(im)) for im in images], axis=0)
    sizes = np.array([im.shape[:2] for im in images], dtype=np.int32)
    return x, (sizes if batched else sizes[0])


def postprocess_request(contract: EngineContract, output: np.ndarray, image_size: np.ndarray,
                        batched: bool) -> np.ndarray:
    """The engine's output for a request → uint8 labels at each image's size ([N,H,W], or [H,W])."""
    from ..data.transforms import to_labels

    sizes = np.asarray(image_size).reshape(-1, 2)  # the engine output is batch-first either way
    labels = [to_labels(o, contract.output_kind, (int(h), int(w)))[0] for o, (h, w) in zip(output, sizes)]
    return np.stack(labels) if batched else labels[0]


class _PythonModel:
    """What both models share: the config, the contract, Triton's request/response plumbing."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # only inside Triton's Python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        folder = Path(args["model_repository"]) / str(args["model_version"])
        self.contract = EngineContract.from_file(folder / MANIFEST_NAME)

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                outputs = self.run(request)
                responses.append(self.pb.InferenceResponse(
                    output_tensors=[self.pb.Tensor(name, np.ascontiguousarray(value)) for name, value in outputs.items()]))
            except Exception as exc:  # noqa: BLE001 - this request's error, the others go on
                responses.append(self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(str(exc))))
        return responses

    def input(self, request: Any, name: str) -> np.ndarray:
        return self.pb.get_input_tensor_by_name(request, name).as_numpy()

    def run(self, request: Any) -> dict[str, np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError


class PreprocessModel(_PythonModel):
    """``image`` (uint8) → ``input`` (the engine's float32 input) and ``image_size`` (int32 H, W)."""

    def run(self, request: Any) -> dict[str, np.ndarray]:
        x, sizes = preprocess_request(self.contract, self.input(request, "image"), self.batched)
        return {"input": x, "image_size": sizes}


class PostprocessModel(_PythonModel):
    """``engine_output`` and ``image_size`` → ``labels`` (uint8 train ids at the image's size)."""

    def run(self, request: Any) -> dict[str, np.ndarray]:
        output = self.input(request, "engine_output")
        return {"labels": postprocess_request(self.contract, output, self.input(request, "image_size"), self.batched)}
