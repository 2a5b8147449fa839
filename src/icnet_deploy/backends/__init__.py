"""Backends behind one Runner interface; each imports its framework lazily."""

from .base import Runner
from .loader import load

__all__ = ["Runner", "load"]
