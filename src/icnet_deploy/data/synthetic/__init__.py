"""Procedural street scenes with pixel-exact Cityscapes train-id labels.

Why: the project trains and evaluates ICNet without access to the real Cityscapes data, so it
needs a deterministic, licence-free stand-in whose labels are exact by construction.

How (module map): ``scene`` holds the camera, the canvases, the street layout and the order the
painters run in; one painter module per kind of object (``background`` sky and skyline,
``sidewalk``, ``road``, ``buildings``, ``boundaries`` walls/fences/hedges, ``vegetation``,
``street_furniture`` poles/signs/lights, ``people``, ``two_wheelers``, ``vehicles``,
``heavy_vehicles``); ``placement`` decides where standing objects go; ``effects`` applies the
image-only effects (texture, shadows, haze, exposure, noise, blur) that never touch the label;
``dataset`` writes scenes to disk.
"""

from __future__ import annotations

from .dataset import write_dataset, write_images
from .mix import SceneMix
from .scene import generate_scene

__all__ = ["SceneMix", "generate_scene", "write_dataset", "write_images"]
