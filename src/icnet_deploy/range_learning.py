"""Learned activation ranges for a QDQ (INT8) graph: each activation's step chosen by the output it makes.

Calibration gives every activation a range from that tensor's own histogram (percentile, capped
at ``--tail-cap`` × its 99th percentile), so how much clipping against how much rounding a range
buys is judged tensor by tensor, never by what it does to the logits. Range learning judges it
there. The engine's own QDQ graph runs in torch (``QDQReplica``) with every activation
fake-quantized at its scale × a learnable factor — rounding and clipping with straight-through
gradients, which gives the step-size gradient of LSQ (Esser et al., "Learned Step Size
Quantization", ICLR 2020) — and the weights frozen at their int8 values (GPTQ's, when it ran).
Adam fits the log-factors so the 1/4-resolution logits match the fp32 graph's on calibration
images, each image's squared error divided by its fp32 logits' mean square (the generated scenes'
massive activations would otherwise drown every other image).

Only scales change — zero points, int8 weights and the graph's structure stay — so the engine
runs at exactly the same speed. A quantized conv's int32 bias is counted in steps of input scale ×
weight scale (ONNX Runtime's QLinearConv takes it so), so each one is re-expressed in its conv's
new input step (``apply_ranges``).

The calibration images are enough: on the shipped checkpoint's fixed-rule engine the factors it
learns on 16 generated ``calib/`` scenes widen the stem's and high-resolution branch's ranges
×1.2–1.3 (the real photographs' textures drive them past the scenes' ranges) and narrow the
cascade fusions' low-resolution inputs ×0.7–0.8, and the photographs, which it never sees, gain:
``check`` at 1024×2048, photos 97.99 → 98.28% (fixed rule), 99.26 → 99.48% (default build).

The step-size gradient is a straight-through estimate, and it can mislead: on the ``tensorrt``
target (symmetric int8 activations, zero point 0: half the steps of a post-ReLU tensor unused) it
raised the error on the images it learned from (shipped checkpoint, fixed rule, 256×512:
normalised error 7.8e-4 → 1.26e-3; the ``cpu`` target 4.5e-4 → 2.2e-4). So ``build_engine``
runs it by default for the ``cpu`` target only, and the learned scales are kept only when they
lower that error; otherwise the calibrated ones stay and the manifest says so (``kept``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.onnxruntime import graph_dependencies
from .errors import ArtifactError
from .weight_rounding import node_attributes, quantized_convs, write_bias_steps

__all__ = ["RANGE_LEARNING_IMAGES", "RANGE_LEARNING_ITERATIONS", "QDQReplica", "RangeLearning", "Unreplicable",
           "apply_ranges", "learn_ranges"]

RANGE_LEARNING_IMAGES = 16
RANGE_LEARNING_ITERATIONS = 100
LEARNING_RATE = 5e-3
# the replica must reproduce ONNX Runtime's labels at least this well before its gradients are trusted
MIN_REPLICA_AGREEMENT = 95.0

OPS = ("QuantizeLinear", "DequantizeLinear", "Conv", "Relu", "Add", "MatMul", "MaxPool", "Resize")

Progress = Callable[[str, int, int], None]


class Unreplicable(ArtifactError):
    """The graph has something ``QDQReplica`` does not run (an op type, a computed Resize size, a
    per-channel activation scale), or the replica does not reproduce ONNX Runtime: the build keeps
    the calibrated ranges and says why."""


def _needed(nodes: Sequence[Any], output: str, available: Iterable[str]) -> list[Any]:
    """The nodes ``output`` depends on, in an order that runs (ONNX Runtime's quantizer appends
    its Q/DQ nodes at the end of the node list, so the graph's own order is not one)."""
    ready = set(available) | {""}
    pending = sorted(graph_dependencies(nodes, output))
    ordered: list[Any] = []
    while pending:
        runnable = [k for k in pending if all(i in ready for i in nodes[k].input)]
        if not runnable:
            raise Unreplicable(f"range learning: the graph has a cycle or a missing input at {nodes[pending[0]].name}")
        ordered.extend(nodes[k] for k in runnable)
        ready.update(o for k in runnable for o in nodes[k].output)
        pending = [k for k in pending if k not in set(runnable)]
    return ordered


class QDQReplica:
    """The QDQ graph ``model`` in torch, up to ``output``, with learnable activation scales.

    Every activation ``QuantizeLinear → DequantizeLinear`` pair becomes one fake-quantization at
    ``scale × exp(log_factor)`` (one factor per scale initializer: tensors that share a scale in
    the graph, such as a MaxPool's input and output, keep sharing it); weights and biases behind a
    ``DequantizeLinear`` are constants. Only the op types of ``OPS`` run (ICNet's QDQ graph);
    another type is an ``Unreplicable`` error naming it (so is a dynamic export's computed Resize size).
    """

    def __init__(self, model: Any, output: str | None = None) -> None:
        import torch
        from onnx import numpy_helper

        graph = model.graph
        self.input = graph.input[0].name
        self.output = output or graph.output[0].name
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.nodes = _needed(list(graph.node), self.output, [self.input, *inits])
        unknown = sorted({n.op_type for n in self.nodes} - set(OPS))
        if unknown:
            raise Unreplicable(f"range learning: the graph has op types it cannot replicate in torch: {', '.join(unknown)}")
        self.consts: dict[str, Any] = {}
        quantized: dict[str, Any] = {}  # Q output → its Q node
        for n in self.nodes:
            if n.op_type == "DequantizeLinear" and n.input[0] in inits:  # a weight or a bias
                q = inits[n.input[0]].astype(np.float64)
                s = inits[n.input[1]].astype(np.float64)
                zp = inits[n.input[2]].astype(np.float64) if len(n.input) > 2 and n.input[2] else np.zeros(())
                if s.ndim == 1 and q.ndim > 1:
                    shape = [1] * q.ndim
                    shape[node_attributes(n).get("axis", 1)] = -1
                    s, zp = s.reshape(shape), zp.reshape(shape)
                self.consts[n.output[0]] = torch.from_numpy(((q - zp) * s).astype(np.float32))
            elif n.op_type == "QuantizeLinear":
                if n.input[0] in inits:
                    raise Unreplicable(f"range learning: {n.name} quantizes a constant in the graph; expected "
                                       "quantized initializers behind a DequantizeLinear")
                quantized[n.output[0]] = n
        for n in self.nodes:
            if n.op_type == "DequantizeLinear" and n.output[0] not in self.consts:
                q = quantized.get(n.input[0])
                if q is None or list(q.input[1:3]) != list(n.input[1:3]):
                    raise Unreplicable(f"range learning: {n.name} does not dequantize with its QuantizeLinear's "
                                       "scale and zero point")
        for name, value in inits.items():
            if name not in self.consts and value.dtype.kind == "f":
                self.consts[name] = torch.from_numpy(np.array(value, dtype=np.float32))
        self.sizes = {name: tuple(int(v) for v in value) for name, value in inits.items() if value.dtype == np.int64}
        self.scale_names = sorted({q.input[1] for q in quantized.values()})
        index = {s: k for k, s in enumerate(self.scale_names)}
        self.quant: dict[str, tuple[int, float, int, int, int]] = {}  # Q output → (factor index, scale, zp, lo, hi)
        for out, q in quantized.items():
            scale = inits[q.input[1]]
            zp = inits[q.input[2]] if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
            if scale.size != 1:
                raise Unreplicable(f"range learning: {q.name} quantizes an activation per channel; expected one scale")
            info = np.iinfo(zp.dtype)
            self.quant[out] = (index[q.input[1]], float(scale.reshape(())), int(zp.reshape(())), info.min, info.max)
        self.log_factor = torch.nn.Parameter(torch.zeros(len(self.scale_names)))

    def factors(self) -> dict[str, float]:
        """Scale initializer → learned factor."""
        return dict(zip(self.scale_names, (float(v) for v in self.log_factor.detach().exp())))

    def __call__(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        factor = torch.exp(self.log_factor)
        values: dict[str, Any] = {self.input: x}

        def get(name: str) -> Any:
            return values[name] if name in values else self.consts[name]

        for n in self.nodes:
            op, out = n.op_type, n.output[0]
            if op == "QuantizeLinear":
                k, scale, zp, lo, hi = self.quant[out]
                step = scale * factor[k]
                q = get(n.input[0]) / step
                q = q + (torch.round(q) - q).detach()  # straight through the rounding (half to even, as ONNX)
                values[out] = (torch.clamp(q + zp, lo, hi) - zp) * step
                continue
            if op == "DequantizeLinear":
                values[out] = self.consts[out] if out in self.consts else values[n.input[0]]
                continue
            a = node_attributes(n)
            if op == "Resize":  # its roi / scales / sizes are constants read in _resize
                values[out] = self._resize(n, get(n.input[0]), a)
                continue
            ins = [get(i) if i else None for i in n.input]
            if op == "Conv":
                values[out] = self._conv(ins, a)
            elif op == "Relu":
                values[out] = F.relu(ins[0])
            elif op == "Add":
                values[out] = ins[0] + ins[1]
            elif op == "MatMul":
                values[out] = torch.matmul(ins[0], ins[1])
            else:
                values[out] = self._maxpool(ins[0], a)
        return values[self.output]

    @staticmethod
    def _conv(ins: list[Any], a: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
        x = ins[0] if (top, left) == (bottom, right) else F.pad(ins[0], (left, right, top, bottom))
        padding = (top, left) if (top, left) == (bottom, right) else 0
        return F.conv2d(x, ins[1], ins[2] if len(ins) > 2 else None, stride=a.get("strides", [1, 1]),
                        padding=padding, dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))

    @staticmethod
    def _maxpool(x: Any, a: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
        if (top, left) != (bottom, right):
            x, top, left = F.pad(x, (left, right, top, bottom), value=float("-inf")), 0, 0
        return F.max_pool2d(x, a["kernel_shape"], a.get("strides", a["kernel_shape"]), padding=(top, left),
                            dilation=a.get("dilations", [1, 1]), ceil_mode=bool(a.get("ceil_mode", 0)))

    def _resize(self, n: Any, x: Any, a: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        mode = a.get("mode", b"nearest").decode()
        ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
        if mode != "linear" or ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners") or a.get("antialias", 0):
            raise Unreplicable(f"range learning: {n.name} is a {mode} Resize ({ctm}); only bilinear resizes are replicated")
        if len(n.input) > 3 and n.input[3]:
            size = self.sizes.get(n.input[3])
            if size is None:
                raise Unreplicable(f"range learning: {n.name}'s output size is computed in the graph; expected a constant")
            size = size[2:]
        else:
            scales = self.consts[n.input[2]].tolist()
            size = [int(np.floor(d * s)) for d, s in zip(x.shape[2:], scales[2:])]
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=ctm == "align_corners")


@dataclass
class RangeLearning:
    images: int
    iterations: int
    learning_rate: float
    seconds: float = 0.0
    # mean over the images of the normalised squared logit error against fp32, before → after
    loss_before: float = 0.0
    loss_after: float = 0.0
    # label agreement of the torch replica with ONNX Runtime on the first image (before learning)
    replica_agreement_pct: float = 0.0
    # False when the learned scales did not lower the error on the images: the calibrated ones stay
    kept: bool = True
    factors: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """For the engine manifest: what was fitted, how much it helped, the largest changes."""
        items = sorted(self.factors.items(), key=lambda kv: kv[1])
        values = np.array([v for _, v in items]) if items else np.ones(1)
        return {
            "method": "learned activation scales (LSQ step-size gradient, post-training; weights frozen)",
            "images": self.images,
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "normalised_logit_error": {"before": _round(self.loss_before), "after": _round(self.loss_after)},
            "replica_agreement_pct": round(self.replica_agreement_pct, 4),
            "kept": self.kept,
            "scales": len(items),
            "factor_median": _round(float(np.median(values))),
            "narrowed_most": [{"scale": k, "factor": _round(v)} for k, v in items[:5]],
            "widened_most": [{"scale": k, "factor": _round(v)} for k, v in items[::-1][:5]],
            "seconds": round(self.seconds, 1),
        }


def _round(x: float) -> float:
    return float(f"{float(x):.4g}")


def apply_ranges(qdq: Any, factors: dict[str, float]) -> Any:
    """A copy of the QDQ ModelProto ``qdq`` with each named activation scale multiplied by its
    factor, and each quantized conv's int32 bias re-expressed in steps of its new input scale ×
    weight scale (the same real bias; TensorRT-target graphs keep float biases and need nothing)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    inits = {i.name: i for i in model.graph.initializer}
    missing = sorted(set(factors) - set(inits))
    if missing:
        raise ArtifactError(f"range learning: the graph has no scale {missing[0]!r}")
    old = {name: numpy_helper.to_array(inits[name]).astype(np.float64) for name in factors}
    for conv in quantized_convs(model.graph):
        if conv.input_scale not in factors or conv.bias_q is None:
            continue
        bias = (numpy_helper.to_array(inits[conv.bias_q]).astype(np.float64)
                * numpy_helper.to_array(inits[conv.bias_scale]).astype(np.float64))
        step = old[conv.input_scale] * factors[conv.input_scale] * \
            numpy_helper.to_array(inits[conv.weight_scale]).astype(np.float64)
        inits[conv.bias_scale].CopyFrom(numpy_helper.from_array(step.astype(np.float32).reshape(
            numpy_helper.to_array(inits[conv.bias_scale]).shape), conv.bias_scale))
        write_bias_steps(inits, conv, bias)
    for name, factor in factors.items():
        value = old[name] * factor
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    return model


def _loss(logits: Any, target: Any, norm: float) -> Any:
    """Squared logit error against fp32, divided by the fp32 logits' mean square."""
    return ((logits - target) ** 2).mean() / norm


def _coarse(model: Any) -> tuple[Any, str]:
    """(graph to run, its output): the graph cut before its final logit Resize when it has one."""
    from .backends.onnxruntime import coarse_logits_graph, final_resize_source

    cut = coarse_logits_graph(model)
    if cut is None:
        return model, model.graph.output[0].name
    return cut, final_resize_source(model)


def learn_ranges(qdq: Any, fp32: Any, batches: Iterable[np.ndarray], *, iterations: int = RANGE_LEARNING_ITERATIONS,
                 learning_rate: float = LEARNING_RATE, threads: int | None = None,
                 progress: Progress | None = None) -> tuple[Any, RangeLearning]:
    """A copy of the QDQ ModelProto ``qdq`` with learned activation scales, and the record.

    ``fp32``: the fp32 ModelProto ``qdq`` was quantized from (the teacher). ``batches``: float32
    N×3×H×W calibration inputs; the loop cycles through them, one per iteration. The factors kept
    are the mean of the log-factors over the last half of the iterations (single steps jitter with
    the image they saw), and only if they lower the error on the images (``report.kept``; the
    step-size gradient is a straight-through estimate, not the true one): else ``qdq`` is returned
    unchanged.
    """
    import onnx
    import torch

    from .backends.onnxruntime import create_session
    from .upsample import labels_of

    started = time.perf_counter()
    say = progress or (lambda _s, _d, _t: None)
    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
    if not batches:
        raise ArtifactError("range learning: no calibration images")
    if iterations < 1:
        raise ArtifactError(f"range learning: iterations must be at least 1, got {iterations}")
    report = RangeLearning(images=len(batches), iterations=iterations, learning_rate=learning_rate)
    stage = "learning activation ranges"
    say(stage, 0, iterations)
    teacher_graph, _ = _coarse(fp32)
    engine_graph, output = _coarse(qdq)
    replica = QDQReplica(qdq, output)
    if not replica.scale_names:
        raise Unreplicable("range learning: the graph quantizes no activations")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        teacher = create_session(teacher_graph.SerializeToString(), threads=threads)
        name = teacher.get_inputs()[0].name
        targets = [torch.from_numpy(teacher.run(None, {name: b})[0]) for b in batches]
        del teacher
        engine = create_session(engine_graph.SerializeToString(), threads=threads)
        ort_logits = engine.run(None, {engine.get_inputs()[0].name: batches[0]})[0]
        del engine
        inputs = [torch.from_numpy(b) for b in batches]
        norms = [float((t * t).mean()) or 1.0 for t in targets]

        def mean_loss(first: Any = None) -> float:
            """Mean loss over the images; ``first``: image 0's replica output when already computed."""
            with torch.no_grad():
                outs = (first if k == 0 and first is not None else replica(x) for k, x in enumerate(inputs))
                return float(np.mean([float(_loss(o, t, m)) for o, t, m in zip(outs, targets, norms)]))

        with torch.no_grad():
            first = replica(inputs[0])
        mine = first.numpy()
        if mine.shape != ort_logits.shape:
            raise Unreplicable(f"range learning: the torch replica's output is {mine.shape}, ONNX Runtime's {ort_logits.shape}")
        report.replica_agreement_pct = 100.0 * float(np.mean(labels_of(mine) == labels_of(ort_logits)))
        if report.replica_agreement_pct < MIN_REPLICA_AGREEMENT:
            raise Unreplicable(f"range learning: the torch replica of the INT8 graph agrees with ONNX Runtime on only "
                                f"{report.replica_agreement_pct:.2f}% of the labels; not learning from it")
        report.loss_before = mean_loss(first)
        optimizer = torch.optim.Adam([replica.log_factor], lr=learning_rate)
        kept = torch.zeros_like(replica.log_factor)
        averaged = 0
        for it in range(iterations):
            k = it % len(inputs)
            loss = _loss(replica(inputs[k]), targets[k], norms[k])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if it >= iterations // 2:
                kept += replica.log_factor.detach()
                averaged += 1
            say(stage, it + 1, iterations)
        with torch.no_grad():
            replica.log_factor.copy_(kept / averaged)
        report.loss_after = mean_loss()
    finally:
        torch.set_num_threads(previous_threads)
    report.factors = replica.factors()
    report.kept = report.loss_after < report.loss_before
    report.seconds = time.perf_counter() - started
    if not report.kept:  # never worse than calibration on the images it learned from
        model = onnx.ModelProto()
        model.CopyFrom(qdq)
        return model, report
    return apply_ranges(qdq, report.factors), report
