"""The part of Caffe's message schema a ``.caffemodel`` needs, built at run time (no Caffe, no protoc).

Field numbers and types are those of BVLC ``src/caffe/proto/caffe.proto`` (and, for the ``BN``
layer, of the PSPNet fork the ICNet release was built with: ``bn_param = 152``). Messages and
fields left out are skipped by the parser as unknown fields, so a full caffemodel parses.

Why descriptors at run time instead of a committed ``caffe_pb2.py``: a protoc-generated module
pins the protobuf runtime to its generator's major version (onnx brings whatever protobuf it
wants), while ``descriptor_pb2`` + ``message_factory`` work the same on protobuf 3.20 to 7.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["caffe_messages"]

# (message, [(field, number, type, label, message type or None, packed)])
_OPT, _REP = "optional", "repeated"
_SCHEMA: dict[str, list[tuple[str, int, str, str, str | None, bool]]] = {
    "BlobShape": [("dim", 1, "int64", _REP, None, True)],
    "BlobProto": [
        ("shape", 7, "message", _OPT, "BlobShape", False),
        ("data", 5, "float", _REP, None, True),
        ("diff", 6, "float", _REP, None, True),
        ("double_data", 8, "double", _REP, None, True),
        ("double_diff", 9, "double", _REP, None, True),
        ("num", 1, "int32", _OPT, None, False),
        ("channels", 2, "int32", _OPT, None, False),
        ("height", 3, "int32", _OPT, None, False),
        ("width", 4, "int32", _OPT, None, False),
    ],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32", _OPT, None, False),
        ("bias_term", 2, "bool", _OPT, None, False),
        ("pad", 3, "uint32", _REP, None, False),
        ("kernel_size", 4, "uint32", _REP, None, False),
        ("group", 5, "uint32", _OPT, None, False),
        ("stride", 6, "uint32", _REP, None, False),
        ("dilation", 18, "uint32", _REP, None, False),
        ("pad_h", 9, "uint32", _OPT, None, False),
        ("pad_w", 10, "uint32", _OPT, None, False),
        ("kernel_h", 11, "uint32", _OPT, None, False),
        ("kernel_w", 12, "uint32", _OPT, None, False),
        ("stride_h", 13, "uint32", _OPT, None, False),
        ("stride_w", 14, "uint32", _OPT, None, False),
    ],
    "BatchNormParameter": [
        ("use_global_stats", 1, "bool", _OPT, None, False),
        ("moving_average_fraction", 2, "float", _OPT, None, False),
        ("eps", 3, "float", _OPT, None, False),
    ],
    "BNParameter": [  # PSPNet's BN layer: blobs slope, bias, mean, variance
        ("momentum", 3, "float", _OPT, None, False),
        ("eps", 4, "float", _OPT, None, False),
        ("frozen", 5, "bool", _OPT, None, False),
    ],
    "ScaleParameter": [
        ("axis", 1, "int32", _OPT, None, False),
        ("num_axes", 2, "int32", _OPT, None, False),
        ("bias_term", 4, "bool", _OPT, None, False),
    ],
    "LayerParameter": [
        ("name", 1, "string", _OPT, None, False),
        ("type", 2, "string", _OPT, None, False),
        ("bottom", 3, "string", _REP, None, False),
        ("top", 4, "string", _REP, None, False),
        ("blobs", 7, "message", _REP, "BlobProto", False),
        ("convolution_param", 106, "message", _OPT, "ConvolutionParameter", False),
        ("batch_norm_param", 139, "message", _OPT, "BatchNormParameter", False),
        ("scale_param", 142, "message", _OPT, "ScaleParameter", False),
        ("bn_param", 152, "message", _OPT, "BNParameter", False),
    ],
    "NetParameter": [
        ("name", 1, "string", _OPT, None, False),
        ("input", 3, "string", _REP, None, False),
        ("input_dim", 4, "int32", _REP, None, False),
        ("input_shape", 8, "message", _REP, "BlobShape", False),
        ("layer", 100, "message", _REP, "LayerParameter", False),
    ],
}
# Defaults that differ from proto2's zero values (read through the descriptor like generated code).
_DEFAULTS = {("ConvolutionParameter", "bias_term"): "true", ("ConvolutionParameter", "group"): "1",
             ("BatchNormParameter", "eps"): "1e-05", ("BNParameter", "eps"): "1e-05",
             ("BatchNormParameter", "moving_average_fraction"): "0.999", ("BNParameter", "momentum"): "0.9",
             ("ScaleParameter", "axis"): "1", ("ScaleParameter", "num_axes"): "1"}


@lru_cache(maxsize=1)
def caffe_messages() -> dict[str, Any]:
    """Message classes by name (``NetParameter``, ``LayerParameter``, ``BlobProto``, …), package ``caffe``."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    types = descriptor_pb2.FieldDescriptorProto
    kinds = {"int64": types.TYPE_INT64, "int32": types.TYPE_INT32, "uint32": types.TYPE_UINT32, "float": types.TYPE_FLOAT,
             "double": types.TYPE_DOUBLE, "bool": types.TYPE_BOOL, "string": types.TYPE_STRING, "message": types.TYPE_MESSAGE}
    file = descriptor_pb2.FileDescriptorProto(name="icnet_deploy_caffe_subset.proto", package="caffe", syntax="proto2")
    for message, fields in _SCHEMA.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, label, type_name, packed in fields:
            field = proto.field.add(name=name, number=number, type=kinds[kind],
                                    label=types.LABEL_REPEATED if label == _REP else types.LABEL_OPTIONAL)
            if type_name:
                field.type_name = f".caffe.{type_name}"
            if packed:
                field.options.packed = True
            if (message, name) in _DEFAULTS:
                field.default_value = _DEFAULTS[(message, name)]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    try:
        from google.protobuf.message_factory import GetMessageClass
    except ImportError:  # protobuf < 4.21
        from google.protobuf.message_factory import MessageFactory

        factory = MessageFactory(pool)
        return {m: factory.GetPrototype(pool.FindMessageTypeByName(f"caffe.{m}")) for m in _SCHEMA}
    return {m: GetMessageClass(pool.FindMessageTypeByName(f"caffe.{m}")) for m in _SCHEMA}
