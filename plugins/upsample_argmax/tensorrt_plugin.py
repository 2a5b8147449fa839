"""UpsampleArgmax as a TensorRT 10 plugin: TensorRT's Python plugin API (``tensorrt.plugin``) on the
Triton kernel.

The plugin ``icnet_deploy::UpsampleArgmax`` (version 1) takes the coarse logits (N×C×h×w, float32 or
float16) and the network's input image (N×3×H×W, read for its shape only) and writes N×H×W int32
labels: the labels of the logits' bilinear resize to the image's size, by the same rule as the C
kernel and the numpy reference. int32, not uint8: TensorRT lets a uint8 network output come only
from a Cast or Identity layer, so the ONNX graph casts the plugin's labels to uint8 after it
(``icnet_deploy.plugin_graph``).

TensorRT's ONNX parser maps a node to the plugin by its op type (``UpsampleArgmax``) and its
``plugin_namespace`` attribute (``icnet_deploy``), as in NVIDIA's quickly-deployable-plugins sample.
The implementation is a just-in-time one (``tensorrt.plugin.impl``): TensorRT calls back into Python
to launch the Triton kernel on its stream, so an engine with the plugin runs in a Python process that
has imported this module (``icnet_deploy.plugins.register_tensorrt_plugin``), not in ``trtexec``.

Importing this module registers the plugin; ``register()`` is that import, for callers that want a
function to call. (No ``from __future__ import annotations`` here: ``tensorrt.plugin`` reads the
annotations to tell input tensors from attributes.)
"""

from typing import List, Tuple

import tensorrt as trt
import tensorrt.plugin as trtp

PLUGIN_ID = "icnet_deploy::UpsampleArgmax"


@trtp.register(PLUGIN_ID)
def upsample_argmax_desc(logits: trtp.TensorDesc, image: trtp.TensorDesc) -> trtp.TensorDesc:
    """N×C×h×w logits, N×3×H×W image → N×H×W int32 labels."""
    return trtp.from_shape_expr((logits.shape_expr[0], image.shape_expr[2], image.shape_expr[3]), dtype=trt.int32)


@trtp.autotune(PLUGIN_ID)
def upsample_argmax_autotune(logits: trtp.TensorDesc, image: trtp.TensorDesc,
                             outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    # every pairing of the two inputs' types (a strongly typed network fixes them), linear layout
    return [trtp.AutoTuneCombination(f"{a}, {b}, INT32", "LINEAR")
            for a in ("FP32", "FP16") for b in ("FP32", "FP16")]


@trtp.impl(PLUGIN_ID)
def upsample_argmax_impl(logits: trtp.Tensor, image: trtp.Tensor, outputs: Tuple[trtp.Tensor], stream: int) -> None:
    import torch

    from .triton_kernel import upsample_argmax

    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        x = torch.as_tensor(logits, device="cuda")
        out = torch.as_tensor(outputs[0], device="cuda")
        upsample_argmax(x, (int(out.shape[1]), int(out.shape[2])), out=out)


def register() -> str:
    """The plugin's id; it was registered when this module was imported."""
    return PLUGIN_ID
