"""Artifact manifests: what a file the toolkit wrote *is*, in one place.

Every artifact ``X`` (ONNX model, QDQ model, engine, compiled package) has a JSON sidecar
``X.json`` beside it (``model.onnx`` → ``model.onnx.json``); ONNX files also carry the
same manifest in their metadata (key ``icnet_deploy.manifest``) so a copied ``.onnx`` keeps its
identity. Commands read manifests instead of guessing from file names, and refuse an
artifact whose bytes no longer match the sha256 its manifest recorded.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .fileio import atomic_write_text
from .hashing import sha256_file

__all__ = ["Manifest", "manifest_path", "write_manifest", "read_manifest", "library_versions", "ONNX_METADATA_KEY", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
ONNX_METADATA_KEY = "icnet_deploy.manifest"
FORMATS = ("onnx", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class Manifest:
    format: str  # "onnx" | "tensorrt" | "torch"
    precision: str  # "fp32" | "fp16" | "int8"
    input_name: str  # graph input name
    input_shape: list  # N×3×H×W; strings ("batch", "height", "width") for dynamic axes
    input_dtype: str  # "float32" (or "float16" when asked)
    output_name: str
    output_kind: str  # "logits" (N×C×H×W float) | "labels" (N×H×W ids)
    output_dtype: str  # "float32" | "float16" | "uint8" | "int32" | "int64"
    num_classes: int
    class_names: list[str]
    palette: list[list[int]]  # RGB per class id
    mean: list[float]  # RGB, 0..255 units
    std: list[float]
    size_rule: dict  # {"min": 64, "multiple_of": 1, "dynamic": false} — the runtime enforces it
    model_config: dict  # the ICNetConfig the weights belong to
    checkpoint_sha256: str | None  # the source weights (None = random weights)
    checkpoint_path: str | None = None
    target: str = "any"  # "cpu" | "tensorrt" | "cuda" | "any": which runtime the graph is tuned for
    parent_sha256: str | None = None  # the artifact this one was built from (fp32 ONNX for engines)
    sha256: str | None = None  # of the artifact file itself (sidecar only: a file can't hold its own hash)
    versions: dict = field(default_factory=dict)  # library versions at creation
    created: str = ""  # ISO 8601, UTC
    details: dict = field(default_factory=dict)  # format-specific: calibration, fp32 layers, parity, GPU, opset…
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ArtifactError(f"manifest: unknown format {self.format!r}")
        if self.precision not in PRECISIONS:
            raise ArtifactError(f"manifest: unknown precision {self.precision!r}")
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    @property
    def dynamic(self) -> bool:
        return bool(self.size_rule.get("dynamic"))

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """Static (height, width), or None for a dynamic-size artifact."""
        h, w = self.input_shape[2], self.input_shape[3]
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> "Manifest":
        known = set(cls.__dataclass_fields__)
        missing = [
            f for f, spec in cls.__dataclass_fields__.items()
            if f not in data and spec.default is MISSING and spec.default_factory is MISSING
        ]
        if missing:
            raise ArtifactError(f"{source}: manifest lacks fields {missing}")
        if data.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise ArtifactError(f"{source}: manifest schema {data['schema']} is newer than this icnet-deploy understands")
        return cls(**{k: v for k, v in data.items() if k in known})


def manifest_path(artifact: str | Path) -> Path:
    """``model.onnx`` → ``model.onnx.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def library_versions(*names: str) -> dict[str, str]:
    """Versions of the named libraries that are importable (plus python and icnet-deploy)."""
    from importlib import metadata

    from . import __version__

    versions = {"python": platform.python_version(), "icnet_deploy": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(artifact: str | Path, manifest: Manifest) -> Path:
    """Record the artifact's sha256 and write the sidecar atomically; returns its path."""
    artifact = Path(artifact)
    manifest.sha256 = sha256_file(artifact)
    path = manifest_path(artifact)
    atomic_write_text(path, manifest.to_json() + "\n")
    return path


def _from_onnx_metadata(artifact: Path) -> Manifest | None:
    try:
        import onnx

        model = onnx.load(str(artifact), load_external_data=False)
    except Exception as exc:  # a truncated or foreign file
        raise ArtifactError(f"{artifact}: not a readable ONNX model ({type(exc).__name__})") from None
    for prop in model.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            try:
                return Manifest.from_dict(json.loads(prop.value), str(artifact))
            except json.JSONDecodeError:
                raise ArtifactError(f"{artifact}: embedded manifest is not valid JSON") from None
    return None


def read_manifest(artifact: str | Path, verify: bool = True) -> Manifest:
    """The artifact's manifest (sidecar first, then ONNX metadata).

    With ``verify``, the file's sha256 must equal the one the sidecar recorded: a truncated,
    replaced or edited artifact is refused instead of silently run.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise ArtifactError(f"{artifact}: file not found")
    sidecar = manifest_path(artifact)
    if sidecar.is_file():
        try:
            manifest = Manifest.from_dict(json.loads(sidecar.read_text()), str(sidecar))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{sidecar}: manifest is not valid JSON ({exc.msg})") from None
        if verify and manifest.sha256 and sha256_file(artifact) != manifest.sha256:
            raise ArtifactError(
                f"{artifact}: contents do not match its manifest (sha256 differs): truncated, replaced or edited since it was built"
            )
        return manifest
    if artifact.suffix.lower() == ".onnx":
        manifest = _from_onnx_metadata(artifact)
        if manifest is not None:
            return manifest
    raise ArtifactError(f"{artifact}: no manifest ({sidecar.name} missing): not an icnet-deploy artifact")
