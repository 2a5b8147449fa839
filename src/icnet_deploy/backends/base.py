"""One Runner lifecycle for every backend (after Polygraphy's ``backend/base/runner.py``).

The public methods — ``activate``/``infer``/``infer_for_labels``/``predict_labels``/``deactivate``,
the context manager and ``describe`` — live here once: state guards, input validation against
the size rule, timing. A backend overrides only the small ``_activate_impl``/``_infer_impl``/
``_deactivate_impl`` hooks (and, where it can stop before the model's final upsample,
``_infer_for_labels_impl``) and imports its framework lazily inside them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.transforms import preprocess, resize_image, to_labels
from ..errors import IcnetDeployError
from ..model.config import MIN_SIZE

__all__ = ["Runner", "SizeRule", "check_input"]


class SizeRule(dict):
    """{"min": 64, "multiple_of": 1, "dynamic": bool} plus the static (height, width) if any."""


def check_input(batch: Any, *, height: int | None, width: int | None, batch_size: int | None,
                size_rule: dict | None = None, what: str = "input") -> np.ndarray:
    """Validate an N×3×H×W float32 batch against an artifact's shape and size rule."""
    if not isinstance(batch, np.ndarray):
        raise IcnetDeployError(f"{what}: expected a numpy array, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise IcnetDeployError(f"{what}: expected an N×3×H×W batch, got shape {batch.shape}")
    if batch.dtype != np.float32:
        raise IcnetDeployError(f"{what}: expected float32, got {batch.dtype} (use icnet_deploy.preprocess)")
    n, _, h, w = batch.shape
    if batch_size is not None and n != batch_size:
        raise IcnetDeployError(f"{what}: this engine takes batch {batch_size}, got {n}")
    if height is not None and (h, w) != (height, width):
        raise IcnetDeployError(f"{what}: this engine takes {height}×{width} inputs, got {h}×{w} (resize first)")
    rule = size_rule or {}
    smallest = int(rule.get("min", MIN_SIZE))
    if h < smallest or w < smallest:
        raise IcnetDeployError(f"{what}: {h}×{w} is below the minimum size {smallest}×{smallest}")
    multiple = int(rule.get("multiple_of", 1))
    if multiple > 1 and (h % multiple or w % multiple):
        raise IcnetDeployError(f"{what}: {h}×{w} is not a multiple of {multiple}, which this engine requires")
    return np.ascontiguousarray(batch)


class Runner(ABC):
    """Base runner: ``with runner: out = runner.infer(batch)``.

    ``infer`` takes float32 N×3×H×W (the output of ``preprocess``) and returns numpy: logits
    N×C×H×W float32, or labels N×H×W integers for artifacts exported with ``--outputs labels``
    (see ``output_kind``).
    """

    backend: str = "base"
    # Class-level defaults (subclasses may set them before or after ``Runner.__init__``).
    precision: str = "fp32"
    device: str = "cpu"
    manifest: Any = None  # the artifact's Manifest (None for eager runners)

    def __init__(self, name: str = "") -> None:
        self.name = name or self.backend
        self.is_active = False
        self.last_inference_ms: float | None = None
        # Shape contract; subclasses set these from their manifest or model.
        self.input_height: int | None = None
        self.input_width: int | None = None
        self.batch_size: int | None = None
        self.size_rule: dict = {"min": MIN_SIZE, "multiple_of": 1, "dynamic": True}
        self.output_kind: str = "logits"
        self.num_classes: int = 19
        self.mean: tuple[float, float, float] | None = None
        self.std: tuple[float, float, float] | None = None
        self.threads: int | None = None  # CPU threads of the engine, and of its label path on the CPU

    def _adopt_manifest(self, manifest) -> None:
        """Take the shape contract (batch, static size, size rule, output kind, normalisation)
        from an artifact's manifest: one place for every manifest-backed runner."""
        self.manifest, self.precision = manifest, manifest.precision
        batch = manifest.input_shape[0]
        self.batch_size = batch if isinstance(batch, int) else None
        if manifest.input_hw is not None:
            self.input_height, self.input_width = manifest.input_hw
        self.size_rule = dict(manifest.size_rule)
        self.output_kind, self.num_classes = manifest.output_kind, manifest.num_classes
        self.mean, self.std = tuple(manifest.mean), tuple(manifest.std)

    # -- lifecycle -------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            raise IcnetDeployError(f"{self.name}: runner is already active")
        self._activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # -- images in, labels out (shared by infer, bench, check and serving) -----------------
    def input_size_for(self, height: int, width: int) -> tuple[int, int]:
        """The H×W an image of ``height×width`` is fed at: the engine's static size, else the image's
        own, raised to the size rule's minimum and rounded up to its multiple."""
        if self.input_height is not None:
            return int(self.input_height), int(self.input_width)
        rule = self.size_rule or {}
        smallest = int(rule.get("min", MIN_SIZE))
        multiple = max(1, int(rule.get("multiple_of", 1)))
        h, w = max(height, smallest), max(width, smallest)
        return -(-h // multiple) * multiple, -(-w // multiple) * multiple

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 H×W×3 RGB → float32 1×3×h×w for this runner (resized to its input, normalised with its mean/std)."""
        h, w = self.input_size_for(*image.shape[:2])
        resized = resize_image(image, (h, w))
        if self.mean is None or self.std is None:
            raise IcnetDeployError(f"{self.name}: normalisation unknown until the runner is activated")
        return preprocess(np.ascontiguousarray(resized), self.mean, self.std)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Train-id labels (uint8, each at its image's size) for a few images — the simple, unthreaded path."""
        return self.label_images(images, max_batch=1)

    def label_images(self, images: Sequence[np.ndarray], *, max_batch: int | None = None) -> list[np.ndarray]:
        """uint8 H×W×3 RGB images → uint8 train ids, each at its image's size, by the path ``infer``
        takes (``prepare``, the engine up to the logits before its final upsample, the exact labels
        of that upsample): the same labels, byte for byte, whoever calls it (bench, a server, a Ray worker).

        Consecutive images that the engine runs at one size share an engine call, up to ``max_batch``
        (default: all of them) or the engine's static batch (a short last call is padded).
        """
        xs = [self.prepare(image) for image in images]
        limit = self.batch_size or max_batch or max(1, len(xs))
        out: list[np.ndarray] = []
        start = 0
        while start < len(xs):
            end = start + 1
            while end < len(xs) and end - start < limit and xs[end].shape == xs[start].shape:
                end += 1
            x = np.concatenate(xs[start:end], axis=0)
            if self.batch_size is not None and x.shape[0] < self.batch_size:
                x = np.concatenate([x, np.repeat(x[-1:], self.batch_size - x.shape[0], axis=0)], axis=0)
            group = images[start:end]
            sizes = {image.shape[:2] for image in group}
            if len(sizes) == 1:  # the label path in one call (the op on the device where the runner has it)
                out.extend(self.predict_labels(x, sizes.pop())[: len(group)])
            else:
                logits = self.infer_for_labels(x)
                out.extend(to_labels(logits[k], self.output_kind, image.shape[:2], x.shape[-2:], threads=self.threads)[0]
                           for k, image in enumerate(group))
            start = end
        return out

    # -- inference -------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._timed(self._infer_impl, batch)

    def infer_for_labels(self, batch: np.ndarray) -> np.ndarray:
        """What ``infer`` returns, or the logits *before* the model's final bilinear upsample.

        For a caller that only wants labels: ``data.transforms.to_labels`` (``upsample.bilinear_argmax``)
        turns either into the same labels, and skipping the upsample saves the largest tensor
        the model writes (19×H×W floats). Backends that cannot stop early return ``infer``'s output.
        """
        return self._timed(self._infer_for_labels_impl, batch)

    def predict_labels(self, batch: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """N×H×W uint8 train ids at ``size`` (default: the input's), whichever kind of output the artifact has.

        ``infer_for_labels`` then ``data.transforms.to_labels`` (the UpsampleArgmax op on the CPU), or, where
        ``labels_on_device``, the op on the GPU (``plugins.upsample_argmax_cuda``): the same labels,
        and only N×H×W bytes copied to the host.
        """
        size = tuple(int(v) for v in size) if size is not None else tuple(batch.shape[-2:])
        return self._timed(lambda b: self._predict_labels_impl(b, size), batch)

    @property
    def labels_on_device(self) -> bool:
        """True when ``predict_labels`` computes the labels on the device (CUDA runners with the Triton kernel)."""
        return False

    def _timed(self, run, batch: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise IcnetDeployError(f"{self.name}: runner is not active (use `with runner:` or activate())")
        batch = check_input(batch, height=self.input_height, width=self.input_width,
                            batch_size=self.batch_size, size_rule=self.size_rule, what=self.name)
        start = time.perf_counter()
        out = run(batch)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def describe(self) -> dict[str, Any]:
        """What runs: backend, device, precision, provider — for tables and reports."""
        return {"name": self.name, "backend": self.backend,
                "labels_on": "gpu" if self.labels_on_device else "cpu", **self._describe_impl()}

    # -- hooks -----------------------------------------------------------------------------
    def _activate_impl(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def _infer_for_labels_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._infer_impl(batch)

    def _predict_labels_impl(self, batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        out = self._infer_for_labels_impl(batch)
        return np.stack([to_labels(o, self.output_kind, size, threads=self.threads)[0] for o in out])

    def _deactivate_impl(self) -> None:  # noqa: B027 - optional hook
        pass

    def _describe_impl(self) -> dict[str, Any]:
        return {}
