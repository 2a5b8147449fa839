"""The road: asphalt and repairs, median, bike lane, tram rails, lane markings, junction and zebra."""

from __future__ import annotations


import numpy as np

from .palette import ROAD, SIDEWALK, T_ASPHALT, T_CONCRETE, T_GRASS, T_METAL, T_PAINT, T_PAVING, TERRAIN
from .sidewalk import FAR, Z_FAR

from .canvas import Scene


def paint_road(sc: Scene) -> None:
    """Road surface with everything painted or laid on it, in drawing order."""
    rng, zn = sc.rng, sc.z_near
    xl, xr = sc.edge[-1], sc.edge[1]
    sc.gquad(xl, xr, zn, Z_FAR, ROAD, sc.asphalt, T_ASPHALT)
    for _ in range(rng.integers(0, 6)):  # repaired patches, darker tyre tracks
        z0 = float(np.exp(rng.uniform(np.log(sc.z_bot), np.log(80))))
        x0 = rng.uniform(xl, xr - 1)
        sc.gquad(x0, min(xr, x0 + rng.uniform(0.8, 5)), z0, z0 + rng.uniform(1, 12), ROAD,
                 sc.asphalt * rng.uniform(0.8, 1.15), T_ASPHALT)
    if sc.median:
        _median(sc)
    if sc.bike_lane:
        b = sc.edge[1] - (2.2 if sc.park[1] else 0.0)
        sc.gquad(b - 1.6, b, zn, Z_FAR, ROAD, sc.jit([150, 80, 70], 0.08), T_ASPHALT)
    if sc.train:
        for o in (-0.72, 0.72):
            for e in (-0.04, 0.04):
                sc.gquad(sc.track_x + o + e - 0.03, sc.track_x + o + e + 0.03, zn, Z_FAR, ROAD,
                         [150, 145, 140], T_METAL)
    _markings(sc)
    if sc.cross:
        _junction(sc)


def _median(sc: Scene) -> None:
    """Grass strip or raised island between the two directions, with curb stones on both edges."""
    zn = sc.z_near
    m0, m1 = sc.xc - sc.median, sc.xc
    if sc.median_kind == "grass":
        sc.gquad(m0, m1, zn, Z_FAR, TERRAIN, sc.grass * 0.95, T_GRASS)
    else:
        sc.gquad(m0, m1, zn, Z_FAR, SIDEWALK, sc.paving[1], T_PAVING, Y=sc.curb_h)
    for x in (m0, m1):
        sc.gquad(x - 0.12, x + 0.12, zn, Z_FAR, SIDEWALK, [170, 170, 168], T_CONCRETE, Y=sc.curb_h)


def _dashed(sc: Scene, x: float, width: float, dash: float, gap: float, col: np.ndarray) -> None:
    """Dashed line at lateral position x, interrupted at the junction."""
    z = sc.z_near + sc.rng.uniform(0, dash + gap)
    while z < 180:
        if not sc.in_cross(z, z + dash):
            sc.gquad(x - width / 2, x + width / 2, z, z + dash, ROAD, col, T_PAINT)
        z += dash + gap


def _solid(sc: Scene, x: float, width: float, col: np.ndarray) -> None:
    """Solid line at lateral position x, interrupted at the junction."""
    segs = [(sc.z_near, 5000.0)]
    if sc.cross:
        a, b, c = sc.cross
        segs = [(sc.z_near, a - c), (b + c, 5000.0)]
    for z0, z1 in segs:
        sc.gquad(x - width / 2, x + width / 2, z0, z1, ROAD, col, T_PAINT)


def _markings(sc: Scene) -> None:
    """Lane dividers, centre line (white or yellow, solid or dashed) and edge lines, worn to the asphalt."""
    rng = sc.rng
    white = sc.jit([228, 228, 222], 0.04) * rng.uniform(0.8, 1.0)
    yellow = sc.jit([215, 180, 60], 0.06)
    wear = rng.uniform(0.55, 1.0)
    white = sc.asphalt + (white - sc.asphalt) * wear
    lw_ = rng.uniform(0.1, 0.16)
    dash, gap = (3.0, 6.0) if rng.random() < 0.6 else (6.0, 12.0)
    for i in range(1, sc.n_right):
        _dashed(sc, sc.xc + i * sc.lw, lw_, dash, gap, white)
    for j in range(1, sc.n_left):
        _dashed(sc, sc.xc - sc.median - j * sc.lw, lw_, dash, gap, white)
    if sc.n_left and not sc.median:
        c = yellow if rng.random() < 0.2 else white
        if rng.random() < 0.5:
            _solid(sc, sc.xc, lw_, c)
        else:
            _dashed(sc, sc.xc, lw_, dash, gap, c)
    if rng.random() < 0.6:
        for s in (-1, 1):
            x = sc.edge[s] - s * (2.2 if sc.park[s] else 0.3) - s * (1.6 if s == 1 and sc.bike_lane else 0)
            _solid(sc, x, lw_ * 0.9, white)


def _junction(sc: Scene) -> None:
    """The crossing street: corner sidewalks, its asphalt across, and maybe a zebra and stop line before it."""
    rng, (a, b, c) = sc.rng, sc.cross
    xl, xr = sc.edge[-1], sc.edge[1]
    for s in (-1, 1):
        for z0, z1 in ((a - c, a), (b, b + c)):
            sc.gquad(sc.outer[s], s * FAR, z0, z1, SIDEWALK, sc.paving[s], T_PAVING, Y=sc.curb_h)
    sc.gquad(-FAR, FAR, a, b, ROAD, sc.asphalt * 0.97, T_ASPHALT)
    if rng.random() < 0.7:  # zebra crossing before the junction
        zc0 = a - c * 0.3 - rng.uniform(3, 5)
        sc.zebra = (zc0, zc0 + 3.0)
        x = xl + 0.3
        white = sc.jit([225, 225, 220], 0.05)
        while x < xr - 0.5:
            sc.gquad(x, x + 0.5, zc0, zc0 + rng.uniform(3, 4), ROAD, white, T_PAINT)
            x += 1.0
        if rng.random() < 0.5:  # stop line
            sc.gquad(xl, xr, zc0 - 1.0, zc0 - 0.6, ROAD, white, T_PAINT)
