"""``convert_checkpoint``: read a foreign checkpoint, map it onto a config, check it fills that network, write it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from ..fileio import refuse_overwriting
from ..hashing import sha256_file
from ..model.config import ICNetConfig, get_config
from .problems import MAX_PROBLEM_LINES, ConversionError, check_against

__all__ = ["convert_checkpoint", "check_against", "ConversionError", "FORMATS", "MAX_PROBLEM_LINES"]

FORMATS = ("mmseg", "caffe")


def _guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".caffemodel":
        return "caffe"
    if suffix in (".pth", ".pt"):
        return "mmseg"
    raise ModelError(f"{path}: cannot tell the source format from {suffix!r}; give --from mmseg or --from caffe")


def _mmseg_state(path: Path, config: ICNetConfig | None) -> tuple[dict[str, torch.Tensor], ICNetConfig, dict[str, Any]]:
    from .mmseg import MMSEG_PREFIXES, map_mmseg_key, mmseg_config_for
    from .safe_pickle import load_pth

    obj, how = load_pth(path)
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{path}: holds no state dict (a dict of tensors, or one under 'state_dict')")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ConversionError(path, [f"{k}: not a tensor ({type(v).__name__})" for k, v in obj.items()
                                     if not isinstance(v, torch.Tensor)])
    source = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    detected, problems = mmseg_config_for(source)
    if config is None:
        if detected is None:
            raise ConversionError(path, problems + _unknown_keys(source, MMSEG_PREFIXES, map_mmseg_key))
        config = detected
    elif config.variant != "mmseg":
        raise ModelError(f"{path}: config {config.name!r} is not an mmseg network; use icnet_mmseg_r50 or icnet_mmseg_r101")
    elif detected is not None and detected.num_classes != config.num_classes:
        config = config.with_classes(detected.num_classes)
    state, unmapped = {}, []
    for key, tensor in source.items():
        target = map_mmseg_key(key)
        if target is None:
            unmapped.append(f"unexpected key {key} {tuple(tensor.shape)}: not part of mmseg's ICNet")
        else:
            state[target] = tensor.detach().clone().contiguous()
    problems += unmapped + check_against(config, state)
    if problems:
        raise ConversionError(path, problems)
    meta = meta if isinstance(meta, dict) else {}
    versions = {k: meta[k] for k in ("mmseg_version", "mmengine_version", "mmcv_version") if isinstance(meta.get(k), str)}
    source_info = {"framework": "mmsegmentation", "framework_version": versions.get("mmseg_version", "not recorded"),
                   **{k: v for k, v in versions.items() if k != "mmseg_version"}, "read_with": how}
    return state, config, source_info


def _unknown_keys(state: dict, prefixes: tuple[str, ...], mapper) -> list[str]:
    foreign = [k for k in state if mapper(k) is None]
    return [f"unexpected key {k} {tuple(state[k].shape)}" for k in foreign[:MAX_PROBLEM_LINES]] + (
        [f"… {len(foreign) - MAX_PROBLEM_LINES} more keys outside mmseg's ICNet ({', '.join(prefixes)})"]
        if len(foreign) > MAX_PROBLEM_LINES else [])


def convert_checkpoint(source: str | Path, out: str | Path, source_format: str | None = None,
                       config: ICNetConfig | str | None = None) -> dict[str, Any]:
    """Convert ``source`` (an mmsegmentation ICNet ``.pth`` or a Caffe ICNet ``.caffemodel``) into a
    ``.safetensors`` checkpoint at ``out`` (atomically) and return its summary: config name, class
    count, tensors, and the provenance written into it (source file, sha256, framework and version,
    the normalisation the weights expect).

    ``config`` (a name or an ``ICNetConfig``) overrides the detected one. Raises ``ConversionError``
    (one line per problem) when the source does not fill that network exactly, ``ModelError`` for
    an unreadable or unsafe file."""
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise ModelError(f"{source}: file not found")
    if out.suffix.lower() != ".safetensors":
        raise ModelError(f"{out}: the output must be a .safetensors file")
    refuse_overwriting([out], [source])
    fmt = source_format or _guess_format(source)
    if fmt not in FORMATS:
        raise ModelError(f"unknown source format {fmt!r}; known: {', '.join(FORMATS)}")
    if isinstance(config, str):
        config = get_config(config)
    if fmt == "mmseg":
        state, config, source_info = _mmseg_state(source, config)
    else:
        from .caffe import caffe_state

        state, config, source_info = caffe_state(source, config)
    from ..model.weights import write_weights

    provenance = {
        "converted_from": {"file": source.name, "sha256": sha256_file(source), "format": fmt, **source_info},
        "normalisation": {"mean": list(config.mean), "std": list(config.std), "channel_order": "RGB", "units": "0..255"},
    }
    write_weights({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, config, provenance, out)
    return {"checkpoint": str(out), "config": config.name, "num_classes": config.num_classes, "tensors": len(state),
            "provenance": provenance}
