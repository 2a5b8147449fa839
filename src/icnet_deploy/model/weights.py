"""Weight files: safetensors with the model config and provenance in their metadata.

Never unpickles: ``.safetensors`` is the native format; a ``.pth``/``.pt`` state dict is
read only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..errors import ModelError
from ..fileio import atomic_path, refuse_overwriting
from ..hashing import sha256_file
from .config import ICNetConfig, get_config
from .icnet import ICNet

__all__ = [
    "SHIPPED_CHECKPOINT_NAME",
    "shipped_checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "load_model",
    "average_checkpoints",
    "adjust_logits",
    "CheckpointInfo",
]

SHIPPED_CHECKPOINT_NAME = "icnet_r50_half_synthetic.safetensors"
_CONFIG_KEY = "icnet_deploy.config"
_PROVENANCE_KEY = "icnet_deploy.provenance"
# provenance keys whose values are file or folder paths (train's config, averaged or adjusted sources)
_PATH_KEYS = frozenset({"path", "data", "out", "init", "decode_cache"})


def _project_root() -> Path:
    # src/icnet_deploy/model/weights.py -> the repository root (editable installs and clones).
    return Path(__file__).resolve().parents[3]


def models_dir() -> Path:
    """Where shipped checkpoints live: $ICNET_DEPLOY_MODELS, else the repository's models/."""
    env = os.environ.get("ICNET_DEPLOY_MODELS")
    return Path(env) if env else _project_root() / "models"


def shipped_checkpoint() -> Path | None:
    """The shipped trained checkpoint, or None when this checkout has none."""
    path = models_dir() / SHIPPED_CHECKPOINT_NAME
    return path if path.is_file() else None


class CheckpointInfo(dict):
    """What a checkpoint says about itself: config, provenance, file sha256."""

    @property
    def config(self) -> ICNetConfig:
        return self["config"]


def save_checkpoint(model: ICNet, path: str | Path, provenance: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write ``model``'s weights (fp32, or fp16 storage with ``half``) atomically.

    Paths in ``provenance`` are written as their last component only (see ``portable_provenance``).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()}
    _write_state(state, model.config, provenance or {}, path)


def portable_provenance(provenance: Any, key: str | None = None) -> Any:
    """``provenance`` with every path reduced to its file (or folder) name: what a weight file records.

    Why: a checkpoint travels; the directories of the machine that made it say nothing to the next
    one (and read as paths that exist there). Names and sha256 identify the inputs. A path is the
    value of a path key (``path``, ``data``, ``out``, ``init``, ``decode_cache``) or any absolute path.
    """
    if isinstance(provenance, dict):
        return {k: portable_provenance(v, k) for k, v in provenance.items()}
    if isinstance(provenance, (list, tuple)):
        return [portable_provenance(v) for v in provenance]
    if isinstance(provenance, str) and (key in _PATH_KEYS or _is_absolute(provenance)):
        return _last_component(provenance)
    return provenance


def _last_component(text: str) -> str:
    """File or folder name of a POSIX or Windows path (``/a/b/c.safetensors`` → ``c.safetensors``)."""
    return text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or text


def _is_absolute(text: str) -> bool:
    return os.path.isabs(text) or text.startswith("~") or (len(text) > 2 and text[1] == ":" and text[2] in "/\\")


def _write_state(state: dict[str, torch.Tensor], config: ICNetConfig, provenance: dict[str, Any],
                 path: str | Path) -> dict[str, Any]:
    """The one writer of weight files: tensors, config and provenance in the metadata, atomically.

    Returns the provenance as written (paths reduced to names).
    """
    provenance = portable_provenance(provenance)
    metadata = {_CONFIG_KEY: config.to_json(), _PROVENANCE_KEY: json.dumps(provenance, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    return provenance


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from None
    if suffix in (".pth", ".pt"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses pickled code: say so, never fall back
            raise ModelError(f"{path}: cannot load as a plain state dict (weights_only=True): {exc}".splitlines()[0]) from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ModelError(f"{path}: does not hold a state dict of tensors")
        return obj, {}
    raise ModelError(f"{path}: unknown checkpoint format {suffix!r} (use .safetensors, or .pth with a state dict)")


def read_checkpoint(path: str | Path, config: ICNetConfig | None = None) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """State dict and info of a weight file; the config comes from its metadata unless given."""
    path = Path(path)
    state, metadata = _read_state(path)
    if config is None:
        if _CONFIG_KEY in metadata:
            try:
                config = ICNetConfig.from_json(metadata[_CONFIG_KEY])
            except ModelError as exc:
                raise ModelError(f"{path}: metadata {_CONFIG_KEY}: {exc}") from None
        else:
            config = get_config("icnet_r50_half")
            classes = state.get("classifier.weight")
            if classes is not None:
                config = config.with_classes(int(classes.shape[0]))
    try:
        provenance = json.loads(metadata.get(_PROVENANCE_KEY, "{}"))
    except json.JSONDecodeError:
        provenance = {}
    if not isinstance(provenance, dict):  # e.g. null or a list: a provenance we cannot read is none
        provenance = {}
    info = CheckpointInfo(config=config, provenance=provenance, path=str(path), sha256=sha256_file(path))
    return state, info


def _load_into(model: ICNet, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelError(
            f"{path}: weights do not match config {model.config.name!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys; {detail})"
        )
    for key, tensor in state.items():
        want = expected[key].shape
        if tensor.shape != want:
            if key == "classifier.weight":
                raise ModelError(
                    f"{path}: checkpoint has {tensor.shape[0]} classes but the config expects {want[0]}"
                )
            raise ModelError(f"{path}: {key} has shape {tuple(tensor.shape)}, config expects {tuple(want)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def load_model(
    checkpoint: str | Path | None = None, config: ICNetConfig | str | None = None
) -> ICNet:
    """ICNet in eval mode.

    ``checkpoint=None`` loads the shipped trained checkpoint; if this checkout has none, the
    model gets fresh random weights and a warning says so. ``config`` (a name or an
    ``ICNetConfig``) overrides the config stored in the file; a mismatch raises ``ModelError``.
    """
    if isinstance(config, str):
        config = get_config(config)
    if checkpoint is None:
        checkpoint = shipped_checkpoint()
        if checkpoint is None:
            warnings.warn("no shipped checkpoint found: using fresh random weights", stacklevel=2)
            model = ICNet(config or get_config("icnet_r50_half"))
            model.checkpoint_info = CheckpointInfo(config=model.config, provenance={"weights": "random"}, path=None, sha256=None)
            return model.eval()
    state, info = read_checkpoint(checkpoint, config)
    if config is not None and "classifier.weight" in state and state["classifier.weight"].shape[0] != config.num_classes:
        raise ModelError(
            f"{checkpoint}: checkpoint has {state['classifier.weight'].shape[0]} classes but the config expects {config.num_classes}"
        )
    model = ICNet(info.config)
    _load_into(model, state, Path(checkpoint))
    model.checkpoint_info = info
    return model.eval()


def average_checkpoints(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Average checkpoints of one config — weights and BatchNorm statistics, equal shares — into
    ``out`` (atomically); returns the provenance written into it (the inputs' names and sha256).

    Why: the end states of two training runs from a shared start sit in one basin, and their
    average can beat both (a "model soup"); the shipped checkpoint is one (``models/README.md``).
    Integer buffers (BatchNorm's batch counters) are taken from the first checkpoint.
    """
    if len(paths) < 2:
        raise ModelError("averaging needs at least two checkpoints")
    refuse_overwriting([out], paths)
    loaded = [read_checkpoint(p) for p in paths]
    first_state, first_info = loaded[0]
    for state, info in loaded[1:]:
        if info.config.to_json() != first_info.config.to_json():
            raise ModelError(f"{info['path']}: config {info.config.name!r} differs from {first_info['path']}'s")
        if set(state) != set(first_state) or any(state[k].shape != first_state[k].shape for k in state):
            raise ModelError(f"{info['path']}: weights do not match {first_info['path']}'s (keys or shapes differ)")
    averaged = {}
    for key, tensor in first_state.items():
        if tensor.is_floating_point():
            total = sum(state[key].float() for state, _ in loaded)
            averaged[key] = total / len(loaded)
        else:
            averaged[key] = tensor
    provenance = {"averaged_from": [{"path": Path(p).name, "sha256": info["sha256"]} for p, (_, info) in zip(paths, loaded)]}
    return _write_state(averaged, first_info.config, provenance, out)


def adjust_logits(path: str | Path, out: str | Path, class_weights: list[float] | None = None,
                  tau: float = 1.0, weights_source: str = "given") -> dict[str, Any]:
    """Subtract ``tau``·log w_c from the final classifier's bias and write the result to ``out``
    (atomically); returns the provenance written into it.

    Why: training minimises class-weighted cross-entropy, whose optimum is the posterior times
    w_c, so every logit carries + log w_c: rare classes win near ties, which buys recall and costs
    false positives (a few stray pixels of a class absent from an image cost that class's whole IoU).
    tau = 1 removes the weighting exactly (post-hoc logit adjustment, Menon et al., ICLR 2021);
    0 < tau < 1 removes part of it. Only ``classifier.bias`` changes; the shift is constant per
    class, so it passes unchanged through the final bilinear resize. ``class_weights`` default to
    the ones the training run recorded in the checkpoint's provenance.
    """
    if not 0.0 <= tau <= 1.0:
        raise ModelError(f"tau must be in 0..1 (1 undoes the class weighting exactly), got {tau}")
    refuse_overwriting([out], [path])
    state, info = read_checkpoint(path)
    provenance = dict(info["provenance"])
    if "logit_adjustment" in provenance:
        raise ModelError(f"{path}: already logit-adjusted (tau {provenance['logit_adjustment']['tau']}); "
                         "adjust the checkpoint it was made from")
    source = weights_source
    if class_weights is None:
        class_weights = provenance.get("class_weights")
        source = "checkpoint provenance"
        if class_weights is None:
            raise ModelError(f"{path}: its provenance records no class weights; give the training data's "
                             "(icnet-deploy adjust-logits --data DIR)")
    weights = torch.tensor([float(w) for w in class_weights], dtype=torch.float32)
    bias = state.get("classifier.bias")
    if bias is None:
        raise ModelError(f"{path}: no classifier.bias to adjust")
    if weights.shape != bias.shape:
        raise ModelError(f"{path}: {weights.numel()} class weights for a classifier of {bias.numel()} classes")
    if not bool(torch.all(weights > 0)) or not bool(torch.all(torch.isfinite(weights))):
        raise ModelError(f"{path}: class weights must be positive and finite, got {class_weights}")
    state["classifier.bias"] = (bias.float() - tau * torch.log(weights)).to(bias.dtype)
    provenance["logit_adjustment"] = {"tau": tau, "class_weights": [float(w) for w in weights],
                                      "class_weights_from": source,
                                      "source": {"path": Path(path).name, "sha256": info["sha256"]}}
    return _write_state(state, info.config, provenance, out)
