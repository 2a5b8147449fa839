"""UpsampleArgmax on CUDA, in Triton: labels of a bilinear resize without the resized logits.

The same rule as the C kernel and the numpy reference (``icnet_deploy.upsample.bilinear_argmax``),
so all three give the same labels:

1. ``_coarse_argmax``: each source pixel's label, a running maximum over the classes (the first
   maximum wins; a NaN is kept as numpy's ``maximum`` keeps it, without taking its class);
2. ``_upsample_argmax``: an output pixel whose four source pixels share one label gets it; the
   others are interpolated over every class in float32 in the reference's order —
   ``top = a + (b - a)·fx``, ``bottom = c + (d - c)·fx``, ``v = top + (bottom - top)·fy`` — and
   argmax'ed (the first maximum, or the first NaN). The kernel is compiled with
   ``enable_fp_fusion=False``: a fused multiply-add would round differently.

The taps (source rows/columns and weights) are the reference's own (``bilinear_taps``), computed
on the host once per pair of sizes and kept on the device. ``upsample_argmax`` launches both
kernels on torch's current CUDA stream (or, with ``TRITON_INTERPRET=1``, in Triton's interpreter on CPU
tensors: how the tests check the kernels' arithmetic on a machine without a GPU).
"""

import functools
import os
from typing import Any

import triton
import triton.language as tl

BLOCK_PIXELS = 1024  # source pixels per program (coarse labels)
BLOCK_COLUMNS = 256  # output columns per program (one output row each)


@triton.jit
def _coarse_argmax(logits_ptr, coarse_ptr, classes, hw, BLOCK: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < hw
    base = logits_ptr + image * classes * hw
    best = tl.load(base + offs, mask=mask, other=0.0).to(tl.float32)
    label = tl.zeros([BLOCK], dtype=tl.int32)
    for c in range(1, classes):
        v = tl.load(base + c * hw + offs, mask=mask, other=0.0).to(tl.float32)
        greater = v > best
        label = tl.where(greater, c, label)
        best = tl.where(greater | (v != v), v, best)
    tl.store(coarse_ptr + image * hw + offs, label.to(tl.uint8), mask=mask)


@triton.jit
def _upsample_argmax(logits_ptr, coarse_ptr, y0_ptr, y1_ptr, wy_ptr, x0_ptr, x1_ptr, wx_ptr, out_ptr,
                     classes, h, w, out_h, out_w, BLOCK: tl.constexpr):
    image = tl.program_id(2).to(tl.int64)
    row = tl.program_id(1)
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < out_w
    r0 = tl.load(y0_ptr + row)
    r1 = tl.load(y1_ptr + row)
    fy = tl.load(wy_ptr + row)
    c0 = tl.load(x0_ptr + cols, mask=mask, other=0)
    c1 = tl.load(x1_ptr + cols, mask=mask, other=0)
    fx = tl.load(wx_ptr + cols, mask=mask, other=0.0)
    hw = h * w
    coarse = coarse_ptr + image * hw
    a = tl.load(coarse + r0 * w + c0, mask=mask, other=0)
    b = tl.load(coarse + r0 * w + c1, mask=mask, other=0)
    c = tl.load(coarse + r1 * w + c0, mask=mask, other=0)
    d = tl.load(coarse + r1 * w + c1, mask=mask, other=0)
    uniform = (a == b) & (a == c) & (a == d)
    work = mask & ~uniform  # only these pixels read logits
    base = logits_ptr + image * classes * hw
    best = tl.zeros([BLOCK], dtype=tl.float32)
    label = tl.zeros([BLOCK], dtype=tl.int32)
    for k in range(0, classes):
        plane = base + k * hw
        p00 = tl.load(plane + r0 * w + c0, mask=work, other=0.0).to(tl.float32)
        p01 = tl.load(plane + r0 * w + c1, mask=work, other=0.0).to(tl.float32)
        p10 = tl.load(plane + r1 * w + c0, mask=work, other=0.0).to(tl.float32)
        p11 = tl.load(plane + r1 * w + c1, mask=work, other=0.0).to(tl.float32)
        top = p00 + (p01 - p00) * fx
        bottom = p10 + (p11 - p10) * fx
        v = top + (bottom - top) * fy
        take = (v > best) | ((v != v) & (best == best)) | (k == 0)
        label = tl.where(take, k, label)
        best = tl.where(take, v, best)
    label = tl.where(uniform, a.to(tl.int32), label)
    tl.store(out_ptr + image * out_h * out_w + row * out_w + cols, label.to(out_ptr.dtype.element_ty), mask=mask)


@functools.lru_cache(maxsize=64)
def _device_taps(n_out: int, n_in: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    from ...upsample import bilinear_taps

    first, second, weight = bilinear_taps(n_out, n_in)
    return (torch.from_numpy(first.astype("int32")).to(device), torch.from_numpy(second.astype("int32")).to(device),
            torch.from_numpy(weight.astype("float32")).to(device))


def upsample_argmax(logits: Any, size: tuple[int, int], *, out: Any = None) -> Any:
    """N×C×h×w CUDA logits (float32/float16, at most 255 classes) → N×H×W labels on the device.

    ``out``: an N×H×W CUDA tensor (uint8 or int32) to write into; default: a new uint8 tensor.
    """
    import torch

    on_device = logits.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"  # the interpreter runs on CPU tensors
    if logits.ndim != 4 or not on_device or logits.dtype not in (torch.float32, torch.float16):
        raise ValueError(f"expected N×C×h×w float32/float16 CUDA logits, got {tuple(logits.shape)} {logits.dtype} "
                         f"on {logits.device}")
    n, classes, h, w = logits.shape
    height, width = int(size[0]), int(size[1])
    if not 1 <= classes <= 255:
        raise ValueError(f"{classes} classes: the kernel's labels are uint8 (at most 255 classes)")
    if height > 65535 or n > 65535:
        raise ValueError(f"{n}×{height} rows: more than one CUDA grid dimension holds")
    logits = logits.contiguous()
    if out is None:
        out = torch.empty((n, height, width), dtype=torch.uint8, device=logits.device)
    if tuple(out.shape) != (n, height, width) or out.dtype not in (torch.uint8, torch.int32) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {n}×{height}×{width} uint8 or int32 tensor")
    coarse = torch.empty((n, h, w), dtype=torch.uint8, device=logits.device)
    _coarse_argmax[(triton.cdiv(h * w, BLOCK_PIXELS), n)](logits, coarse, classes, h * w, BLOCK=BLOCK_PIXELS)
    if (h, w) == (height, width):  # same size: the coarse labels, as the reference returns them
        out.copy_(coarse)
        return out
    y0, y1, wy = _device_taps(height, h, str(logits.device))
    x0, x1, wx = _device_taps(width, w, str(logits.device))
    _upsample_argmax[(triton.cdiv(width, BLOCK_COLUMNS), height, n)](
        logits, coarse, y0, y1, wy, x0, x1, wx, out, classes, h, w, height, width, BLOCK=BLOCK_COLUMNS,
        enable_fp_fusion=False)
    return out
