"""mmsegmentation ICNet checkpoints → this package's ``variant="mmseg"`` network (``icnet_mmseg.py``).

The topology is the same layer for layer, so conversion is renaming: every mmseg key maps to
exactly one key of ``ICNetMMSeg`` (auxiliary heads included), and every key of the network must
be filled. The depth (R50/R101) and the class count are read from the tensors.
"""

from __future__ import annotations

import re
from typing import Callable

import torch

from ..model.config import ICNetConfig, get_config

__all__ = ["map_mmseg_key", "mmseg_config_for", "MMSEG_PREFIXES"]

# ConvModule (conv, bn) → ConvBNReLU (0 conv, 1 bn)
_CONV_MODULE = (r"conv\.", "0."), (r"bn\.", "1.")
_BOTTLENECK = {"conv1": "reduce.0", "bn1": "reduce.1", "conv2": "conv.0", "bn2": "conv.1", "conv3": "expand.0",
               "bn3": "expand.1", "downsample.0": "shortcut.0", "downsample.1": "shortcut.1"}

# (mmseg prefix pattern, toolkit prefix, rest rewrite)
_RULES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"backbone\.backbone\.stem\.(\d+)\.(.*)"),
     lambda m: f"trunk.stem.{int(m[1]) // 3}.{int(m[1]) % 3}.{m[2]}" if int(m[1]) % 3 in (0, 1) else ""),
    (re.compile(r"backbone\.backbone\.(layer[1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.*)"),
     lambda m: f"trunk.{m[1]}.{m[2]}.{_BOTTLENECK[m[3]]}.{m[4]}"),
    (re.compile(r"backbone\.psp_modules\.(\d+)\.1\.(conv|bn)\.(.*)"),
     lambda m: f"pyramid.branches.{m[1]}.{_cm(m[2])}.{m[3]}"),
    (re.compile(r"backbone\.psp_bottleneck\.(conv|bn)\.(.*)"), lambda m: f"pyramid.bottleneck.{_cm(m[1])}.{m[2]}"),
    (re.compile(r"backbone\.conv_sub1\.(\d)\.(conv|bn)\.(.*)"), lambda m: f"high_res.{m[1]}.{_cm(m[2])}.{m[3]}"),
    (re.compile(r"backbone\.conv_sub2\.(conv|bn)\.(.*)"), lambda m: f"proj_16.{_cm(m[1])}.{m[2]}"),
    (re.compile(r"backbone\.conv_sub4\.(conv|bn)\.(.*)"), lambda m: f"proj_32.{_cm(m[1])}.{m[2]}"),
    (re.compile(r"neck\.cff_(24|12)\.conv_(low|high)\.(conv|bn)\.(.*)"),
     lambda m: f"cff_{'16' if m[1] == '24' else '8'}.{m[2]}.{_cm(m[3])}.{m[4]}"),
    (re.compile(r"decode_head\.convs\.0\.(conv|bn)\.(.*)"), lambda m: f"head.{_cm(m[1])}.{m[2]}"),
    (re.compile(r"decode_head\.conv_seg\.(.*)"), lambda m: f"classifier.{m[1]}"),
    (re.compile(r"auxiliary_head\.([01])\.convs\.0\.(conv|bn)\.(.*)"),
     lambda m: f"aux_{'16' if m[1] == '0' else '8'}.0.{_cm(m[2])}.{m[3]}"),
    (re.compile(r"auxiliary_head\.([01])\.conv_seg\.(.*)"), lambda m: f"aux_{'16' if m[1] == '0' else '8'}.1.{m[2]}"),
]
MMSEG_PREFIXES = ("backbone.", "neck.", "decode_head.", "auxiliary_head.")


def _cm(part: str) -> str:
    return "0" if part == "conv" else "1"


def map_mmseg_key(key: str) -> str | None:
    """The toolkit key for an mmseg key, or None when no rule covers it."""
    for pattern, rewrite in _RULES:
        m = pattern.fullmatch(key)
        if m:
            return rewrite(m) or None
    return None


def mmseg_config_for(state: dict[str, torch.Tensor]) -> tuple[ICNetConfig | None, list[str]]:
    """The config an mmseg ICNet state dict was trained as (depth from conv4_x's block count, class
    count from the decode head), or None and the reasons it is not one."""
    problems = []
    if not any(k.startswith("backbone.backbone.") for k in state) or "decode_head.conv_seg.weight" not in state:
        return None, ["not an mmsegmentation ICNet state dict (no backbone.backbone.* and decode_head.conv_seg.weight keys)"]
    if "backbone.backbone.layer1.0.conv3.weight" not in state:
        problems.append("backbone: ResNet without bottleneck blocks (ResNet-18/34 ICNet variants are not supported; "
                        "R50 and R101 are)")
        return None, problems
    blocks3 = len({k.split(".")[3] for k in state if k.startswith("backbone.backbone.layer3.")})
    name = {6: "icnet_mmseg_r50", 23: "icnet_mmseg_r101"}.get(blocks3)
    if name is None:
        return None, [f"backbone: conv4_x has {blocks3} blocks; known ICNet depths: 6 (R50), 23 (R101)"]
    classes = int(state["decode_head.conv_seg.weight"].shape[0])
    for aux in ("auxiliary_head.0.conv_seg.weight", "auxiliary_head.1.conv_seg.weight"):
        if aux in state and int(state[aux].shape[0]) != classes:
            problems.append(f"class count: {aux} has {int(state[aux].shape[0])} classes, decode_head {classes}")
    if not 1 <= classes <= 255:
        problems.append(f"class count: decode_head.conv_seg has {classes} classes (1..255 supported)")
    return get_config(name).with_classes(max(1, min(classes, 255))), problems
