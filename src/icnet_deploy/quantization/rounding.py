"""GPTQ weight rounding for a QDQ (INT8) graph: round each conv's weights so its *output* moves least.

Rounding every int8 weight to the nearest step treats the weights one by one; what matters is the
conv's output on the activations it really sees. GPTQ (Frantar et al., "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023; after OBQ, Frantar
& Alistarh 2022) rounds one input column at a time and moves the columns not yet rounded to absorb
the error, weighted by H = Σ x xᵀ, the second moment of the conv's input patches on calibration
images. The conv's bias is one more column (its input is the constant 1) that is never rounded, so
the bias absorbs whatever mean shift the rounding leaves — what bias correction does, in the
least-squares sense.

On ICNet it removes almost all the cost of weight rounding. Fixed-rule INT8 of the session-13
checkpoint at 1024×2048, agreement with fp32 on 3 held-out scenes / 4 photos: nearest rounding
99.54% / 97.67%, with GPTQ 99.56% / 98.14%; int8 activations with the fp32 weights (the floor for
any weight rounding) 99.55% / 98.22%.

Sequential, as in the paper: the convs are rounded in graph order, and each one's H comes from
the graph with every conv before it already rounded, so later convs see (and compensate) the
inputs they will get. Per-channel scales stay those of the quantizer (max |w| / 127), so the
graph's scales, zero points and structure do not change: only int8 weights and the biases do.
The cost is one ONNX Runtime pass over the images per conv, through only the part of the graph
that conv's input needs: 43 s for the 61 quantized convs of the fixed rule with 8 images at
1024×2048 on 2 cores (96 s through the whole graph with H summed in float64).

``round_weights`` computes the rounding on one QDQ graph; ``apply_rounding`` writes it into any
QDQ graph quantized from the same fp32 graph with the same calibration (the sensitivity search's
trial graphs), skipping convs whose weight scales differ.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ArtifactError
from ..progress import StageProgress

__all__ = ["DAMPING", "MAX_POSITIONS", "WEIGHT_ROUNDING_IMAGES", "ConvRounding", "QuantizedConv", "WeightRounding",
           "apply_rounding", "node_attributes", "quantized_convs", "round_weights", "write_bias_steps"]

# Calibration images whose conv inputs make H (fixed rule, photo agreement at 1024×2048 with 4 / 8 /
# 16 images: 98.14 / 98.14 / 98.15%, GPTQ 31 / 43 / 87 s). 8 images at 1024×2048 give each conv of ICNet's
# low-resolution branch 16k input patches (≥ 7 per weight column); the high-resolution convs are
# sampled (MAX_POSITIONS per image) to bound the cost of the K×K products.
WEIGHT_ROUNDING_IMAGES = 8
MAX_POSITIONS = 16384
# Dampening of H (fraction of its mean diagonal), the GPTQ paper's default: keeps H invertible for
# input channels that are always zero after a ReLU and rounds them to the nearest step.
DAMPING = 0.01
BLOCK = 128  # columns rounded per lazy batch update (the paper's block size)



@dataclass
class ConvRounding:
    node: str
    columns: int  # input columns K = C_in × k_h × k_w
    # relative output error on the sampled input patches, tr(ΔW H ΔWᵀ) / tr(W H Wᵀ), nearest → GPTQ
    error_nearest: float
    error_gptq: float


@dataclass
class WeightRounding:
    images: int
    seconds: float
    convs: list[ConvRounding] = field(default_factory=list)
    # conv node name → (int8 weights, per-channel scale, float64 bias)
    weights: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """For the engine manifest: method, counts and how much output error it removed."""
        near = [c.error_nearest for c in self.convs]
        gptq = [c.error_gptq for c in self.convs]
        worst = sorted(self.convs, key=lambda c: -c.error_nearest)[:5]
        return {
            "method": "GPTQ (Frantar et al. 2023): sequential, act-order, bias as a free column",
            "images": self.images,
            "convs": len(self.convs),
            "damping": DAMPING,
            "max_positions_per_image": MAX_POSITIONS,
            "mean_relative_output_error": {"nearest": _round(np.mean(near)) if near else None,
                                           "gptq": _round(np.mean(gptq)) if gptq else None},
            "largest": [{"node": c.node, "nearest": _round(c.error_nearest), "gptq": _round(c.error_gptq)} for c in worst],
            "seconds": round(self.seconds, 1),
        }


def _round(x: float) -> float:
    return float(f"{float(x):.3g}")


# --------------------------------------------------------------------------------------------
# graph plumbing
# --------------------------------------------------------------------------------------------
@dataclass
class QuantizedConv:
    """Where a QDQ conv keeps its int8 weights, their scales and its bias (int32 steps or float)."""
    node: Any  # the Conv NodeProto (in the graph being edited)
    weight_q: str  # int8 weight initializer
    weight_scale: str  # per-channel scale initializer
    input_scale: str | None  # scale of the conv's input DQ (int32 bias steps = input × weight scale)
    bias_q: str | None  # int32 bias initializer (cpu target)
    bias_scale: str | None
    bias_float: str | None  # float bias initializer (tensorrt target)


def quantized_convs(graph: Any) -> list[QuantizedConv]:
    """Convs whose weights are an int8 initializer behind a DequantizeLinear, in graph order."""
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name for i in graph.initializer}

    def dq_of(name: str) -> Any:
        node = producers.get(name)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    found = []
    for conv in graph.node:
        if conv.op_type != "Conv" or len(conv.input) < 2:
            continue
        w_dq, x_dq = dq_of(conv.input[1]), dq_of(conv.input[0])
        if w_dq is None or w_dq.input[0] not in inits or len(w_dq.input) < 2:
            continue
        bias = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
        b_dq = dq_of(bias) if bias else None
        found.append(QuantizedConv(
            node=conv, weight_q=w_dq.input[0], weight_scale=w_dq.input[1],
            input_scale=x_dq.input[1] if x_dq is not None else None,
            bias_q=b_dq.input[0] if b_dq is not None else None,
            bias_scale=b_dq.input[1] if b_dq is not None else None,
            bias_float=bias if bias and b_dq is None and bias in inits else None,
        ))
    return found


def node_attributes(node: Any) -> dict[str, Any]:
    """A NodeProto's attributes as a name → Python value dict (GPTQ and range learning read conv/resize attributes)."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def write_bias_steps(inits: dict[str, Any], conv: QuantizedConv, bias: np.ndarray) -> None:
    """Put the float ``bias`` into ``conv``'s int32 bias initializer, in steps of its bias scale
    (``inits``: name → TensorProto, edited in place)."""
    from onnx import numpy_helper

    scale = numpy_helper.to_array(inits[conv.bias_scale]).astype(np.float64)
    info = np.iinfo(np.int32)
    steps = np.clip(np.round(bias / scale), info.min, info.max).astype(np.int32)
    inits[conv.bias_q].CopyFrom(numpy_helper.from_array(steps, conv.bias_q))


def _write(inits: dict[str, Any], conv: QuantizedConv, weights: np.ndarray, bias: np.ndarray) -> None:
    """Put int8 ``weights`` and float ``bias`` into the graph's initializers (``inits``: name →
    TensorProto, edited in place) for ``conv``."""
    from onnx import numpy_helper

    inits[conv.weight_q].CopyFrom(numpy_helper.from_array(weights.astype(np.int8), conv.weight_q))
    if conv.bias_q is not None:
        write_bias_steps(inits, conv, bias)
    elif conv.bias_float is not None:
        inits[conv.bias_float].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), conv.bias_float))


# --------------------------------------------------------------------------------------------
# the algorithm
# --------------------------------------------------------------------------------------------
def _patches(x: np.ndarray, attrs: dict[str, Any], rng: np.random.Generator) -> Any:
    """(K + 1) × L input patches of a conv (im2col, plus a row of ones for the bias), at most
    ``MAX_POSITIONS`` output positions per image, float32 (H sums their products in float64)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    kh, kw = attrs["kernel_shape"]
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    t = F.pad(t, (left, right, top, bottom))
    cols = []
    for image in t:  # N×C×H×W, one image at a time
        p = F.unfold(image[None], (kh, kw), dilation=attrs.get("dilations", [1, 1]), stride=attrs.get("strides", [1, 1]))[0]
        if p.shape[1] > MAX_POSITIONS:
            p = p[:, torch.from_numpy(np.sort(rng.choice(p.shape[1], MAX_POSITIONS, replace=False)))]
        cols.append(p)
    p = torch.cat(cols, 1)
    return torch.cat([p, torch.ones(1, p.shape[1], dtype=p.dtype)])


def _graph_up_to(model: Any, tensor: str) -> Any:
    """A copy of ``model`` that computes only ``tensor`` (its only output): the nodes it depends
    on and their initializers. ONNX Runtime runs every node of a graph whatever the requested
    output, and the tail of ICNet (fusion, classifier, the full-size Resize) is its costliest part."""
    from onnx import TensorProto, helper

    from ..onnx_graph import graph_dependencies

    graph = model.graph
    needed = graph_dependencies(graph.node, tensor)
    nodes = [n for k, n in enumerate(graph.node) if k in needed]
    used = {i for n in nodes for i in n.input}
    sub = helper.make_graph(
        nodes, graph.name, [i for i in graph.input if i.name in used or i.name == tensor],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)],
        initializer=[i for i in graph.initializer if i.name in used])
    probe = helper.make_model(sub, opset_imports=model.opset_import, ir_version=model.ir_version)
    probe.producer_name = model.producer_name
    return probe


def gptq(w: Any, h: Any, scale: Any, *, damping: float = DAMPING, qmax: int = 127) -> tuple[Any, Any]:
    """GPTQ-round ``w`` (C_out × (K + 1) float64 torch tensor; last column the bias, never rounded)
    on the grid ``scale`` (C_out) × [-qmax, qmax], given H ((K + 1) × (K + 1)). Returns the int8 steps
    (C_out × K, as float64) and the adjusted bias (C_out)."""
    import torch

    w = w.clone()
    k = w.shape[1] - 1
    h = h.clone()
    dead = torch.diag(h)[:k] == 0  # inputs that were always zero: any value works, round to nearest
    h[:k, :k][dead, dead] = 1.0
    h += damping * torch.mean(torch.diag(h)[:k]) * torch.eye(k + 1, dtype=h.dtype)
    order = torch.cat([torch.argsort(torch.diag(h)[:k], descending=True), torch.tensor([k])])  # act-order; bias last
    w, h = w[:, order], h[order][:, order]
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    s = scale.to(torch.float64)
    steps = torch.zeros(w.shape[0], k, dtype=torch.float64)
    for i1 in range(0, k, BLOCK):
        i2 = min(i1 + BLOCK, k)
        block, err = w[:, i1:i2].clone(), torch.zeros(w.shape[0], i2 - i1, dtype=torch.float64)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            q = torch.clamp(torch.round(block[:, i] / s), -qmax, qmax)
            steps[:, i1 + i] = q
            e = (block[:, i] - q * s) / u1[i, i]
            block[:, i:] -= e[:, None] * u1[i, i:][None, :]
            err[:, i] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    inverse = torch.argsort(order[:k])
    return steps[:, inverse], w[:, k]


def _relative_error(w: Any, steps: Any, bias: Any, scale: Any, h: Any) -> float:
    """tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) with W the fp32 [weights | bias] and ΔW its rounded version's error."""
    import torch

    q = torch.cat([steps * scale[:, None], bias[:, None]], 1)
    d = q - w
    ref = torch.einsum("ik,kl,il->", w, h, w).item()
    return float(torch.einsum("ik,kl,il->", d, h, d).item() / ref) if ref > 0 else 0.0


def round_weights(qdq: Any, fp32: Any, batches: Iterable[np.ndarray], *, threads: int | None = None,
                  seed: int = 0, progress: StageProgress | None = None) -> tuple[Any, WeightRounding]:
    """A copy of the QDQ ModelProto ``qdq`` with every quantized conv's int8 weights (and bias)
    GPTQ-rounded, and the rounding (to apply to other graphs with ``apply_rounding``).

    ``fp32``: the pre-processed fp32 ModelProto ``qdq`` was quantized from (same Conv names; the
    fp32 weights and biases). ``batches``: float32 N×3×H×W calibration inputs.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from ..ort_session import create_session

    started = time.perf_counter()
    say = progress or (lambda _s, _d, _t: None)
    batches = list(batches)
    if not batches:
        raise ArtifactError("weight rounding: no calibration images")
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    graph = model.graph
    convs = [c for c in quantized_convs(graph) if node_attributes(c.node).get("group", 1) == 1]
    fp_convs = {n.name: n for n in fp32.graph.node if n.op_type == "Conv"}
    fp_inits = {i.name: i for i in fp32.graph.initializer}
    missing = [c.node.name for c in convs if c.node.name not in fp_convs or fp_convs[c.node.name].input[1] not in fp_inits]
    if missing:
        raise ArtifactError(f"weight rounding: the INT8 graph's conv {missing[0]} has no fp32 counterpart "
                            "(was it quantized from this fp32 graph?)")
    inits = {i.name: i for i in graph.initializer}  # edited in place: the protos stay the graph's
    rng = np.random.default_rng(seed)
    report = WeightRounding(images=len(batches), seconds=0.0)
    with torch.inference_mode():
        for k, conv in enumerate(convs):
            say("weight rounding (GPTQ)", k, len(convs))
            ref = fp_convs[conv.node.name]
            w32 = numpy_helper.to_array(fp_inits[ref.input[1]]).astype(np.float64)
            b32 = (numpy_helper.to_array(fp_inits[ref.input[2]]).astype(np.float64)
                   if len(ref.input) > 2 and ref.input[2] in fp_inits else np.zeros(w32.shape[0]))
            scale = numpy_helper.to_array(inits[conv.weight_scale]).astype(np.float64).reshape(-1)
            if scale.shape[0] != w32.shape[0] or not np.all(scale > 0):
                continue  # per-tensor or degenerate scales: leave nearest rounding
            # the conv's input as the graph computes it now (every conv before it already rounded)
            probe = _graph_up_to(model, conv.node.input[0])
            session = create_session(probe.SerializeToString(), threads=threads)
            name_in = session.get_inputs()[0].name
            attrs = node_attributes(conv.node)
            h = None
            for batch in batches:
                p = _patches(session.run(None, {name_in: batch})[0], attrs, rng)
                pp = (p @ p.T).double()  # float32 products (2× faster), summed per image in float64
                h = pp if h is None else h + pp
            del session, probe
            w = torch.from_numpy(np.concatenate([w32.reshape(w32.shape[0], -1), b32[:, None]], 1))
            s = torch.from_numpy(scale)
            # the quantizer's grid: ±127, or ±64 for reduce_range's 7-bit weights
            qmax = 64 if np.abs(numpy_helper.to_array(inits[conv.weight_q]).astype(np.int32)).max() <= 64 else 127
            steps, bias = gptq(w, h, s, qmax=qmax)
            nearest = torch.clamp(torch.round(w[:, :-1] / s[:, None]), -qmax, qmax)
            report.convs.append(ConvRounding(conv.node.name, int(w.shape[1] - 1),
                                             _relative_error(w, nearest, w[:, -1], s, h),
                                             _relative_error(w, steps, bias, s, h)))
            int8 = steps.numpy().astype(np.int8).reshape(w32.shape)
            _write(inits, conv, int8, bias.numpy())
            report.weights[conv.node.name] = (int8, scale.astype(np.float32), bias.numpy())
    say("weight rounding (GPTQ)", len(convs), len(convs))
    report.seconds = time.perf_counter() - started
    return model, report


def apply_rounding(qdq: Any, rounding: WeightRounding) -> Any:
    """A copy of ``qdq`` with the rounded weights of ``rounding`` for every quantized conv it has
    a rounding for with the same weight scales (others keep nearest rounding)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for conv in quantized_convs(graph):
        found = rounding.weights.get(conv.node.name)
        if found is None:
            continue
        int8, scale, bias = found
        here = numpy_helper.to_array(inits[conv.weight_scale]).astype(np.float32).reshape(-1)
        if here.shape != scale.shape or not np.allclose(here, scale, rtol=1e-6, atol=0):
            continue
        _write(inits, conv, int8, bias)
    return model
