"""The ICNet reference model, its configurations, loss and weight files."""

from .config import CONFIGS, ICNetConfig, get_config
from .icnet import ICNet, CascadeOutputs, branch_sizes

__all__ = ["CONFIGS", "ICNetConfig", "get_config", "ICNet", "CascadeOutputs", "branch_sizes"]
