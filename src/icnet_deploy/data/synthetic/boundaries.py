"""Property boundaries at the back of the sidewalk: walls, fences and hedges."""

from __future__ import annotations


import numpy as np

from .buildings import courses
from .palette import FENCE, T_CONCRETE, T_FOLIAGE, T_METAL, VEG, WALL

from .canvas import Scene

# per side kind: probability of a wall, a fence, a hedge for each boundary segment
_P_KIND = {"urban": (0.35, 0.3, 0.15), "suburban": (0.3, 0.45, 0.25), "open": (0.35, 0.4, 0.25)}


def paint_boundaries(sc: Scene) -> None:
    """Segments of wall, fence or hedge along each side's outer edge, far to near, skipping the junction."""
    for s in (-1, 1):
        X = sc.outer[s] + s * 0.05
        for kind, z0, z1 in sorted(_plan_segments(sc, s), key=lambda t: -t[1]):
            z0 = max(z0, sc.z_near)
            yb = sc.curb_h
            haze = sc.hz(0.5 * (z0 + z1))
            if kind == "wall":
                _wall(sc, s, X, z0, z1, yb, haze)
            elif kind == "fence":
                _fence(sc, s, X, z0, z1, yb, haze)
            else:
                _hedge(sc, s, X, z0, z1, yb, haze)


def _plan_segments(sc: Scene, s: int) -> list[tuple[str, float, float]]:
    """(kind, z0, z1) of the boundary segments on side s."""
    rng = sc.rng
    p_wall, p_fence, p_hedge = _P_KIND[sc.side[s]]
    if sc.side[s] == "urban" and sc.setback[s] == "none":
        p_wall, p_fence, p_hedge = 0.2, 0.15, 0.05
    segs = []
    z = rng.uniform(0.5, 20)
    while z < min(sc.z_far, 160):
        L = rng.uniform(6, 40)
        if not sc.in_cross(z, z + L):
            r = rng.random()
            kind = "wall" if r < p_wall else ("fence" if r < p_wall + p_fence else
                                              ("hedge" if r < p_wall + p_fence + p_hedge else None))
            if kind and rng.random() < 0.85:
                segs.append((kind, z, z + L))
        z += L + rng.uniform(0, 25)
    return segs


def _wall(sc: Scene, s: int, X: float, z0: float, z1: float, yb: float, haze: int) -> None:
    """Wall: end face, side face, maybe courses, top (when below eye level) and a coping."""
    rng = sc.rng
    h = rng.uniform(0.5, 2.6)
    col = sc.jit(rng.choice([(165, 160, 150), (140, 140, 138), (150, 95, 75), (190, 185, 170)]), 0.08)
    sc.poly(sc.zquad(X, X + s * 0.3, yb, h, z0), WALL, col * sc.face(0), T_CONCRETE, sc.hz(z0))
    sc.poly(sc.xquad(X, yb, h, z0, z1), WALL, col * sc.face(-s), T_CONCRETE, haze)
    if rng.random() < 0.5:
        courses(sc, X, yb, h, z0, z1, rng.uniform(0.2, 0.4), WALL, col * sc.face(-s) * 0.85, haze)
    if h < sc.ch - 0.1:
        sc.poly(sc.p([X, X + s * 0.3, X + s * 0.3, X], h, [z0, z0, z1, z1]), WALL, col * 1.1, T_CONCRETE, haze)
    if rng.random() < 0.5:
        sc.poly(sc.xquad(X, h - 0.12, h, z0, z1), WALL, col * 0.85, T_CONCRETE, haze)


def _hedge(sc: Scene, s: int, X: float, z0: float, z1: float, yb: float, haze: int) -> None:
    """Hedge: an uneven green top along the side, and its end face."""
    rng = sc.rng
    h = rng.uniform(0.7, 2.0)
    zs = np.linspace(z0, z1, max(3, int((z1 - z0) / 0.7)))
    tops = h + rng.normal(0, 0.07, len(zs))
    pts = np.concatenate([sc.p(X, tops, zs), sc.p(X, yb, zs[::-1])])
    sc.poly(pts, VEG, sc.jit([60, 90, 45], 0.1) * sc.face(-s), T_FOLIAGE, haze)
    sc.poly(sc.zquad(X, X + s * 0.8, yb, h, z0), VEG, sc.jit([55, 85, 40], 0.1), T_FOLIAGE, sc.hz(z0))


def _fence(sc: Scene, s: int, X: float, z0: float, z1: float, yb: float, haze: int) -> None:
    """Fence of slats, metal bars or panels: a base face, joints while they are a pixel apart, rails, posts."""
    rng = sc.rng
    h = rng.uniform(0.8, 2.0)
    style = rng.choice(["slats", "metal", "panel"])
    if style == "slats":
        col = sc.jit([rng.uniform(110, 190), rng.uniform(85, 150), rng.uniform(60, 110)], 0.08)
    else:
        col = sc.jit([rng.uniform(60, 150)] * 3, 0.1)
    base = col * sc.face(-s)
    sc.poly(sc.xquad(X, yb, h, z0, z1), FENCE, base, T_CONCRETE if style == "panel" else T_METAL, haze)
    step = {"slats": 0.15, "metal": 0.12, "panel": 2.0}[style]
    z = z0 + step
    n = 0
    while z < z1 and n < 400:
        q = sc.xquad(X, yb, h, z, z + step * 0.25)
        if abs(q[2, 0] - q[0, 0]) < 0.7:  # joints below a pixel apart: stop (texture noise takes over)
            break
        sc.poly(q, FENCE, base * (0.55 if style != "panel" else 0.7), T_METAL, haze)
        z += step
        n += 1
    for y in ([yb + 0.1, h - 0.1] if style != "panel" else [h - 0.08]):
        sc.poly(sc.xquad(X, y - 0.05, y + 0.05, z0, z1), FENCE, base * 0.8, T_METAL, haze)
    z = z0
    while z < z1:  # posts
        sc.poly(sc.xquad(X, yb, h + 0.05, z, z + 0.1), FENCE, base * 0.7, T_METAL, haze)
        z += rng.uniform(2.0, 3.0)
