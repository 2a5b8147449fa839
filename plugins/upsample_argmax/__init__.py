"""UpsampleArgmax: labels of a bilinear resize without the resized logits (C, Triton, TensorRT; see plugins/README.md)."""
