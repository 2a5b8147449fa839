"""Weights trained elsewhere into this package's checkpoints: mmsegmentation ``.pth`` and Caffe ``.caffemodel``.

``convert_checkpoint`` is the one entry point (``icnet-deploy convert`` calls it). Nothing here
needs mmsegmentation or Caffe installed: the files are read as data (a restricted unpickler,
a protobuf schema written here) and mapped key by key onto a model config that reproduces the
source network's computation.
"""

from .api import ConversionError, convert_checkpoint

__all__ = ["convert_checkpoint", "ConversionError"]
