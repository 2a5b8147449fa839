"""Artifact manifests: what a file the toolkit wrote *is*, in one place, and proof it was not edited.

Every artifact ``X`` (ONNX model, QDQ model, engine, compiled package) has a JSON sidecar
``X.json`` beside it (``model.onnx`` → ``model.onnx.json``); ONNX files also carry the
same manifest in their metadata (key ``icnet_deploy.manifest``) so a copied ``.onnx`` keeps its
identity. Commands read manifests instead of guessing from file names, so nothing in a manifest
is trusted as read (``read_manifest``):

* **the file**: the sidecar's ``sha256`` (required) must be the artifact's; an ONNX file's
  ``graph_sha256`` must be its graph's (``hashing.graph_sha256``: nodes and weights, not the
  metadata), which is what a copied ``.onnx`` without its sidecar is checked by;
* **the manifest itself**: ``manifest_sha256`` is the hash of its canonical JSON (every field but
  ``sha256`` and itself), and the sidecar must equal the copy embedded in the ONNX file;
* **the fields**: types and ranges (``mean``/``std`` finite, ``std`` > 0, one name and colour per
  class, …), and for ONNX agreement with the graph: input/output names, shapes and element
  types, and the precision with the graph's contents (QuantizeLinear/DequantizeLinear nodes ⇔
  int8, float16 weights ⇔ fp16).

A mismatch is an ``ArtifactError`` naming the file and the field. This makes edits and mix-ups
evident; it is not a signature (whoever can write the file can recompute the hashes).
Manifests of schema 1 (before the hashes) are still read when their sidecar has a ``sha256``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .fileio import atomic_write_text
from .hashing import graph_sha256, is_sha256, sha256_bytes, sha256_file

__all__ = [
    "Manifest",
    "manifest_path",
    "portable_path",
    "resolve_portable",
    "write_manifest",
    "read_manifest",
    "embed_manifest",
    "ONNX_METADATA_KEY",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 2  # 2: graph_sha256 and manifest_sha256
ONNX_METADATA_KEY = "icnet_deploy.manifest"
FORMATS = ("onnx", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_KINDS = ("logits", "labels")
# manifest dtype name -> ONNX TensorProto element type
ONNX_DTYPES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "float16": 10}
_UNHASHED = ("sha256", "manifest_sha256")  # the file's hash (sidecar only) and the manifest's own
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


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
    graph_sha256: str | None = None  # ONNX: hashing.graph_sha256 of the graph (None for other formats)
    manifest_sha256: str | None = None  # of the canonical JSON of every field but sha256 and this one

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

    def canonical_sha256(self) -> str:
        """The manifest's own hash: its canonical JSON without ``sha256`` and ``manifest_sha256``, so
        the sidecar and the copy embedded in the ONNX file (which cannot know the file's hash) share it."""
        data = {k: v for k, v in self.to_dict().items() if k not in _UNHASHED}
        return sha256_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())

    def seal(self, proto: Any = None) -> None:
        """Record the graph's hash (``proto``: the ONNX ModelProto this manifest describes; None for
        other formats) and then the manifest's own hash. The last step before it is written."""
        self.schema = SCHEMA_VERSION
        self.graph_sha256 = graph_sha256(proto) if proto is not None else None
        self.validate("manifest")
        self.manifest_sha256 = self.canonical_sha256()

    def validate(self, source: str) -> None:
        """Refuse a field of the wrong type or out of range (``ArtifactError`` naming it)."""
        problem = _field_problem(self)
        if problem:
            raise ArtifactError(f"{source}: manifest field {problem[0]!r} {problem[1]}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> "Manifest":
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: manifest is not a JSON object")
        known = set(cls.__dataclass_fields__)
        missing = [
            f for f, spec in cls.__dataclass_fields__.items()
            if f not in data and spec.default is MISSING and spec.default_factory is MISSING
        ]
        if missing:
            raise ArtifactError(f"{source}: manifest lacks fields {missing}")
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ArtifactError(f"{source}: manifest field 'schema' must be an integer, got {schema!r}")
        if schema > SCHEMA_VERSION:
            raise ArtifactError(f"{source}: manifest schema {schema} is newer than this icnet-deploy understands")
        for name in ("format", "precision"):
            if data[name] not in (FORMATS if name == "format" else PRECISIONS):
                raise ArtifactError(f"{source}: manifest field {name!r} is unknown: {data[name]!r}")
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        manifest.validate(source)
        return manifest


# --------------------------------------------------------------------------------------------
# field checks
# --------------------------------------------------------------------------------------------
def _is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field_problem(m: Manifest) -> tuple[str, str] | None:
    """(field, what is wrong) for the first bad field, or None."""
    for name in ("input_name", "output_name", "created", "target"):
        if not isinstance(getattr(m, name), str) or (name != "created" and not getattr(m, name)):
            return name, f"must be a non-empty string, got {getattr(m, name)!r}"
    shape = m.input_shape
    if (not isinstance(shape, list) or len(shape) != 4 or shape[1] != 3
            or not all(_is_int(d) or (isinstance(d, str) and d) for d in shape)):
        return "input_shape", f"must be [N, 3, H, W] with positive integers or axis names, got {shape!r}"
    if m.input_dtype not in ("float32", "float16"):
        return "input_dtype", f"must be float32 or float16, got {m.input_dtype!r}"
    if m.output_kind not in OUTPUT_KINDS:
        return "output_kind", f"must be one of {', '.join(OUTPUT_KINDS)}, got {m.output_kind!r}"
    if m.output_dtype not in ONNX_DTYPES:
        return "output_dtype", f"must be one of {', '.join(ONNX_DTYPES)}, got {m.output_dtype!r}"
    if not _is_int(m.num_classes):
        return "num_classes", f"must be an integer ≥ 1, got {m.num_classes!r}"
    if not isinstance(m.class_names, list) or len(m.class_names) != m.num_classes \
            or not all(isinstance(n, str) for n in m.class_names):
        return "class_names", f"must be {m.num_classes} names (one per class)"
    if not isinstance(m.palette, list) or len(m.palette) != m.num_classes or not all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v, 0) and v <= 255 for v in c) for c in m.palette):
        return "palette", f"must be {m.num_classes} RGB colours of integers 0..255"
    for name in ("mean", "std"):
        values = getattr(m, name)
        if not isinstance(values, list) or len(values) != 3 or not all(_is_number(v) for v in values):
            return name, f"must be 3 finite numbers (RGB, 0..255 units), got {values!r}"
    if not all(v > 0 for v in m.std):
        return "std", f"must be positive (the input is divided by it), got {m.std!r}"
    rule = m.size_rule
    if not isinstance(rule, dict) or not all(_is_int(rule.get(k, 1)) for k in ("min", "multiple_of")):
        return "size_rule", f"must be a dict with positive integers min and multiple_of, got {rule!r}"
    if not isinstance(m.model_config, dict):
        return "model_config", "must be a JSON object"
    if m.model_config.get("num_classes", m.num_classes) != m.num_classes:
        return "num_classes", f"is {m.num_classes} but model_config says {m.model_config.get('num_classes')!r}"
    for name in ("checkpoint_sha256", "parent_sha256", "sha256", "graph_sha256", "manifest_sha256"):
        value = getattr(m, name)
        if value is not None and not is_sha256(value):
            return name, f"must be a sha256 (64 hex digits) or null, got {value!r}"
    if m.checkpoint_path is not None and not isinstance(m.checkpoint_path, str):
        return "checkpoint_path", "must be a string or null"
    for name in ("versions", "details"):
        if not isinstance(getattr(m, name), dict):
            return name, "must be a JSON object"
    return None


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def manifest_path(artifact: str | Path) -> Path:
    """``model.onnx`` → ``model.onnx.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def portable_path(target: str | Path, artifact: str | Path) -> str:
    """How a manifest names another file (the checkpoint an artifact came from): its path relative to
    the artifact's folder when the two sit in one project tree (at most two levels up), else its file
    name alone — never an absolute path of the machine that wrote it. Readers resolve it against the
    artifact's folder (``resolve_portable``)."""
    import os

    try:
        relative = Path(os.path.relpath(Path(target).resolve(), Path(artifact).resolve().parent))
    except ValueError:  # another drive (Windows)
        return Path(target).name
    return relative.as_posix() if relative.parts[:3].count("..") < 3 else Path(target).name


def resolve_portable(recorded: str, artifact: str | Path) -> list[Path]:
    """Where a ``portable_path`` may point: relative to the artifact's folder, then beside the artifact."""
    import os

    here = Path(artifact).parent
    return list(dict.fromkeys([Path(os.path.normpath(here / recorded)), here / Path(recorded).name]))


def embed_manifest(proto: Any, manifest: Manifest) -> None:
    """Seal ``manifest`` for the graph of ``proto`` and store it in ``proto``'s metadata (replacing
    any earlier copy). Write the file from ``proto`` afterwards, then ``write_manifest``."""
    import onnx

    manifest.seal(proto)
    keep = [p for p in proto.metadata_props if p.key != ONNX_METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=ONNX_METADATA_KEY, value=manifest.to_json()))


def write_manifest(artifact: str | Path, manifest: Manifest) -> Path:
    """Record the artifact's sha256 and write the sidecar atomically; returns its path.

    ONNX artifacts are sealed by ``embed_manifest`` before the file is written; other formats
    (no graph to hash) are sealed here.
    """
    artifact = Path(artifact)
    if manifest.format != "onnx":
        manifest.seal(None)
    elif manifest.graph_sha256 is None:
        raise ArtifactError(f"{artifact}: an ONNX manifest is sealed by embed_manifest before the file is written")
    manifest.sha256 = sha256_file(artifact)
    path = manifest_path(artifact)
    atomic_write_text(path, manifest.to_json() + "\n")
    return path


# --------------------------------------------------------------------------------------------
# reading and verifying
# --------------------------------------------------------------------------------------------
def _load_onnx(artifact: Path) -> Any:
    try:
        import onnx

        return onnx.load(str(artifact), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ArtifactError(f"{artifact}: not a readable ONNX model ({type(exc).__name__})") from None


def _embedded(proto: Any, artifact: Path) -> Manifest | None:
    for prop in proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            try:
                data = json.loads(prop.value)
            except json.JSONDecodeError:
                raise ArtifactError(f"{artifact}: embedded manifest is not valid JSON") from None
            return Manifest.from_dict(data, f"{artifact} (embedded manifest)")
    return None


def _read_sidecar(sidecar: Path) -> Manifest:
    try:
        data = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{sidecar}: manifest is not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{sidecar}: cannot read the manifest ({exc})") from None
    return Manifest.from_dict(data, str(sidecar))


def _dims(value_info: Any) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def _graph_problem(m: Manifest, proto: Any) -> tuple[str, str] | None:
    """(field, what disagrees) between a manifest and the ONNX graph it describes, or None."""
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or inputs[0].name != m.input_name:
        return "input_name", f"is {m.input_name!r}, the graph's inputs are {[i.name for i in inputs]}"
    if not graph.output or graph.output[0].name != m.output_name:
        return "output_name", f"is {m.output_name!r}, the graph's outputs are {[o.name for o in graph.output]}"
    graph_in, graph_out = inputs[0], graph.output[0]
    dims = _dims(graph_in)
    if len(dims) != 4 or any((isinstance(want, int) and have != want) or (isinstance(want, str) and isinstance(have, int))
                             for want, have in zip(m.input_shape, dims)):
        return "input_shape", f"is {m.input_shape}, the graph's input is {dims}"
    for name, info, dtype in (("input_dtype", graph_in, m.input_dtype), ("output_dtype", graph_out, m.output_dtype)):
        if info.type.tensor_type.elem_type != ONNX_DTYPES[dtype]:
            return name, f"is {dtype}, the graph's is ONNX element type {info.type.tensor_type.elem_type}"
    out = _dims(graph_out)
    rank = 4 if m.output_kind == "logits" else 3
    if out and len(out) != rank:
        return "output_kind", f"is {m.output_kind} (rank {rank}), the graph's output has rank {len(out)}"
    if out and m.output_kind == "logits" and isinstance(out[1], int) and out[1] != m.num_classes:
        return "num_classes", f"is {m.num_classes}, the graph outputs {out[1]} channels"
    has_qdq = any(n.op_type in _QDQ_OPS for n in graph.node)
    has_fp16 = any(t.data_type == ONNX_DTYPES["float16"] for t in graph.initializer)
    found = "int8" if has_qdq else "fp16" if has_fp16 else "fp32"
    if found != m.precision:
        what = ("QuantizeLinear/DequantizeLinear nodes" if has_qdq else "float16 weights" if has_fp16
                else "neither Q/DQ nodes nor float16 weights")
        return "precision", f"is {m.precision}, but the graph has {what} ({found})"
    return None


def _first_difference(a: Manifest, b: Manifest) -> str | None:
    da, db = a.to_dict(), b.to_dict()
    for key in sorted(set(da) | set(db)):
        if key != "sha256" and json.dumps(da.get(key), sort_keys=True) != json.dumps(db.get(key), sort_keys=True):
            return key
    return None


def _verify_file(artifact: Path, manifest: Manifest, where: str) -> None:
    """The sidecar's ``sha256`` is required and must be the artifact's."""
    if manifest.sha256 is None:
        raise ArtifactError(f"{where}: manifest field 'sha256' is missing: the artifact's integrity cannot be "
                            "checked (rebuild it)")
    if sha256_file(artifact) != manifest.sha256:
        raise ArtifactError(f"{artifact}: contents do not match its manifest (sha256 differs): truncated, "
                            "replaced or edited since it was built")


def _verify(artifact: Path, manifest: Manifest, where: str, *, sidecar: bool, proto: Any = None,
            embedded: Manifest | None = None) -> None:
    """The checks of the module docstring after the file's sha256, in the order that names the edited
    field first."""
    if proto is not None:
        if sidecar:
            if embedded is None:
                raise ArtifactError(f"{artifact}: carries no embedded manifest, so it is not the ONNX file "
                                    f"{where} describes")
            key = _first_difference(manifest, embedded)
            if key is not None:
                raise ArtifactError(f"{artifact}: manifest field {key!r} differs between {where} and the copy "
                                    "embedded in the ONNX file")
        problem = _graph_problem(manifest, proto)
        if problem:
            raise ArtifactError(f"{where}: manifest field {problem[0]!r} {problem[1]}")
        if manifest.schema >= 2 and manifest.graph_sha256 != graph_sha256(proto):
            raise ArtifactError(f"{artifact}: manifest field 'graph_sha256' does not match the graph: the model was "
                                "changed after its manifest was written")
        if manifest.schema < 2 and not sidecar:
            raise ArtifactError(f"{artifact}: has no {manifest_path(artifact).name} and its embedded manifest (schema "
                                f"{manifest.schema}) carries no graph hash to check it by: keep the sidecar beside it "
                                "or rebuild it")
    if manifest.schema >= 2 and manifest.manifest_sha256 != manifest.canonical_sha256():
        raise ArtifactError(f"{where}: manifest field 'manifest_sha256' does not match the manifest's contents: "
                            "edited after it was written")


def read_manifest(artifact: str | Path, verify: bool = True) -> Manifest:
    """The artifact's manifest (sidecar first, then ONNX metadata), its fields validated.

    With ``verify`` (the default) the integrity checks of the module docstring run as well: a
    truncated, replaced or edited artifact or manifest is refused instead of silently run.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise ArtifactError(f"{artifact}: file not found")
    sidecar = manifest_path(artifact)
    is_onnx = artifact.suffix.lower() == ".onnx"
    if sidecar.is_file():
        manifest = _read_sidecar(sidecar)
        if verify:
            _verify_file(artifact, manifest, str(sidecar))
            proto = _load_onnx(artifact) if manifest.format == "onnx" else None
            embedded = _embedded(proto, artifact) if proto is not None else None
            _verify(artifact, manifest, str(sidecar), sidecar=True, proto=proto, embedded=embedded)
        return manifest
    if is_onnx:
        proto = _load_onnx(artifact)
        manifest = _embedded(proto, artifact)
        if manifest is not None:
            if verify:
                _verify(artifact, manifest, f"{artifact} (embedded manifest)", sidecar=False, proto=proto)
            return manifest
    raise ArtifactError(f"{artifact}: no manifest ({sidecar.name} missing): not an icnet-deploy artifact")
