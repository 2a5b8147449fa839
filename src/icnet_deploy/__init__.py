"""icnet-deploy: ICNet from a PyTorch checkpoint to verified FP16/INT8 engines.

The library API the CLI is a thin layer over::

    model = icnet_deploy.load_model()            # shipped checkpoint, eval mode
    x = icnet_deploy.preprocess(image, model.config.mean, model.config.std)  # uint8 H×W×3 RGB -> 1×3×H×W
    labels = model(torch.from_numpy(x)).argmax(1)
    rgb = icnet_deploy.colorize(labels[0].numpy())
"""

from .labels import colorize
from .machine import package_version
from .data.transforms import preprocess
from .model.config import CONFIGS, ICNetConfig, get_config
from .model.icnet import ICNet
from .model.weights import load_model, save_checkpoint
from .backends.loader import load
from .build import build_engine
from .export import export  # the function: it shadows the submodule attribute, so use `from icnet_deploy.export import ...`

__version__ = package_version()

__all__ = ["ICNet", "ICNetConfig", "CONFIGS", "get_config", "load_model", "save_checkpoint", "export", "build_engine", "load", "preprocess", "colorize", "__version__"]
