"""Street furniture on the sidewalk: lamp posts, traffic signs, traffic lights and litter bins."""

from __future__ import annotations


import numpy as np

from .palette import IGNORE_ID, LIGHT, POLE, SIGN, T_METAL, T_NONE, T_PAINT
from .shapes import seg

from .canvas import Scene

LampStyle = tuple[float, float, np.ndarray, bool]  # height, width, colour, has an arm


def _pole(sc: Scene, X: float, z: float, base: float, h: float, w: float, col: np.ndarray,
          taper: float = 0.7) -> None:
    """A tapered vertical pole (class pole), lit as a face towards the camera."""
    sc.sprite(X, z, base, [(-w / 2, 0), (w / 2, 0), (w * taper / 2, h), (-w * taper / 2, h)], POLE,
              col * sc.face(0), T_METAL)


def lamp(sc: Scene, X: float, z: float, s: int, st: LampStyle) -> None:
    """Street lamp: a pole with an arm over the road and its head, or a post-top lantern."""
    h, w, col, arm = st
    _pole(sc, X, z, sc.curb_h, h, w, col)
    if arm:
        L = min(2.5, h * 0.3)
        sc.sprite(X, z, sc.curb_h, seg((0, h - 0.1), (-s * L, h + 0.15), w * 0.5), POLE, col, T_METAL)
        sc.sprite(X, z, sc.curb_h, [(-s * (L - 0.2), h + 0.22), (-s * (L + 0.45), h + 0.22),
                                    (-s * (L + 0.4), h + 0.05), (-s * (L - 0.15), h + 0.05)], POLE,
                  col * 0.8, T_METAL)
    else:
        sc.sprite(X, z, sc.curb_h, [(-0.2, h), (0.2, h), (0.15, h + 0.45), (-0.15, h + 0.45)], POLE,
                  col * 0.8, T_METAL)


def sign(sc: Scene, X: float, z: float, s: int) -> None:
    """A sign post with one or two plates stacked on it; ``c`` < 1 turns the plates side-on."""
    rng = sc.rng
    hp = rng.uniform(2.0, 3.0)
    pw = rng.uniform(0.06, 0.09)
    _pole(sc, X, z, sc.curb_h, hp + 0.3, pw, sc.jit([150, 150, 150], 0.15), 1.0)
    c = 1.0 if rng.random() < 0.75 else rng.uniform(0.15, 0.6)  # side-on signs look thin
    y = hp
    for _ in range(1 if rng.random() < 0.7 else 2):
        kind = rng.choice(["round", "triangle", "rect", "diamond", "octagon"], p=[0.35, 0.2, 0.3, 0.08, 0.07])
        r = rng.uniform(0.3, 0.42)
        y = _PLATES[str(kind)](sc, X, z, y, r, c)


def _round_plate(sc: Scene, X: float, z: float, y: float, r: float, c: float) -> float:
    """Prohibition (red ring, maybe a bar) or mandatory (blue with an arrow) disc; returns the next y."""
    rng, b = sc.rng, sc.curb_h
    if rng.random() < 0.6:
        sc.sprite_ellipse(X, z, b, 0, y + r, r * c, r, SIGN, [200, 30, 35], T_PAINT)
        sc.sprite_ellipse(X, z, b, 0, y + r, r * c * 0.78, r * 0.78, SIGN, [235, 235, 230], T_PAINT)
        if rng.random() < 0.5:
            sc.sprite(X, z, b, [(-0.12 * c, y + r - 0.05), (0.12 * c, y + r - 0.05),
                                (0.12 * c, y + r + 0.05), (-0.12 * c, y + r + 0.05)], SIGN, [30, 30, 30], T_PAINT)
    else:
        sc.sprite_ellipse(X, z, b, 0, y + r, r * c, r, SIGN, [30, 80, 170], T_PAINT)
        sc.sprite(X, z, b, seg((0, y + r * 0.4), (0, y + r * 1.5), 0.08 * c), SIGN, [235, 235, 235], T_PAINT)
    return y + 2 * r + 0.05


def _triangle_plate(sc: Scene, X: float, z: float, y: float, r: float, c: float) -> float:
    """Warning (point up) or give-way (point down) triangle; returns the next y."""
    b = sc.curb_h
    a = r * 2.2
    up = sc.rng.random() < 0.75
    t0, t1 = (y, y + a * 0.87) if up else (y + a * 0.87, y)
    sc.sprite(X, z, b, [(-a / 2 * c, t0), (a / 2 * c, t0), (0, t1)], SIGN, [205, 35, 40], T_PAINT)
    m = 0.12 / 0.87
    i0, i1 = (t0 + a * m * 0.6, t1 - a * m * 1.2) if up else (t0 - a * m * 0.6, t1 + a * m * 1.2)
    sc.sprite(X, z, b, [(-a / 2 * c * 0.7, i0), (a / 2 * c * 0.7, i0), (0, i1)], SIGN, [240, 238, 232], T_PAINT)
    return y + a * 0.87 + 0.05


def _rect_plate(sc: Scene, X: float, z: float, y: float, r: float, c: float) -> float:
    """Information plate with a bar of contrasting colour; returns the next y."""
    rng, b = sc.rng, sc.curb_h
    bw, bh = rng.uniform(0.4, 1.1), rng.uniform(0.4, 0.8)
    col = [(30, 80, 170), (240, 240, 235), (230, 190, 30), (30, 120, 70)][rng.integers(4)]
    sc.sprite(X, z, b, [(-bw / 2 * c, y), (bw / 2 * c, y), (bw / 2 * c, y + bh), (-bw / 2 * c, y + bh)], SIGN,
              sc.jit(col, 0.06), T_PAINT)
    sc.sprite(X, z, b, [(-bw / 3 * c, y + bh * 0.4), (bw / 3 * c, y + bh * 0.4), (bw / 3 * c, y + bh * 0.6),
                        (-bw / 3 * c, y + bh * 0.6)], SIGN, [250, 250, 250] if col[0] < 200 else [40, 40, 40],
              T_PAINT)
    return y + bh + 0.05


def _diamond_plate(sc: Scene, X: float, z: float, y: float, r: float, c: float) -> float:
    """Priority road diamond (white rim, yellow inside); returns the next y."""
    b = sc.curb_h
    sc.sprite(X, z, b, [(0, y), (r * c, y + r), (0, y + 2 * r), (-r * c, y + r)], SIGN, [240, 240, 235], T_PAINT)
    sc.sprite(X, z, b, [(0, y + 0.3 * r), (0.7 * r * c, y + r), (0, y + 1.7 * r), (-0.7 * r * c, y + r)], SIGN,
              [235, 190, 30], T_PAINT)
    return y + 2 * r + 0.05


def _octagon_plate(sc: Scene, X: float, z: float, y: float, r: float, c: float) -> float:
    """Stop sign; returns the next y."""
    t = np.arange(8) * np.pi / 4 + np.pi / 8
    sc.sprite(X, z, sc.curb_h, np.stack([np.cos(t) * r * c, y + r + np.sin(t) * r], -1), SIGN, [195, 25, 30],
              T_PAINT)
    return y + 2 * r + 0.05


_PLATES = {"round": _round_plate, "triangle": _triangle_plate, "rect": _rect_plate, "diamond": _diamond_plate,
           "octagon": _octagon_plate}


def traffic_light(sc: Scene, X: float, z: float, s: int, hanging: bool) -> None:
    """Traffic light on a pole at the curb, or hanging from a mast arm over the road (two heads)."""
    rng = sc.rng
    col = sc.jit([rng.uniform(40, 110)] * 3, 0.1)
    h = rng.uniform(3.0, 4.2) if not hanging else rng.uniform(5.5, 6.8)
    _pole(sc, X, z, sc.curb_h, h, rng.uniform(0.12, 0.2), col)
    housing = sc.jit([35, 35, 35] if rng.random() < 0.6 else [200, 170, 40], 0.1)
    lit = rng.integers(3)
    boxes = [(0.0, h - 1.1)]
    if hanging:
        L = rng.uniform(3, 6)
        sc.sprite(X, z, sc.curb_h, seg((0, h - 0.3), (-s * L, h - 0.3), 0.12), POLE, col, T_METAL)
        boxes = [(-s * L * 0.95, h - 1.4), (-s * L * 0.5, h - 1.4)]
    elif rng.random() < 0.4:
        boxes.append((0.0, rng.uniform(1.9, 2.3) - 1.0))
    for u, y0 in boxes:
        _light_head(sc, X, z, u, y0, housing, lit)


def _light_head(sc: Scene, X: float, z: float, u: float, y0: float, housing: np.ndarray, lit: int) -> None:
    """One signal head: maybe a back plate, the housing and three lamps of which one is lit."""
    rng, b = sc.rng, sc.curb_h
    bw, bh = rng.uniform(0.28, 0.36), rng.uniform(0.8, 1.0)
    if rng.random() < 0.4:  # back plate
        sc.sprite(X, z, b, [(u - bw, y0 - 0.1), (u + bw, y0 - 0.1), (u + bw, y0 + bh + 0.1),
                            (u - bw, y0 + bh + 0.1)], LIGHT, housing * 0.9, T_PAINT)
    sc.sprite(X, z, b, [(u - bw / 2, y0), (u + bw / 2, y0), (u + bw / 2, y0 + bh), (u - bw / 2, y0 + bh)], LIGHT,
              housing, T_PAINT)
    on = [(230, 40, 30), (240, 170, 30), (60, 220, 120)]
    for i in range(3):
        cy = y0 + bh * (0.82 - 0.32 * i)
        c = on[i] if i == lit else np.array(on[i]) * 0.25 + 20
        sc.sprite_ellipse(X, z, b, u, cy, bw * 0.3, bw * 0.3, LIGHT, c, T_NONE)


def litter_bin(sc: Scene, X: float, z: float) -> None:
    """Litter bin: 'static' in Cityscapes, i.e. unlabeled (ignore)."""
    rng = sc.rng
    w, h = rng.uniform(0.35, 0.55), rng.uniform(0.7, 1.0)
    col = sc.jit([(60, 90, 60), (110, 110, 110), (200, 110, 40), (50, 50, 55)][rng.integers(4)], 0.1)
    sc.sprite(X, z, sc.curb_h, [(-w * 0.45, 0), (w * 0.45, 0), (w / 2, h), (-w / 2, h)], IGNORE_ID, col, T_METAL)
    sc.sprite(X, z, sc.curb_h, [(-w * 0.55, h - 0.03), (w * 0.55, h - 0.03), (w * 0.5, h + 0.08),
                                (-w * 0.5, h + 0.08)], IGNORE_ID, col * 0.7, T_METAL)
    sc.sprite(X, z, sc.curb_h, [(-w * 0.3, h * 0.75), (w * 0.3, h * 0.75), (w * 0.3, h * 0.82),
                                (-w * 0.3, h * 0.82)], IGNORE_ID, col * 0.5, T_METAL)
