"""One exception family. Each carries a one-sentence, user-facing message.

Library code raises these; only the CLI turns them into printed messages and exit codes
(``IcnetDeployError`` -> exit 2, ``ParityError`` -> exit 1).
"""

from __future__ import annotations

__all__ = [
    "IcnetDeployError",
    "DataError",
    "ModelError",
    "ArtifactError",
    "BackendUnavailable",
    "ParityError",
]


class IcnetDeployError(Exception):
    """Base class: a user mistake or a bad file (exit code 2)."""


class DataError(IcnetDeployError):
    """An image, label or dataset folder that cannot be used."""


class ModelError(IcnetDeployError):
    """A checkpoint or model configuration that cannot be used."""


class ArtifactError(IcnetDeployError):
    """An ONNX model, engine, manifest or cache that is missing, corrupt or mismatched."""


class BackendUnavailable(IcnetDeployError):
    """A backend whose framework or device is not present on this machine."""


class ParityError(Exception):
    """An engine that runs but misses its parity thresholds (exit code 1)."""
