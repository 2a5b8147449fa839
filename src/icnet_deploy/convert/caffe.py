"""The original Caffe ICNet (hszhao/ICNet, ``icnet_cityscapes*.caffemodel``) → ``icnet_r50_half_caffe``.

Blobs are found by layer name (the release's ``evaluation/prototxt/icnet_cityscapes*.prototxt``)
and the normalisation that follows each convolution by graph structure (the layer whose bottom
is the conv's top), so all three ways the release and its forks store it map:

* ``BN`` (PSPNet's layer, the ``_bnnomerge`` models): slope, bias, mean, variance → BatchNorm2d;
* ``BatchNorm`` + ``Scale`` (BVLC Caffe): mean·s, variance·s, s (the moving-average factor) and
  γ, β → BatchNorm2d, dividing the statistics by s as Caffe does;
* BN merged into the convolutions (the released ``icnet_cityscapes_*.caffemodel``): the conv's
  bias becomes a BatchNorm2d with γ = 1, β = bias, mean 0, variance 1 − ε (so it divides by 1).

The network reads BGR images; the two convolutions on the image get their input channels
reversed, so the converted model takes RGB like every other config. A learned ``Scale`` on
the data (``data_sub1``) is folded into the stored std (std = 1 / scale).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..model.config import ICNetConfig, get_config
from .problems import ConversionError, check_against

__all__ = ["caffe_state", "CAFFE_CONVS", "IMAGE_CONVS", "read_caffemodel"]

_STAGES = {2: ("layer1", 3), 3: ("layer2", 4), 4: ("layer3", 6), 5: ("layer4", 3)}
_PARTS = {"1x1_reduce": "reduce", "3x3": "conv", "1x1_increase": "expand", "1x1_proj": "shortcut"}


def _caffe_convs() -> dict[str, str]:
    """Caffe conv layer → the toolkit module it fills (a ConvBNReLU, or the classifier)."""
    convs = {"conv1_1_3x3_s2": "trunk.stem.0", "conv1_2_3x3": "trunk.stem.1", "conv1_3_3x3": "trunk.stem.2"}
    for stage, (layer, blocks) in _STAGES.items():
        for block in range(blocks):
            for part, module in _PARTS.items():
                if part == "1x1_proj" and block > 0:
                    continue
                convs[f"conv{stage}_{block + 1}_{part}"] = f"trunk.{layer}.{block}.{module}"
    convs.update({
        "conv5_4_k1": "conv5_4",
        "conv_sub4": "cff_16.low", "conv3_1_sub2_proj": "cff_16.high",
        "conv1_sub1": "high_res.0", "conv2_sub1": "high_res.1", "conv3_sub1": "high_res.2",
        "conv_sub2": "cff_8.low", "conv3_sub1_proj": "cff_8.high",
        "conv6_cls": "classifier",
        # training-only cascade classifiers (present in training snapshots, not in the evaluation release)
        "sub4_out": "cff_16.aux_classifier", "sub24_out": "cff_8.aux_classifier",
    })
    return convs


CAFFE_CONVS = _caffe_convs()
IMAGE_CONVS = ("conv1_1_3x3_s2", "conv1_sub1")  # read the (BGR) image
_WITH_BIAS = ("conv6_cls", "sub4_out", "sub24_out")  # plain convs with a bias, no BN after them
_OPTIONAL = ("sub4_out", "sub24_out")


def read_caffemodel(path: Path) -> Any:
    """The ``NetParameter`` of a binary ``.caffemodel``."""
    from google.protobuf.message import DecodeError

    from .caffe_schema import caffe_messages

    data = path.read_bytes()
    try:
        net = caffe_messages()["NetParameter"].FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable Caffe model (truncated or corrupt?): {exc}") from None
    if not net.layer:
        raise ModelError(f"{path}: no layers (a .prototxt or a V1-format model? give the binary .caffemodel "
                         "of the ICNet release)")
    return net


def _blob(blob) -> np.ndarray:
    shape = list(blob.shape.dim) if blob.shape.dim else [d for d in (blob.num, blob.channels, blob.height, blob.width)]
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"blob holds {values.size} values for shape {shape}")
    return values.reshape(shape)


def _norm_after(conv, consumers: dict[str, list]) -> tuple[str, dict[str, np.ndarray]] | None:
    """BatchNorm2d tensors (weight, bias, running_mean, running_var) from the BN that reads ``conv``'s output."""
    for layer in consumers.get(conv.top[0] if conv.top else conv.name, []):
        if layer.type == "BN":
            slope, shift, mean, var = (_blob(b).reshape(-1) for b in layer.blobs[:4])
            eps = layer.bn_param.eps
            return layer.name, {"weight": slope, "bias": shift, "running_mean": mean, "running_var": var + (eps - 1e-5)}
        if layer.type == "BatchNorm":
            mean, var, factor = (_blob(b).reshape(-1) for b in layer.blobs[:3])
            s = 0.0 if factor[0] == 0 else 1.0 / factor[0]
            eps = layer.batch_norm_param.eps
            out = {"running_mean": mean * s, "running_var": var * s + (eps - 1e-5)}
            scale = next((nxt for nxt in consumers.get(layer.top[0] if layer.top else layer.name, []) if nxt.type == "Scale"), None)
            n = mean.size
            out["weight"] = _blob(scale.blobs[0]).reshape(-1) if scale is not None else np.ones(n, np.float32)
            has_bias = scale is not None and len(scale.blobs) > 1
            out["bias"] = _blob(scale.blobs[1]).reshape(-1) if has_bias else np.zeros(n, np.float32)
            return layer.name, out
    return None


def caffe_state(path: Path, config: ICNetConfig | None) -> tuple[dict[str, torch.Tensor], ICNetConfig, dict[str, Any]]:
    """Map a Caffe ICNet onto ``icnet_r50_half_caffe`` (or ``config``); ConversionError lists every problem."""
    net = read_caffemodel(path)
    layers = {layer.name: layer for layer in net.layer}
    consumers: dict[str, list] = {}
    for layer in net.layer:
        for bottom in layer.bottom:
            consumers.setdefault(bottom, []).append(layer)
    config = config or get_config("icnet_r50_half_caffe")
    if config.variant != "icnet":
        raise ModelError(f"{path}: config {config.name!r} is not the Caffe network; use icnet_r50_half_caffe")
    problems: list[str] = []
    cls = layers.get("conv6_cls")
    if cls is not None and cls.blobs:
        config = config.with_classes(int(_blob(cls.blobs[0]).shape[0]))
    state: dict[str, torch.Tensor] = {}
    styles = set()
    eps = 1e-5  # torch BatchNorm2d's: the variances above are shifted so that var + 1e-5 is Caffe's var + eps
    for name, module in CAFFE_CONVS.items():
        layer = layers.get(name)
        if layer is None:
            if name not in _OPTIONAL:
                problems.append(f"missing layer {name} (→ {module})")
            continue
        if layer.type != "Convolution" or not layer.blobs:
            problems.append(f"layer {name}: type {layer.type!r} with {len(layer.blobs)} blobs, expected a Convolution with weights")
            continue
        try:
            weight = _blob(layer.blobs[0])
            bias = _blob(layer.blobs[1]).reshape(-1) if len(layer.blobs) > 1 else None
            if name in IMAGE_CONVS:
                weight = weight[:, ::-1].copy()  # BGR input channels → RGB
            if name in _WITH_BIAS:
                state[f"{module}.weight"] = torch.from_numpy(weight)
                state[f"{module}.bias"] = torch.from_numpy(bias if bias is not None else np.zeros(weight.shape[0], np.float32))
                continue
            state[f"{module}.0.weight"] = torch.from_numpy(weight)
            found = _norm_after(layer, consumers)
            if found is None:  # BN merged into the conv (the released caffemodels)
                n = weight.shape[0]
                bn = {"weight": np.ones(n, np.float32), "bias": bias if bias is not None else np.zeros(n, np.float32),
                      "running_mean": np.zeros(n, np.float32), "running_var": np.full(n, 1.0 - eps, np.float32)}
                styles.add("merged into the convolutions")
            else:
                bn_name, bn = found
                styles.add(layers[bn_name].type)
                if bias is not None:  # a conv bias before BN: the same as a shifted mean
                    bn["running_mean"] = bn["running_mean"] - bias
            for key, value in bn.items():
                state[f"{module}.1.{key}"] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
            state[f"{module}.1.num_batches_tracked"] = torch.tensor(0)
        except (ValueError, IndexError) as exc:
            problems.append(f"layer {name}: {exc}")
    missing_heads = [m for n, m in CAFFE_CONVS.items() if n in _OPTIONAL and n not in layers]
    for module in missing_heads:  # training-only: never run at inference; zeros keep the network complete
        k = config.num_classes
        low = state.get("cff_16.low.0.weight" if module.startswith("cff_16") else "cff_8.low.0.weight")
        if low is not None:
            state[f"{module}.weight"] = torch.zeros(k, low.shape[1], 1, 1)
            state[f"{module}.bias"] = torch.zeros(k)
    mean, std = config.mean, config.std
    data_scale = layers.get("data_sub1")
    if data_scale is not None and data_scale.type == "Scale" and data_scale.blobs:
        scale = _blob(data_scale.blobs[0]).reshape(-1)
        if scale.size != 3 or not np.all(scale > 0) or len(data_scale.blobs) > 1:
            problems.append(f"layer data_sub1: a Scale on the image of {scale.size} values (3 positive ones, no bias, supported)")
        else:
            std = tuple(float(1.0 / s) for s in scale[::-1])  # BGR → RGB
            config = replace(config, std=std)
    if not problems:  # a missing layer already explains its missing keys
        problems = check_against(config, state)
    if problems:
        raise ConversionError(path, problems)
    info = {"framework": "Caffe (ICNet release, PSPNet fork)", "framework_version": "not recorded in .caffemodel",
            "net_name": net.name or None, "batch_norm": ", ".join(sorted(styles)),
            "input": f"BGR in the source; the first convs' channels reversed so the weights take RGB; mean {list(mean)} (RGB), std {list(std)}",
            "training_only_heads": "from the source" if not missing_heads else "not in the source: zeros (never run at inference)"}
    return state, config, info
