"""icnet-deploy: ICNet from a PyTorch checkpoint to verified FP16/INT8 engines.

The library API the CLI is a thin layer over::

    model = icnet_deploy.load_model()            # shipped checkpoint, eval mode
    x = icnet_deploy.preprocess(image, model.config.mean, model.config.std)  # uint8 H×W×3 RGB -> 1×3×H×W
    labels = model(torch.from_numpy(x)).argmax(1)
    rgb = icnet_deploy.colorize(labels[0].numpy())

``load``, ``preprocess`` and ``colorize`` need no torch (an ONNX engine runs on ONNX Runtime,
numpy and Pillow alone); the names that do (the model, export, build) are imported on first use.
"""

from .labels import colorize
from .machine import package_version
from .data.transforms import preprocess
from .model.config import CONFIGS, ICNetConfig, get_config
from .backends.loader import load

__version__ = package_version()

__all__ = ["ICNet", "ICNetConfig", "CONFIGS", "get_config", "load_model", "save_checkpoint", "export", "build_engine", "load", "preprocess", "colorize", "__version__"]

# name -> module that defines it; imported on first use (they import torch or onnx tooling)
_LAZY = {"ICNet": ".model.icnet", "load_model": ".model.weights", "save_checkpoint": ".model.weights",
         "build_engine": ".build", "export": ".export"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        if name == "export":  # the function shadows the submodule attribute, as the eager import did
            globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
