"""mmsegmentation's own ICNet, built for the equivalence tests (needs mmsegmentation, mmengine, mmcv-lite).

mmseg's package import touches ``mmcv.ops``, which the lite build of mmcv lacks; the ICNet path
never calls it, so a placeholder module stands in for it (any use of one of its names raises).
Only the tests import mmseg: the converter reads checkpoints as data.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

MMSEG_PINS = ("mmsegmentation==1.2.2", "mmengine==0.10.7", "mmcv-lite==2.1.0")
CONFIGS = {"r50": "icnet_r50-d8_4xb2-80k_cityscapes-832x832.py", "r101": "icnet_r101-d8_4xb2-80k_cityscapes-832x832.py"}


def mmseg_available() -> tuple[bool, str]:
    for module in ("mmseg", "mmengine", "mmcv"):
        if importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed (pip install {' '.join(MMSEG_PINS)})"
    return True, ""


class _MissingOps(types.ModuleType):
    """``mmcv.ops`` of the lite build: every name is a class that refuses to be made."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def refuse(*args, **kwargs):
            raise RuntimeError(f"mmcv.ops.{name} is not part of mmcv-lite")

        return type(name, (), {"__init__": refuse})


def _import_mmseg():
    if "mmcv.ops" not in sys.modules:
        try:
            import mmcv.ops  # noqa: F401 - a full mmcv has it
        except ImportError:
            ops = _MissingOps("mmcv.ops")
            ops.__spec__ = importlib.machinery.ModuleSpec("mmcv.ops", None)
            sys.modules["mmcv.ops"] = ops
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmseg
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules

        register_all_modules()
    return mmseg, MODELS


def build_mmseg_icnet(depth: str = "r50", seed: int = 0):
    """mmseg's ICNet (model-zoo Cityscapes config, plain BN for CPU) with random weights AND random BN
    statistics (means, variances, affine), in eval mode."""
    import torch
    from mmengine.config import Config

    mmseg, MODELS = _import_mmseg()
    config_file = Path(mmseg.__file__).parent / ".mim" / "configs" / "icnet" / CONFIGS[depth]
    cfg = Config.fromfile(str(config_file))
    _plain_bn(cfg.model)
    cfg.model.pop("data_preprocessor", None)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)  # torch's default inits; BN and biases randomised below
        g = torch.Generator().manual_seed(seed + 1)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                module.weight.data.copy_(torch.rand(n, generator=g) * 0.8 + 0.6)
                module.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
                module.num_batches_tracked.fill_(1000)
            elif isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.data.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    return model.eval(), cfg


def _plain_bn(node) -> None:
    """SyncBN (the config's, for multi-GPU training) → BN: same parameters and eval computation, runs on CPU."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "norm_cfg" and isinstance(value, dict) and value.get("type") == "SyncBN":
                value["type"] = "BN"
            else:
                _plain_bn(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _plain_bn(item)


def save_like_mmengine(model, cfg, path: Path) -> None:
    """A checkpoint as mmengine's Runner writes one: ``meta`` (versions, config text, dataset meta,
    numpy values), ``state_dict``, and ``message_hub`` (mmengine HistoryBuffer objects)."""
    import mmengine
    import numpy as np
    import torch
    from mmengine.logging import MessageHub

    import mmseg

    hub = MessageHub.get_instance("icnet-deploy-test")
    hub.update_scalar("train/loss", 0.5)
    meta = {"mmengine_version": mmengine.__version__, "mmseg_version": mmseg.__version__, "epoch": 0, "iter": 80000,
            "cfg": cfg.pretty_text, "seed": np.int64(1234), "experiment_name": "icnet_r50-d8",
            "dataset_meta": {"classes": tuple(f"class{i}" for i in range(19)), "palette": [[0, 0, 0]] * 19}}
    checkpoint = {"meta": meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                  "message_hub": hub.state_dict()}
    torch.save(checkpoint, path)
