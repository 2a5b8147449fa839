"""Where an INT8 engine's disagreement comes from: weight rounding, range clipping, activation rounding.

Each cause has its own cure — weight rounding: GPTQ (``quantization.rounding``); activations clipped
at their calibrated range: wider ranges (``--tail-cap``, percentile, calibration images);
activation rounding: fp32 layers or more bits — so knowing the split tells a user which knob can
help before they turn any. ``check --int8-breakdown`` measures it on the engine's own graph: from
its QDQ graph we make two more, and all three run in ONNX Runtime (CPU) against the fp32 parent
on the same images:

* **int8 weights only**: every activation QuantizeLinear→DequantizeLinear pair removed (a range
  starting at 0 becomes a Relu: the quantizer folds a conv's Relu into its uint8 range), so only
  the int8 weights and biases differ from fp32;
* **+ activation ranges**: each pair replaced by a Clip at its quantization range — activations
  capped where the engine caps them, but not rounded;
* **engine**: the graph itself, with ONNX Runtime's fused int8 kernels.

Agreement falls from one to the next; the steps are what weight rounding, range clipping and
activation rounding cost. They are steps in that order, not an exact additive split: the effects
interact (GPTQ's biases, for one, absorb part of the activations' rounding bias, so fp32 weights
with int8 activations can agree *less* than the engine: 96.80% on the photos against 97.99%). On
the shipped checkpoint's fixed-rule engine at 1024×2048 with calibrated ranges and `check`'s sets:
photos 99.66 → 98.96 → 97.99%, generated scenes 99.98 → 99.80 → 99.78%.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError

__all__ = ["STEPS", "Int8Breakdown", "activation_pairs", "without_activation_quantization"]

# (key, what the graph keeps quantized) in the order agreement is expected to fall
STEPS = (("weights_only", "int8 weights"), ("ranges", "+ activation ranges"),
         ("engine", "+ activation rounding (engine)"))
LOSSES = (("weight_rounding", "weights_only", None), ("range_clipping", "ranges", "weights_only"),
          ("activation_rounding", "engine", "ranges"))


def _proto(model: Any) -> Any:
    import onnx

    if isinstance(model, (str, Path)):
        return onnx.load(str(model))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def activation_pairs(model: Any) -> list[tuple[Any, Any]]:
    """(QuantizeLinear, DequantizeLinear) node pairs that quantize an activation (not a weight)."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    pairs = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] not in initializers:
            q = producer.get(node.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                raise ArtifactError(f"DequantizeLinear {node.name or node.output[0]!r} reads no QuantizeLinear: "
                                    "not a QDQ graph as build-engine writes them")
            pairs.append((q, node))
    return pairs


def _range(q: Any, initializers: dict[str, Any]) -> tuple[float, float]:
    """The float interval a QuantizeLinear's (per-tensor) scale and zero point can represent."""
    from onnx import numpy_helper

    def value(name: str) -> np.ndarray:
        if name not in initializers:
            raise ArtifactError(f"QuantizeLinear {q.name or q.output[0]!r}: {name!r} is not an initializer")
        return numpy_helper.to_array(initializers[name])

    scale = value(q.input[1])
    zero = value(q.input[2]) if len(q.input) > 2 and q.input[2] else np.array(0, np.uint8)
    if scale.size != 1 or zero.size != 1:
        raise ArtifactError(f"QuantizeLinear {q.name or q.output[0]!r}: per-channel activation quantization "
                            "is not supported here")
    info = np.iinfo(zero.dtype)
    s, z = float(scale.reshape(())), int(zero.reshape(()))
    return (info.min - z) * s, (info.max - z) * s


def without_activation_quantization(model: Any, *, clip: bool) -> Any:
    """A copy of a QDQ graph with its activations unquantized: each activation DequantizeLinear
    becomes a Clip at the pair's range (``clip``), else a Relu where that range starts at 0 and an
    Identity elsewhere; the QuantizeLinears nothing reads any more are dropped. Weights stay int8."""
    from onnx import helper, numpy_helper

    proto = _proto(model)
    graph = proto.graph
    initializers = {i.name: i for i in graph.initializer}
    pairs = activation_pairs(proto)
    replaced = {id(dq): q for q, dq in pairs}
    nodes, bounds = [], []
    for node in graph.node:
        q = replaced.get(id(node))
        if q is None:
            nodes.append(node)
            continue
        lo, hi = _range(q, initializers)
        out, name = node.output[0], node.name or node.output[0]
        if clip:
            names = (f"{name}/range_min", f"{name}/range_max")
            bounds += [numpy_helper.from_array(np.array(v, np.float32), n) for v, n in zip((lo, hi), names)]
            nodes.append(helper.make_node("Clip", [q.input[0], *names], [out], name=f"{name}/clip"))
        else:
            nodes.append(helper.make_node("Relu" if lo == 0 else "Identity", [q.input[0]], [out], name=f"{name}/unquantized"))
    read = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if not (n.op_type == "QuantizeLinear" and not any(o in read for o in n.output))]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(bounds)
    return proto


class Int8Breakdown:
    """Accumulates, image by image, the label agreement with the fp32 ``reference`` of an INT8 QDQ
    ``engine`` and of its two unquantized-activation variants (module docstring), per image set."""

    def __init__(self, engine: str | Path, reference: str | Path, *, threads: int | None = None) -> None:
        from ..ort_session import create_session

        self.engine, self.reference = str(engine), str(reference)
        self._started = time.perf_counter()
        proto = _proto(engine)
        pairs = activation_pairs(proto)
        if not pairs:
            raise ArtifactError(f"{engine}: has no quantized activations (not an INT8 QDQ engine)")
        self.activation_tensors = len({q.input[0] for q, _ in pairs})
        graphs = {"weights_only": without_activation_quantization(proto, clip=False),
                  "ranges": without_activation_quantization(proto, clip=True), "engine": proto}
        self._sessions = {"reference": create_session(self.reference, threads=threads)}
        self._sessions.update({k: create_session(g.SerializeToString(), threads=threads) for k, g in graphs.items()})
        ref, eng = self._sessions["reference"], self._sessions["engine"]
        for what, a, b in (("input", ref.get_inputs()[0], eng.get_inputs()[0]), ("output", ref.get_outputs()[0], eng.get_outputs()[0])):
            if list(a.shape) != list(b.shape):
                raise ArtifactError(f"{reference}: its {what} shape {a.shape} is not the engine's {b.shape}: "
                                    "not the fp32 graph this engine was built from")
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, set_name: str, x: np.ndarray) -> None:
        """One preprocessed N×3×H×W float32 input of the image set ``set_name``."""
        from ..upsample import argmax_classes

        labels = {}
        for key, session in self._sessions.items():
            logits = session.run(None, {session.get_inputs()[0].name: x})[0]
            labels[key] = argmax_classes(np.asarray(logits[0], np.float32))
        c = self._counts.setdefault(set_name, {"images": 0, "pixels": 0, **{k: 0 for k, _ in STEPS}})
        c["images"] += 1
        c["pixels"] += labels["reference"].size
        for key, _ in STEPS:
            c[key] += int((labels[key] == labels["reference"]).sum())

    def result(self) -> dict[str, Any]:
        sets = []
        for set_name, c in self._counts.items():
            agree = {key: round(100.0 * c[key] / c["pixels"], 4) for key, _ in STEPS}
            lost = {loss: round((agree[prev] if prev else 100.0) - agree[step], 4) for loss, step, prev in LOSSES}
            sets.append({"set": set_name, "images": c["images"], "agreement_pct": agree, "lost_pct": lost})
        return {"reference": self.reference, "activation_tensors": self.activation_tensors, "steps": dict(STEPS),
                "sets": sets, "seconds": round(time.perf_counter() - self._started, 2),
                "note": "steps in order, not an additive split: the effects interact"}
