"""Pure ONNX graph helpers (no runtime): where a graph's final upsample of the logits reads from,
what a tensor depends on, and the graph that stops before that upsample (the label path's input)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .hashing import graph_sha256 as _hash_graph

__all__ = ["block_of", "coarse_logits_graph", "final_resize_source", "graph_dependencies", "graph_sha256", "load_proto"]


def final_resize_source(proto: Any) -> str | None:
    """The tensor a graph's final bilinear ``Resize`` of the logits reads (the 1/4-resolution logits); None if it has none.

    The graph ICNet exports ends in ``Resize(logits at 1/4 → H×W, linear, half_pixel)``. Labels
    graphs (ArgMax at the end) and any graph that does not end in such a Resize give None.
    """
    from onnx import helper

    graph = proto.graph
    if len(graph.output) != 1:
        return None
    final = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if final is None or final.op_type != "Resize":
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in final.attribute}
    if (attrs.get("mode", b"nearest") != b"linear" or attrs.get("antialias", 0)
            or attrs.get("coordinate_transformation_mode", b"half_pixel") not in (b"half_pixel", b"pytorch_half_pixel")):
        return None
    return final.input[0]


def graph_dependencies(nodes: Sequence[Any], tensor: str) -> set[int]:
    """Indices of the ``nodes`` that ``tensor`` depends on (its producer included), whatever their order."""
    producers = {o: k for k, n in enumerate(nodes) for o in n.output}
    needed: set[int] = set()
    stack = [tensor]
    while stack:
        k = producers.get(stack.pop())
        if k is None or k in needed:
            continue
        needed.add(k)
        stack.extend(i for i in nodes[k].input if i)
    return needed


def coarse_logits_graph(proto: Any) -> Any | None:
    """A copy of the graph that stops before its final bilinear Resize of the logits; None if it has none.

    Everything before that Resize (``final_resize_source``) is kept and nothing else is touched,
    so the new output is exactly the tensor the Resize read. ``upsample.bilinear_argmax`` then
    gives the labels the full graph's argmax would (see ``Runner.infer_for_labels``).
    """
    import onnx
    from onnx import helper

    graph = proto.graph
    source = final_resize_source(proto)
    if source is None:
        return None
    kept = graph_dependencies(graph.node, source)  # the quantizer does not keep nodes sorted
    needed = {source} | {i for k in kept for i in graph.node[k].input if i}
    coarse = onnx.ModelProto()
    coarse.CopyFrom(proto)
    del coarse.graph.node[:]
    coarse.graph.node.extend(graph.node[k] for k in sorted(kept))  # original order
    inits = [t for t in coarse.graph.initializer if t.name in needed]
    del coarse.graph.initializer[:]
    coarse.graph.initializer.extend(inits)
    old = graph.output[0].type.tensor_type
    dims = [d.dim_param or d.dim_value for d in old.shape.dim]
    out_dims = dims[:2] + [None, None] if len(dims) == 4 else None
    del coarse.graph.output[:]
    coarse.graph.output.append(helper.make_tensor_value_info(source, old.elem_type, out_dims))
    return coarse


def load_proto(model: Any) -> Any:
    """An ``onnx.ModelProto`` from a proto (returned as is) or a file; a clear error for a missing or unreadable file."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ArtifactError(f"{path}: ONNX model not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def graph_sha256(model: Any) -> str:
    """Hash of the graph alone (nodes, weights, I/O), not of metadata such as creation time:
    re-exporting the same weights at the same size gives the same hash."""
    return _hash_graph(load_proto(model))


def block_of(node: str) -> str:
    """The block a node belongs to, from its exported name: a ResNet stage's residual block
    (``/layer3/layer3.2/…`` → ``layer3/layer3.2``), else the top-level module (``/pyramid/MatMul_5``
    → ``pyramid``, ``/layer2.1/conv/conv.0/Conv`` → ``layer2.1``). Unnamed nodes are their own block."""
    parts = [p for p in node.split("/") if p]
    if len(parts) < 2:
        return node
    if len(parts) >= 3 and parts[1].startswith(parts[0] + "."):
        return f"{parts[0]}/{parts[1]}"
    return parts[0]
