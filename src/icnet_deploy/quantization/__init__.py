"""INT8 and FP16 as ONNX graph transforms: precision lives in the graph, so ONNX Runtime CPU checks
what TensorRT compiles. ``quantize_int8`` (with ``Int8Options``) is the INT8 entry; ``convert_fp16`` the FP16 one."""

from .calibration import (
                          CALIB_METHODS,
                          DEFAULT_PERCENTILE,
                          DEFAULT_TAIL_CAP,
                          CalibrationCache,
                          ImageBatches,
                          calibrate,
                          default_calib_dir,
)
from .fp16 import FP16_KEEP_BLOCKS, FP16_KEEP_OPS, convert_fp16, default_fp16_fp32_nodes
from .int8 import DEFAULT_TARGET_AGREEMENT, WEIGHT_ROUNDINGS, Int8Options, image_loader, quantize_int8, require_nodes
from .qdq import (
                          QUANT_OP_TYPES,
                          TARGETS,
                          commute_classifier_resize,
                          default_fp32_nodes,
                          prepare_for_quantization,
                          quantizable_nodes,
                          quantize_qdq,
                          reduce_range_for,
)
from .search import COST_FLOOR, LayerSensitivity, SearchResult, label_agreement, node_macs, sensitivity_search

__all__ = ["CALIB_METHODS", "COST_FLOOR", "DEFAULT_PERCENTILE", "DEFAULT_TAIL_CAP", "DEFAULT_TARGET_AGREEMENT",
           "FP16_KEEP_BLOCKS", "FP16_KEEP_OPS", "QUANT_OP_TYPES", "TARGETS", "WEIGHT_ROUNDINGS", "CalibrationCache",
           "ImageBatches", "Int8Options", "LayerSensitivity", "SearchResult", "calibrate", "commute_classifier_resize",
           "convert_fp16", "default_calib_dir", "default_fp16_fp32_nodes", "default_fp32_nodes", "image_loader",
           "label_agreement", "node_macs", "prepare_for_quantization", "quantizable_nodes", "quantize_int8",
           "quantize_qdq", "reduce_range_for", "require_nodes", "sensitivity_search"]
