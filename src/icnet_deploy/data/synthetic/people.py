"""Pedestrians (class person) and the clothes they share with riders."""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike

from .palette import PERSON, T_CLOTH, T_NONE
from .shapes import ground_ellipse, seg

from .canvas import Scene


def clothes(sc: Scene) -> dict[str, np.ndarray]:
    """Colours of one outfit (top, bottom, skin, hair, shoes); dark clothes in about half the people."""
    rng = sc.rng
    dark = rng.random() < 0.55

    def c() -> np.ndarray:
        if dark:
            return sc.jit([rng.uniform(20, 80)] * 3, 0.2)
        return np.array([rng.uniform(30, 220), rng.uniform(30, 200), rng.uniform(30, 200)])

    skin = sc.jit(rng.choice([(225, 185, 160), (200, 150, 120), (150, 100, 70), (95, 65, 45)]), 0.05)
    hair = sc.jit(rng.choice([(30, 25, 20), (80, 60, 40), (150, 120, 80), (200, 190, 170)]), 0.1)
    return dict(top=c(), bottom=c(), skin=skin, hair=hair, shoes=sc.jit([35, 32, 30], 0.3))


def person(sc: Scene, X: float, z: float, base: float, c: float | None = None) -> None:
    """A walking or standing person; ``c`` 0 faces (or turns its back to) the camera, 1 is in profile."""
    rng = sc.rng
    hp = rng.uniform(1.55, 1.95) if rng.random() < 0.92 else rng.uniform(1.0, 1.4)
    c = rng.uniform(0, 1) if c is None else c
    d = 1 if rng.random() < 0.5 else -1
    cl = clothes(sc)
    back = rng.random() < 0.5
    bulk = rng.uniform(0.9, 1.15)
    sw = hp * (0.26 * (1 - c) + 0.15 * c) * bulk
    hw = hp * (0.19 * (1 - c) + 0.13 * c) * bulk
    hip, sh = 0.52 * hp, 0.81 * hp
    stride = rng.uniform(0, 0.22) * hp * c
    off = 0.05 * hp * (1 - c)
    legw, legb = 0.085 * hp, 0.055 * hp
    sc.shadow(*ground_ellipse(X - sc.sun_side * 0.3, z, 0.45, 0.35, 10), 0.4)

    def P(uv: ArrayLike, col: ArrayLike, tex: int = T_CLOTH) -> None:
        sc.sprite(X, z, base, uv, PERSON, col, tex)

    swing = rng.uniform(-0.12, 0.12) * hp * c
    arm_w = 0.055 * hp
    # back arm, legs, torso, front arm, head
    P(seg((-d * (sw / 2 - arm_w / 2) * (1 - c), sh - 0.02 * hp), (-d * (sw / 2) * (1 - c) - swing * d, 0.47 * hp),
          arm_w), cl["top"] * 0.85)
    for sgn in (-1, 1):
        fu = sgn * off + sgn * d * stride / 2
        P([(sgn * off - legw / 2, hip), (sgn * off + legw / 2, hip), (fu + legb / 2, 0.04 * hp),
           (fu - legb / 2, 0.04 * hp)], cl["bottom"] * (0.9 if sgn < 0 else 1.0))
        P([(fu - legb / 2 - 0.01, 0), (fu + legb / 2 + d * 0.06 * hp * c, 0), (fu + legb / 2, 0.045 * hp),
           (fu - legb / 2, 0.045 * hp)], cl["shoes"], T_NONE)
    torso = [(-hw / 2, hip - 0.02 * hp), (hw / 2, hip - 0.02 * hp), (sw / 2, sh - 0.03 * hp),
             (sw * 0.4, sh + 0.015 * hp), (-sw * 0.4, sh + 0.015 * hp), (-sw / 2, sh - 0.03 * hp)]
    P(torso, cl["top"])
    if rng.random() < 0.3:  # coat / skirt
        ln = rng.uniform(0.22, 0.35) * hp
        P([(-hw / 2, hip), (hw / 2, hip), (hw / 2 + 0.03 * hp, hip - ln), (-hw / 2 - 0.03 * hp, hip - ln)],
          cl["top"] if rng.random() < 0.6 else cl["bottom"] * 1.1)
    P(seg((d * (sw / 2 - arm_w / 2) * (1 - c), sh - 0.02 * hp), (d * (sw / 2) * (1 - c) + swing * d, 0.47 * hp),
          arm_w), cl["top"] * 0.95)
    if rng.random() < 0.25:  # bag
        bu = d * sw * 0.55
        P([(bu - 0.06 * hp, 0.45 * hp), (bu + 0.06 * hp, 0.45 * hp), (bu + 0.06 * hp, 0.6 * hp),
           (bu - 0.06 * hp, 0.6 * hp)], sc.jit([rng.uniform(20, 160)] * 3, 0.2))
    P(seg((0, sh - 0.01 * hp), (0, 0.87 * hp), 0.045 * hp), cl["skin"], T_NONE)
    _head(sc, X, z, base, hp, d * 0.012 * hp * c, d, c, cl, back)


def _head(sc: Scene, X: float, z: float, base: float, hp: float, hu: float, d: int, c: float,
          cl: dict[str, np.ndarray], back: bool) -> None:
    """Face, then hair over the whole head (seen from behind) or only on top."""
    sc.sprite_ellipse(X, z, base, hu, 0.925 * hp, 0.055 * hp, 0.068 * hp, PERSON, cl["skin"], T_NONE)
    if back:
        sc.sprite_ellipse(X, z, base, hu, 0.93 * hp, 0.056 * hp, 0.064 * hp, PERSON, cl["hair"], T_CLOTH)
    else:
        sc.sprite_ellipse(X, z, base, hu - d * 0.012 * hp * c, 0.955 * hp, 0.055 * hp, 0.04 * hp, PERSON,
                          cl["hair"], T_CLOTH)
