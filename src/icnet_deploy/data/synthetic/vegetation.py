"""Standing vegetation: trees (broadleaf and conifer) and bushes, drawn as sprites facing the camera."""

from __future__ import annotations


import numpy as np

from .palette import T_BARK, T_FOLIAGE, VEG
from .shapes import ground_ellipse, seg

from .canvas import Scene


def tree(sc: Scene, X: float, z: float, base: float, size: float) -> None:
    """A tree with its shadow: trunk, then a conifer's tiers or a broadleaf's branches and crown."""
    rng = sc.rng
    hc = rng.uniform(4.5, 8.0) * size
    rc = rng.uniform(1.6, 3.2) * size
    rv = rc * rng.uniform(0.9, 1.4)
    tw = rng.uniform(0.18, 0.35) * size ** 0.5
    bark = sc.jit([rng.uniform(60, 100), rng.uniform(50, 80), rng.uniform(40, 60)], 0.1)
    green = sc.jit([rng.uniform(45, 95), rng.uniform(75, 125), rng.uniform(25, 60)], 0.1)
    if rng.random() < 0.12:
        green = sc.jit([rng.uniform(120, 170), rng.uniform(100, 140), rng.uniform(30, 60)], 0.1)  # autumn
    sx = sc.sun_side * 1.0
    sc.shadow(*ground_ellipse(X - sx * rc * 0.8, z + rc * 0.3, rc * 1.1, rc * 0.8), sc.sun_k * 0.9)
    conifer = rng.random() < 0.12
    sc.sprite(X, z, base, seg((0, 0), (0.03 * rng.normal(), hc - rv * 0.3), tw), VEG, bark, T_BARK)
    if conifer:
        top = hc + rv * 1.2
        for i in range(4):
            y0 = hc - rv * 0.9 + i * rv * 0.45
            wdt = rc * (1.0 - i * 0.22)
            sc.sprite(X, z, base, [(-wdt, y0), (wdt, y0), (0, min(top, y0 + rv * 1.1))], VEG,
                      green * (0.8 + 0.08 * i), T_FOLIAGE)
        return
    for _ in range(2):  # a few branches into the crown
        sc.sprite(X, z, base, seg((0, hc - rv * 0.6), (rng.uniform(-0.7, 0.7) * rc, hc), tw * 0.5), VEG,
                  bark, T_BARK)
    _crown(sc, X, z, base, hc, rc, rv, green, sx)


def _crown(sc: Scene, X: float, z: float, base: float, hc: float, rc: float, rv: float, green: np.ndarray,
           sx: float) -> None:
    """A dark core, clumps lit from above, then small leaf clusters that break the outline.

    The number of leaf clusters follows the crown's size on screen, so far trees stay cheap.
    """
    rng = sc.rng
    px = rc * sc.f / z
    n, mmax = int(rng.integers(9, 16)), 40
    ang = rng.uniform(0, 2 * np.pi, n + mmax)
    rad = np.concatenate([np.sqrt(rng.uniform(0, 1, n)) * 0.6, rng.uniform(0.75, 1.0, mmax)])
    size = np.concatenate([rng.uniform(0.35, 0.55, n), rng.uniform(0.1, 0.22, mmax)])
    jit = rng.uniform(0.8, 1.1, n + mmax), rng.uniform(0.85, 1.12, n + mmax)
    m = int(np.clip(px / 4, 0, mmax))
    order = np.concatenate([np.argsort(np.sin(ang[:n]) * rad[:n]), n + np.argsort(np.sin(ang[n:n + m]))])
    sc.sprite_ellipse(X, z, base, 0, hc, rc * 0.8, rv * 0.8, VEG, green * 0.7, T_FOLIAGE)
    for i in order:
        u, v = np.cos(ang[i]) * rad[i] * rc, np.sin(ang[i]) * rad[i] * rv
        light = 0.7 + 0.4 * (np.sin(ang[i]) * min(rad[i], 0.6) / 0.6 + 1) / 2 - 0.1 * sx * np.cos(ang[i])
        r = size[i]
        sc.sprite_ellipse(X, z, base, u, hc + v, rc * r, rv * r * jit[0][i], VEG, green * light * jit[1][i],
                          T_FOLIAGE)


def bush(sc: Scene, X: float, z: float, base: float) -> None:
    """A bush: a few overlapping green ellipses of varied shade."""
    rng = sc.rng
    w, h = rng.uniform(0.8, 3.0), rng.uniform(0.5, 1.6)
    green = sc.jit([rng.uniform(45, 90), rng.uniform(70, 115), rng.uniform(30, 55)], 0.1)
    for _ in range(rng.integers(3, 7)):
        u = rng.uniform(-w / 2, w / 2)
        r = rng.uniform(0.3, 0.55) * min(w, 2 * h)
        sc.sprite_ellipse(X, z, base, u, min(h - r * 0.6, r * 0.9), r, r * 0.85, VEG,
                          green * rng.uniform(0.8, 1.15), T_FOLIAGE)
