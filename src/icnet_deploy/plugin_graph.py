"""ONNX graphs whose labels come from the UpsampleArgmax op (a TensorRT plugin), and back.

The model's graph ends in ``Resize(logits at 1/4 → H×W, linear, half_pixel)``; a labels export adds
ArgMax and a Cast to uint8. ``with_upsample_argmax`` replaces that ending with one custom-domain
node and a Cast::

    UpsampleArgmax(coarse logits N×C×h×w, image N×3×H×W) → N×H×W int32 ─ Cast → "labels" N×H×W uint8

(domain ``icnet_deploy``, attribute ``plugin_namespace="icnet_deploy"``: what TensorRT's ONNX parser
needs to find the plugin ``icnet_deploy::UpsampleArgmax``; the image is read for its size only).
The 19×H×W float logits are never written. ONNX Runtime has no kernel for the node: such a graph
is for TensorRT only (``backends.onnxruntime`` refuses it).

``without_upsample_argmax`` is the inverse: the node (and its Cast) become a Resize of the coarse
logits to the image's size, the same Resize the export had (linear, half_pixel; constant sizes for
a static graph, computed from the two tensors' shapes for a dynamic one), so an INT8 or FP16 build
can calibrate and measure parity on logits, and put the node back before TensorRT parses the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelError
from .plugins import OP_DOMAIN, OP_NAME, OP_VERSION

__all__ = ["has_upsample_argmax", "with_upsample_argmax", "without_upsample_argmax", "LABELS_OUTPUT"]

LABELS_OUTPUT = "labels"
LOGITS_OUTPUT = "logits"
_OP_OUTPUT = "upsample_argmax_labels"


def _op_node(proto: Any) -> Any | None:
    return next((n for n in proto.graph.node if n.op_type == OP_NAME and n.domain == OP_DOMAIN), None)


def has_upsample_argmax(proto: Any) -> bool:
    """Whether the graph contains the UpsampleArgmax node."""
    return _op_node(proto) is not None


def _dims(value_info: Any) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _set_opset(proto: Any, domain: str, version: int | None) -> None:
    """Add (``version``) or remove (None) the opset import of ``domain``."""
    from onnx import helper

    keep = [o for o in proto.opset_import if o.domain != domain]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    if version is not None:
        proto.opset_import.append(helper.make_opsetid(domain, version))


def with_upsample_argmax(proto: Any) -> Any:
    """A copy of a logits graph (ending in the model's bilinear Resize) that outputs uint8 labels via the op."""
    from onnx import TensorProto, helper

    from .onnx_graph import coarse_logits_graph

    graph = coarse_logits_graph(proto)  # everything up to the Resize, its input as the only output
    if graph is None:
        raise ModelError("the graph does not end in the model's bilinear Resize of the logits (half-pixel, linear): "
                         f"there is nothing for {OP_NAME} to replace")
    source = graph.graph.output[0].name
    image = graph.graph.input[0]
    in_dims = _dims(image)
    out_dims = [in_dims[0], in_dims[2], in_dims[3]]
    op = helper.make_node(OP_NAME, [source, image.name], [_OP_OUTPUT], name="upsample_argmax", domain=OP_DOMAIN,
                          plugin_namespace=OP_DOMAIN)
    cast = helper.make_node("Cast", [_OP_OUTPUT], [LABELS_OUTPUT], name="labels_uint8", to=TensorProto.UINT8)
    graph.graph.node.extend([op, cast])
    graph.graph.value_info.append(helper.make_tensor_value_info(_OP_OUTPUT, TensorProto.INT32, out_dims))
    del graph.graph.output[:]
    graph.graph.output.append(helper.make_tensor_value_info(LABELS_OUTPUT, TensorProto.UINT8, out_dims))
    _set_opset(graph, OP_DOMAIN, int(OP_VERSION))
    return graph


def without_upsample_argmax(proto: Any) -> Any:
    """A copy of a graph with the op in which it is a Resize of the coarse logits to the image's size again,
    output ``logits`` (float32 N×C×H×W). Raises ``ModelError`` if the graph has no such node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    op = _op_node(proto)
    if op is None:
        raise ModelError(f"the graph has no {OP_DOMAIN}:{OP_NAME} node")
    source, image = op.input[0], op.input[1]
    tail = {op.output[0]} | {o for n in proto.graph.node if op.output[0] in n.input for o in n.output}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    kept = [n for n in proto.graph.node if n is not op and not set(n.output) & tail]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    inferred = onnx.shape_inference.infer_shapes(out)
    known = {v.name: _dims(v) for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    n_c = (known.get(source) or [None, None])[:2]
    in_dims = known.get(image) or _dims(proto.graph.input[0])
    h_w = in_dims[2:4]
    if all(isinstance(d, int) and d > 0 for d in [*n_c, *h_w]):  # static: constant sizes, as the export had them
        sizes = "upsample_sizes"
        out.graph.initializer.append(numpy_helper.from_array(np.array([*n_c, *h_w], np.int64), sizes))
        resize_inputs = [source, "", "", sizes]
    else:  # dynamic: N, C of the logits and H, W of the image, at run time
        nodes = [
            helper.make_node("Shape", [source], ["upsample_nc"], name="upsample_shape_logits", start=0, end=2),
            helper.make_node("Shape", [image], ["upsample_hw"], name="upsample_shape_image", start=2, end=4),
            helper.make_node("Concat", ["upsample_nc", "upsample_hw"], ["upsample_sizes"], name="upsample_sizes", axis=0),
        ]
        out.graph.node.extend(nodes)
        resize_inputs = [source, "", "", "upsample_sizes"]
    out.graph.node.append(helper.make_node(
        "Resize", resize_inputs, [LOGITS_OUTPUT], name="upsample_logits", mode="linear",
        coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, nearest_mode="floor"))
    del out.graph.output[:]
    out_dims = [n_c[0] or in_dims[0], n_c[1] or "classes", *h_w]
    out.graph.output.append(helper.make_tensor_value_info(LOGITS_OUTPUT, TensorProto.FLOAT, out_dims))
    stale = {_OP_OUTPUT, LABELS_OUTPUT}
    keep_info = [v for v in out.graph.value_info if v.name not in stale]
    del out.graph.value_info[:]
    out.graph.value_info.extend(keep_info)
    _set_opset(out, OP_DOMAIN, None)
    return out
