"""Class ids, texture ids and colours shared by every painter.

Why one module: the painters draw onto a "meta" canvas whose channels are (train id, texture id,
haze); the image effects read the same ids back. Keeping the ids and their lookup tables together
keeps the painters and the effects agreeing on what each channel value means.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ...labels import CLASSES, IGNORE_ID

__all__ = ["IGNORE_ID"]

_T = {c.name: c.train_id for c in CLASSES}
ROAD, SIDEWALK, BUILDING, WALL, FENCE = _T["road"], _T["sidewalk"], _T["building"], _T["wall"], _T["fence"]
POLE, LIGHT, SIGN, VEG, TERRAIN, SKY = (_T[n] for n in ("pole", "traffic light", "traffic sign", "vegetation",
                                                         "terrain", "sky"))
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN = (_T[n] for n in ("person", "rider", "car", "truck", "bus", "train"))
MOTO, BIKE = _T["motorcycle"], _T["bicycle"]

# Texture ids (meta canvas channel 1) and their brightness modulation (fine, medium, coarse noise).
(T_NONE, T_ASPHALT, T_PAVING, T_FACADE, T_FOLIAGE, T_GRASS, T_PAINT, T_SKY, T_CLOTH, T_GLASS, T_BARK,
 T_CONCRETE, T_METAL) = range(13)
TEX_AMP = np.zeros((256, 3), np.float32)  # per texture id: (fine, medium, coarse) amplitude
for _t, _a in {
    T_NONE: (0.04, 0.0, 0.02), T_ASPHALT: (0.20, 0.05, 0.05), T_PAVING: (0.16, 0.05, 0.05),
    T_FACADE: (0.10, 0.03, 0.05), T_FOLIAGE: (0.25, 0.40, 0.08), T_GRASS: (0.40, 0.22, 0.10),
    T_PAINT: (0.04, 0.0, 0.03), T_SKY: (0.0, 0.0, 0.0), T_CLOTH: (0.12, 0.06, 0.02), T_GLASS: (0.04, 0.03, 0.12),
    T_BARK: (0.35, 0.12, 0.05), T_CONCRETE: (0.14, 0.05, 0.06), T_METAL: (0.05, 0.0, 0.04),
}.items():
    TEX_AMP[_t] = _a

GROUND_HAZE = 255  # meta canvas channel 2: haze from the pixel's row (ground plane), else 0..254 per object

Color = tuple[int, int, int]


def to_color(c: ArrayLike) -> Color:
    """Round a float RGB triple (often a base colour times a shading factor) to a clipped 8-bit colour."""
    r, g, b = (float(v) for v in c)
    return (min(255, max(0, int(r + 0.5))), min(255, max(0, int(g + 0.5))), min(255, max(0, int(b + 0.5))))
