"""Bicycles and motorcycles (parked or ridden) and their riders (class rider)."""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike

from .palette import BIKE, MOTO, RIDER, T_CLOTH, T_METAL, T_NONE, T_PAINT
from .people import clothes
from .shapes import ground_ellipse, hull, seg

from .canvas import Scene


class _SideView:
    """Maps side-view coordinates of a two-wheeler (u along it, v up; metres) onto the frontal plane.

    Direction ``d`` (±1) and compression ``c`` (1: side-on, ~0.1: seen from behind) shorten u to d·u·c.
    """

    def __init__(self, sc: Scene, X: float, z: float, base: float, d: int, c: float) -> None:
        self.sc, self.X, self.z, self.base, self.d, self.c = sc, X, z, base, d, c

    def u(self, pts: list[tuple[float, float]]) -> np.ndarray:
        return np.array([(self.d * u * self.c, v) for u, v in pts])

    def pt(self, p: tuple[float, float]) -> np.ndarray:
        return self.u([p])[0]

    def draw(self, uv: ArrayLike, col: ArrayLike, cls: int, tex: int) -> None:
        self.sc.sprite(self.X, self.z, self.base, uv, cls, col, tex)


def cycle(sc: Scene, X: float, z: float, base: float, kind: str, d: int, c: float, rider: bool) -> None:
    """Bicycle or motorcycle in side view compressed by c (1: side-on, ~0.1: seen from behind)."""
    rng = sc.rng
    moto = kind == "motorcycle"
    cls = MOTO if moto else BIKE
    lat = 1.0 - c  # how much of the lateral width is visible
    r, tyre = (0.31, 0.1) if moto else (0.34, 0.045)
    wb = 0.72 if moto else 0.52
    frame = sc.jit([rng.uniform(20, 200), rng.uniform(20, 120), rng.uniform(20, 120)], 0.1)
    if rng.random() < 0.4:
        frame = sc.jit([rng.uniform(20, 60)] * 3, 0.1)
    view = _SideView(sc, X, z, base, d, c)
    tyre_col = sc.jit([30, 30, 32], 0.1)
    sc.shadow(*ground_ellipse(X, z, 0.3 + 0.9 * c, 0.3 + 0.9 * lat, 12), 0.45)
    for hub in (-wb, wb):  # tyres: rings (see-through), an edge-on tyre is a thin dark ellipse
        sc.sprite_ellipse(X, z, base, d * hub * c, r, max(r * c, tyre * 0.6), r, cls, tyre_col, T_NONE, ring_m=tyre)
        if c > 0.3 and moto:
            sc.sprite_ellipse(X, z, base, d * hub * c, r, r * c * 0.5, r * 0.5, cls, [150, 150, 155], T_METAL,
                              ring_m=0.03)
    if moto:
        _motorcycle_body(view, cls, frame, wb, r, lat, c)
    else:
        _bicycle_frame(view, cls, frame, wb, r, lat)
    if rider:
        _rider(view, moto, lat)


def _motorcycle_body(v: _SideView, cls: int, frame: np.ndarray, wb: float, r: float, lat: float, c: float) -> None:
    """Body (widened by the visible lateral width), engine, fork, handlebar, and a rear light from behind."""
    sc = v.sc
    body = v.u([(-0.9, 0.62), (-0.55, 0.85), (-0.05, 0.87), (0.15, 0.98), (0.45, 0.95), (0.55, 0.75),
                (0.3, 0.45), (-0.1, 0.32), (-0.5, 0.45)])
    v.draw(hull(np.concatenate([body + [0.25 * lat, 0], body - [0.25 * lat, 0]])), frame, cls, T_METAL)
    v.draw(v.u([(-0.2, 0.35), (0.25, 0.35), (0.25, 0.6), (-0.2, 0.6)]), sc.jit([90, 90, 95], 0.1), cls,
           T_METAL)  # engine
    v.draw(seg(v.pt((0.5, 0.95)), v.pt((wb, r)), 0.07), [160, 160, 165], cls, T_METAL)
    v.draw(seg(v.pt((0.45, 1.05)) - [0.32 * lat, 0], v.pt((0.45, 1.05)) + [0.32 * lat, 0], 0.05), [40, 40, 40],
           cls, T_METAL)
    if c < 0.5:
        v.draw(v.u([(-0.95, 0.65), (-0.95, 0.75), (-0.9, 0.75), (-0.9, 0.65)]) + [[-0.06, 0], [-0.06, 0], [0.06, 0],
                                                                                 [0.06, 0]], [200, 30, 30], cls,
               T_METAL)


def _bicycle_frame(v: _SideView, cls: int, frame: np.ndarray, wb: float, r: float, lat: float) -> None:
    """Diamond frame tubes, fork, saddle and handlebar."""
    bb, seat, ht, hb, bar = (-0.05, 0.3), (-0.22, 0.92), (0.38, 0.88), (0.42, 0.72), (0.32, 1.03)
    t = 0.04
    for p, q in ((bb, seat), ((-0.2, 0.86), ht), (bb, hb), (bb, (-wb, r)), ((-0.2, 0.86), (-wb, r)),
                 (hb, (wb, r)), (ht, hb), (ht, bar)):
        v.draw(seg(v.pt(p), v.pt(q), t), frame, cls, T_METAL)
    sp = v.pt(seat)
    v.draw([sp + [-0.12, 0.03], sp + [0.1, 0.03], sp + [0.1, -0.02], sp + [-0.12, -0.02]], [30, 30, 30], cls,
           T_METAL)
    bp = v.pt(bar)
    v.draw(seg(bp - [0.28 * lat + 0.02, 0], bp + [0.28 * lat + 0.02, 0], 0.03), [40, 40, 40], cls, T_METAL)


def _rider(v: _SideView, moto: bool, lat: float) -> None:
    """The rider: legs, torso, arms to the handlebar, and a helmet, hair or face."""
    sc, d, c = v.sc, v.d, v.c
    cl = clothes(sc)
    if moto:
        hip, knee, foot, sh, hand = (-0.25, 1.0), (0.15, 0.85), (-0.05, 0.45), (0.02, 1.55), (0.45, 1.07)
    else:
        hip, knee, foot, sh, hand = (-0.2, 1.0), (0.1, 0.72), (0.0, 0.22), (0.1, 1.5), (0.32, 1.05)
    hip, knee, foot, sh, hand = (v.pt(p) for p in (hip, knee, foot, sh, hand))
    tw = 0.42 * lat + 0.26 * c
    for sgn in (-1, 1):
        o = np.array([sgn * 0.1 * lat, 0])
        k2 = knee + o + ([d * -0.08 * c, 0.1] if sgn < 0 else [0, 0])
        v.draw(seg(hip + o, k2, 0.13), cl["bottom"] * (0.85 if sgn < 0 else 1), RIDER, T_CLOTH)
        v.draw(seg(k2, foot + o + ([d * -0.1 * c, 0.15] if sgn < 0 else [0, 0]), 0.1), cl["bottom"] * 0.9, RIDER,
               T_CLOTH)
    v.draw(hull(np.array([hip - [tw / 2, 0.05], hip + [tw / 2, -0.05], sh + [tw / 2, 0], sh - [tw / 2, 0]])),
           cl["top"], RIDER, T_CLOTH)
    for sgn in (-1, 1):
        o = np.array([sgn * (tw / 2 - 0.04) * lat, 0])
        elbow = (sh + hand) / 2 + [0, -0.08]
        v.draw(seg(sh + o, elbow + o, 0.08), cl["top"] * 0.9, RIDER, T_CLOTH)
        v.draw(seg(elbow + o, hand + o * 0.8, 0.07), cl["top"] * 0.9, RIDER, T_CLOTH)
    _rider_head(v, sh + [d * 0.06 * c, 0.17], moto, cl)


def _rider_head(v: _SideView, head: np.ndarray, moto: bool, cl: dict[str, np.ndarray]) -> None:
    """A helmet (always on a motorcycle), else hair from behind or a face in profile."""
    sc, X, z, base, d, c = v.sc, v.X, v.z, v.base, v.d, v.c
    helmet = moto or sc.rng.random() < 0.4
    if helmet:
        rng = sc.rng
        hc = sc.jit([rng.uniform(20, 230), rng.uniform(20, 230), rng.uniform(20, 230)], 0.05)
        sc.sprite_ellipse(X, z, base, head[0], head[1], 0.14 if moto else 0.11, 0.14 if moto else 0.1, RIDER, hc,
                          T_PAINT)
    elif c < 0.5:  # seen from behind: hair
        sc.sprite_ellipse(X, z, base, head[0], head[1], 0.095, 0.115, RIDER, cl["hair"], T_CLOTH)
    else:
        sc.sprite_ellipse(X, z, base, head[0], head[1], 0.1, 0.12, RIDER, cl["skin"], T_NONE)
        sc.sprite_ellipse(X, z, base, head[0] - d * 0.02, head[1] + 0.04, 0.09, 0.08, RIDER, cl["hair"], T_CLOTH)
