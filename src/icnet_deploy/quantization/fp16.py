"""FP16 as a graph transform with fp32 islands.

``convert_fp16``: ``onnxruntime.transformers.float16.convert_float_to_float16`` (the maintained copy
of onnxconverter-common's converter; it ships with onnxruntime, so no extra dependency) with
``keep_io_types`` and fp32 islands for Resize and the pyramid pooling MatMuls (reductions over
whole feature maps), plus the trunk's stem (``FP16_KEEP_BLOCKS``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from ..onnx_graph import block_of, load_proto

__all__ = ["FP16_KEEP_BLOCKS", "FP16_KEEP_OPS", "convert_fp16", "default_fp16_fp32_nodes"]

# FP16: ops that stay fp32 (resampling and whole-map reductions lose most in half precision).
FP16_KEEP_OPS = ("Resize", "MatMul")
# FP16: blocks (``block_of`` names, first part) kept fp32 as well: the trunk's stem, which reads
# the (half-size) image. Measured at 1024×2048 on the shipped checkpoint (4f687445) against fp32,
# real photographs (the set whose near-tied pixels flip first) / scenes, once the fp32 islands
# really are fp32 (``_drop_fp16_round_trips``: otherwise every activation between two fp32 nodes
# is still rounded to fp16): all-fp16 99.932% / 99.998%, stem fp32 99.948%, stem and layer1 99.955%
# (check's fp16 gate is 99.9; with the rounded islands the same three gave 99.889, 99.903 and 99.927%). The stem is 12.8% of the MACs
# (layer1 another 6.5%): on a GPU that is what the photos' margin costs; ``--fp32-layer`` replaces it.
FP16_KEEP_BLOCKS = ("stem",)


def default_fp16_fp32_nodes(model: Any) -> list[str]:
    """Nodes the FP16 build keeps in fp32 besides the ``FP16_KEEP_OPS`` types: every node of the
    ``FP16_KEEP_BLOCKS`` (by exported name; a graph without such names gets none)."""
    return [n.name for n in load_proto(model).graph.node if block_of(n.name).split("/")[0] in FP16_KEEP_BLOCKS]


def convert_fp16(model: Any, *, keep_ops: Sequence[str] = FP16_KEEP_OPS, keep_nodes: Sequence[str] = (),
                 keep_io_types: bool = True) -> Any:
    """fp16 weights and activations with fp32 islands (``keep_ops`` types, ``keep_nodes`` names);
    the graph's input and output stay fp32 unless ``keep_io_types=False``."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    proto = onnx.ModelProto()
    proto.CopyFrom(load_proto(model))
    with contextlib.redirect_stdout(io.StringIO()):
        converted = convert_float_to_float16(
            proto, keep_io_types=keep_io_types, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_ops),
            node_block_list=list(keep_nodes),
        )
    proto = _drop_fp16_round_trips(converted)
    OnnxModel(proto).topological_sort()  # the converter appends its Casts at the end; keep the graph valid ONNX
    return proto


def _drop_fp16_round_trips(proto: Any) -> Any:
    """Remove every fp32 → fp16 → fp32 Cast pair the converter leaves between two fp32 nodes.

    ``convert_float_to_float16`` casts each blocked (fp32) node's output to fp16 and each blocked
    node's input back to fp32, so between two fp32 neighbours — all through the kept stem and
    layer1, the pyramid's MatMuls, the Resizes, even the input image before its Resize — every
    activation was rounded to fp16: "fp32 islands" that were not. Each fp32 reader now reads the
    fp32 tensor itself (the fp16 Cast stays where fp16 nodes read it too). At the graph's output
    (``keep_io_types``: the final Resize's output cast to fp16 and back) the output keeps its name
    and stays float32: it is the Resize's output itself, so ``coarse_logits_graph`` finds the Resize.
    """
    import onnx
    from onnx import TensorProto

    graph = proto.graph
    typed = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*typed.graph.value_info, *typed.graph.input, *typed.graph.output]}
    types |= {t.name: t.data_type for t in graph.initializer}
    outputs = {o.name for o in graph.output}

    def cast_to(node: Any, dtype: int) -> bool:
        return node is not None and node.op_type == "Cast" and any(
            a.name == "to" and a.i == dtype for a in node.attribute)

    def readers(name: str) -> list[Any]:
        return [n for n in graph.node if name in n.input]

    for outer in list(graph.node):
        if not cast_to(outer, TensorProto.FLOAT):
            continue
        producer = {o: n for n in graph.node for o in n.output}
        inner = producer.get(outer.input[0])
        if not cast_to(inner, TensorProto.FLOAT16) or types.get(inner.input[0]) != TensorProto.FLOAT:
            continue
        source, result = inner.input[0], outer.output[0]
        if result in outputs:  # keep the output's name: the source's producer writes it instead
            last = producer.get(source)
            if last is None or source in outputs or readers(source) != [inner] or readers(inner.output[0]) != [outer]:
                continue
            last.output[list(last.output).index(source)] = result
            graph.node.remove(inner)
            graph.node.remove(outer)
            continue
        for node in readers(result):
            for k, name in enumerate(node.input):
                if name == result:
                    node.input[k] = source
        graph.node.remove(outer)
        if not readers(inner.output[0]) and inner.output[0] not in outputs:
            graph.node.remove(inner)
    return proto
