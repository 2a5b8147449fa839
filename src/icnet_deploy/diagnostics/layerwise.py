"""Layerwise divergence: where an engine's graph first departs from its fp32 parent.

What Polygraphy's ``--onnx-outputs mark all`` gives, for our artifacts: every node output of the
engine's ONNX graph and of the fp32 reference graph becomes a graph output, both run on the same
input in ONNX Runtime (CPU), and the float tensors with matching names are compared in the
reference graph's (topological) order. ``first_divergence`` is the first tensor whose error
exceeds the tolerance — usually the layer to keep in higher precision.

Matching names. fp16 graphs (``quantize.convert_fp16``) keep the tensor names (the values are
float16, compared as float32). QDQ graphs (ORT's ``QDQQuantizer``) keep each op's output name
``X`` and add ``X → QuantizeLinear → X_QuantizeLinear_Output → DequantizeLinear →
X_DequantizeLinear_Output``; the DequantizeLinear output is the value the next layer really
consumes (the int8 tensor, dequantized), so it is what gets compared with ``X`` when present.
Weight DequantizeLinear outputs have no node-output counterpart and are skipped, and so is a Conv
output whose Relu the quantizer folded into the uint8 range (ORT CPU target): the Conv then
produces the Relu's tensor name, which is compared instead.

Caveat: with every tensor an output, ONNX Runtime cannot fuse DQ→Conv→Q into its int8 kernels,
so a QDQ graph runs as *simulated* quantization here (float arithmetic on dequantized values) —
the numbers the int8 kernels approximate, not bit-identical to them; the engine's end-to-end
parity in ``check`` is measured on the real, fused graph.

The error metric is ``rel_error = mean|Δ| / mean|reference|`` per tensor (scale-free, so one
tolerance fits every layer); ``max_abs`` and ``mean_abs`` are reported too. Memory: the outputs
are fetched in chunks of at most ``max_bytes`` (shapes from ONNX shape inference), one session
per chunk, so full-size graphs fit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, IcnetDeployError

__all__ = ["compare_layers", "find_reference", "LayerwiseReport", "DEFAULT_TOLERANCE", "DQ_SUFFIX"]

DQ_SUFFIX = "_DequantizeLinear_Output"
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.1}  # rel_error, by the engine's precision
DEFAULT_MAX_BYTES = 1 << 30


@dataclass
class LayerwiseReport:
    engine: str
    reference: str
    tolerance: float
    metric: str
    layers: list[dict]  # in reference order: name, node, op, shape, max_abs, mean_abs, rel_error, exceeds
    first_divergence: dict | None
    worst: dict | None
    matched: int
    reference_tensors: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_reference(engine: str | Path, manifest: Any) -> Path:
    """The fp32 ONNX an engine was built from: its manifest's ``parent_sha256`` matched against
    the paths its details name and the ``.onnx`` files beside it (by their sidecar's sha256, else
    by hashing). Raises ``ArtifactError`` when none is found (pass ``reference=``)."""
    from ..hashing import sha256_file
    from ..manifest import manifest_path, resolve_portable

    engine = Path(engine)
    want = manifest.parent_sha256
    if not want:
        raise ArtifactError(f"{engine}: its manifest names no parent (fp32) model: pass --reference REF.onnx")
    details = manifest.details or {}
    candidates = [p for k in ("parent_path", "source", "source_onnx", "parent", "onnx") if isinstance(details.get(k), str)
                  for p in [*resolve_portable(details[k], engine), Path(details[k])]]
    folders = [engine.parent, engine.parent.parent]
    candidates += [p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.onnx"))]
    for path in dict.fromkeys(candidates):
        if not path.is_file() or path.resolve() == engine.resolve():
            continue
        sidecar = manifest_path(path)
        recorded = None
        if sidecar.is_file():
            try:
                recorded = json.loads(sidecar.read_text()).get("sha256")
            except (OSError, json.JSONDecodeError):
                recorded = None
        if recorded == want or (recorded is None and sha256_file(path) == want):
            if recorded == want and sha256_file(path) != want:
                continue  # a sidecar that lies about its file
            return path
    raise ArtifactError(f"{engine}: its fp32 parent (sha256 {want[:12]}…) is not beside it: pass --reference REF.onnx")


def _load(path: str | Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - truncated or foreign file
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def _tensor_bytes(proto: Any) -> dict[str, int | None]:
    """Estimated bytes of each value (None when shape inference cannot tell)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - an estimate only
        return {}
    sizes: dict[str, int | None] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            itemsize = 2 if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else 4
            sizes[v.name] = int(np.prod([d.dim_value for d in dims])) * itemsize
        else:
            sizes[v.name] = None
    return sizes


def _chunks(names: Sequence[str], sizes: dict[str, int | None], max_bytes: int, fallback: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    used = 0
    for name in names:
        b = sizes.get(name) or fallback
        if chunks[-1] and used + b > max_bytes:
            chunks.append([])
            used = 0
        chunks[-1].append(name)
        used += b
    return [c for c in chunks if c]


def _run_marked(proto: Any, names: Sequence[str], feed: dict[str, np.ndarray], threads: int | None) -> dict[str, np.ndarray]:
    """Values of ``names`` (any node outputs) from one run of ``proto``."""
    import onnx

    from ..ort_session import create_session

    marked = onnx.ModelProto()
    marked.CopyFrom(proto)
    del marked.graph.output[:]
    marked.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    data = marked.SerializeToString()
    session = create_session(data, threads=threads)
    return dict(zip(names, session.run(list(names), feed)))


def compare_layers(
    engine: str | Path,
    reference: str | Path,
    x: np.ndarray,
    *,
    tolerance: float | None = None,
    precision: str | None = None,
    threads: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LayerwiseReport:
    """Compare every matching intermediate tensor of ``engine`` and ``reference`` on input ``x``.

    ``x``: float32 N×3×H×W (cast to float16 for graphs with a float16 input). ``tolerance``
    (``rel_error``) defaults by ``precision`` (``DEFAULT_TOLERANCE``; fp32 when not given).
    """
    started = time.perf_counter()
    if x is None or not isinstance(x, np.ndarray) or x.ndim != 4:
        raise IcnetDeployError("layerwise comparison needs an N×3×H×W input")
    tol = float(tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(precision or "fp32", 1e-4))
    eng, ref = _load(engine), _load(reference)
    ref_nodes = [(n.name, n.op_type, o) for n in ref.graph.node for o in n.output if o]
    eng_outputs = {o for n in eng.graph.node for o in n.output if o}
    qdq = any(n.op_type == "DequantizeLinear" for n in eng.graph.node)

    pairs: list[tuple[str, str, str, str]] = []  # (reference name, engine name, node, op)
    for node, op, name in ref_nodes:
        if qdq and name + DQ_SUFFIX in eng_outputs:
            pairs.append((name, name + DQ_SUFFIX, node, op))
        elif name in eng_outputs:
            pairs.append((name, name, node, op))
    if not pairs:
        raise IcnetDeployError(f"{engine} and {reference} share no tensor names: not the same network, or renamed by a tool")

    def feed_for(proto: Any) -> dict[str, np.ndarray]:
        import onnx

        inp = proto.graph.input[0]
        dtype = np.float16 if inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else np.float32
        return {inp.name: x.astype(dtype)}

    ref_sizes, eng_sizes = _tensor_bytes(ref), _tensor_bytes(eng)
    fallback = int(x.size * 4 * 16)  # unknown shape: assume a 16-channel map at the input size
    sizes = {r: max(ref_sizes.get(r) or fallback, eng_sizes.get(e) or 0) * 2 for r, e, _, _ in pairs}  # both models
    by_ref = {r: (e, node, op) for r, e, node, op in pairs}
    layers: list[dict] = []
    for chunk in _chunks([p[0] for p in pairs], sizes, max_bytes, fallback):
        ref_vals = _run_marked(ref, chunk, feed_for(ref), threads)
        eng_vals = _run_marked(eng, [by_ref[r][0] for r in chunk], feed_for(eng), threads)
        for r in chunk:
            e, node, op = by_ref[r]
            a, b = eng_vals[e], ref_vals[r]
            if not (np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)) or a.shape != b.shape:
                continue
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            diff = np.abs(a32 - b32)
            scale = float(np.abs(b32).mean()) if b32.size else 0.0
            mean_abs = float(diff.mean()) if diff.size else 0.0
            rel = mean_abs / scale if scale > 0 else (0.0 if mean_abs == 0 else float("inf"))
            layers.append({"name": r, "engine_name": e, "node": node, "op": op, "shape": list(b.shape),
                           "max_abs": float(diff.max()) if diff.size else 0.0, "mean_abs": mean_abs, "rel_error": rel,
                           "exceeds": rel > tol})
        del ref_vals, eng_vals
    first = next((row for row in layers if row["exceeds"]), None)
    worst = max(layers, key=lambda row: row["rel_error"]) if layers else None
    notes = []
    if qdq:
        notes.append("QDQ graph compared at DequantizeLinear outputs, run as simulated quantization (see layerwise docs)")
    return LayerwiseReport(
        engine=str(engine), reference=str(reference), tolerance=tol, metric="rel_error = mean|Δ| / mean|reference|",
        layers=layers, first_divergence=first, worst=worst, matched=len(layers), reference_tensors=len(ref_nodes),
        seconds=round(time.perf_counter() - started, 2), notes=notes,
    )
