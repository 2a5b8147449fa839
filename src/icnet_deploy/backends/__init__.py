"""Backends behind one Runner interface; each imports its framework lazily."""

from .base import Runner

__all__ = ["Runner"]
