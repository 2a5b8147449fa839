"""Cars (in traffic, parked, crossing the junction) and the ego vehicle's bonnet.

Trucks, buses and trams are in ``heavy_vehicles``; two-wheelers in ``two_wheelers``.
"""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike

from .palette import CAR, IGNORE_ID, T_GLASS, T_METAL, T_NONE, T_PAINT

from .canvas import Scene


def vehicle_color(sc: Scene) -> np.ndarray:
    """A body colour drawn from a street's palette, greys and black most often."""
    rng = sc.rng
    pal = [(25, 25, 28), (230, 230, 228), (170, 172, 175), (110, 112, 115), (35, 45, 80), (150, 25, 25),
           (60, 70, 90), (30, 60, 40), (200, 190, 170), (80, 20, 25), (40, 90, 160), (220, 150, 40)]
    w = np.array([16, 16, 14, 12, 8, 6, 6, 3, 4, 4, 5, 2], float)
    return sc.jit(pal[rng.choice(len(pal), p=w / w.sum())], 0.05)


def wheels_x(sc: Scene, Xs: float, zs: ArrayLike, r: float, cls: int, haze: int,
             rim: tuple[int, int, int] = (150, 150, 150)) -> None:
    """Tyres with rims on a vehicle's side plane X = Xs, one per axle depth in zs."""
    for zw in zs:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        pts = sc.p(Xs, r + r * np.sin(t), zw + r * np.cos(t))
        sc.poly(pts, cls, [28, 28, 30], T_NONE, haze)
        pts = sc.p(Xs, r + 0.55 * r * np.sin(t), zw + 0.55 * r * np.cos(t))
        sc.poly(pts, cls, rim, T_METAL, haze)


def visible_side(x0: float, x1: float) -> float | None:
    """The side plane of a box x0..x1 the camera (at X = 0) sees, or None when it is straight ahead."""
    return x0 if x0 > 0 else (x1 if x1 < 0 else None)


def car(sc: Scene, Xc: float, z0: float, L: float, oncoming: bool, parked: bool = False) -> None:
    """A car, SUV or van along the street: side, bonnet/boot and cabin, then the face towards the camera."""
    rng = sc.rng
    van = rng.random() < 0.12
    suv = (not van) and rng.random() < 0.25
    w = rng.uniform(1.7, 1.95) + (0.1 if van else 0)
    h = rng.uniform(1.85, 2.2) if van else (rng.uniform(1.6, 1.78) if suv else rng.uniform(1.38, 1.52))
    clr = 0.2 if suv or van else 0.14
    hb = clr + (h - clr) * (0.5 if not van else 0.45)
    x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
    col = vehicle_color(sc)
    glass = sc.jit([40, 45, 55], 0.15)
    haze = sc.hz(z0)
    near_is_front = oncoming
    a_near = (0.35 if near_is_front else 0.18) * L
    a_far = (0.18 if near_is_front else 0.35) * L
    if van:
        a_near, a_far = (0.2 * L, 0.05 * L) if near_is_front else (0.03 * L, 0.2 * L)
    sl_near = 0.35 if not van else 0.1
    sl_far = 0.45 if not van else 0.3
    cz0, cz1 = z0 + a_near, z1 - a_far  # cabin base
    sc.shadow([x0 - 0.2, x1 + 0.2, x1 + 0.2, x0 - 0.2], [z0 - 0.3, z0 - 0.3, z1 + 0.3, z1 + 0.3], 0.65)
    # tyres seen below the near face
    for xa, xb in ((x0 + 0.02, x0 + 0.27), (x1 - 0.27, x1 - 0.02)):
        sc.poly(sc.zquad(xa, xb, 0, clr + 0.25, z0 + 0.8), CAR, [25, 25, 27], T_NONE, haze)
    xs = visible_side(x0, x1)
    if xs is not None:
        side_col = col * sc.face(1 if xs == x1 else -1)
        sc.poly(sc.xquad(xs, clr + 0.05, hb, z0, z1), CAR, side_col, T_PAINT, haze)
        sc.poly(sc.xquad(xs, clr + 0.05, clr + 0.2, z0, z1), CAR, side_col * 0.6, T_PAINT, haze)
        wheels_x(sc, xs, (z0 + 0.8, z1 - 0.85), 0.32, CAR, haze)
        sc.poly(sc.p(xs, [hb, h, h, hb], [cz0, cz0 + sl_near, cz1 - sl_far, cz1]), CAR, side_col, T_PAINT, haze)
        win = sc.p(xs, [hb + 0.06, h - 0.06, h - 0.06, hb + 0.06],
                   [cz0 + 0.1, cz0 + sl_near + 0.05, cz1 - sl_far - 0.05, cz1 - 0.1])
        sc.poly(win, CAR, glass * 1.1, T_GLASS, haze)
        zm = 0.5 * (cz0 + cz1)
        sc.poly(sc.xquad(xs, hb, h, zm - 0.06, zm + 0.06), CAR, side_col * 0.5, T_PAINT, haze)
    # top of bonnet / boot, then cabin
    sc.poly(sc.p([x0, x1, x1, x0], hb, [z0, z0, z1, z1]), CAR, col * 1.12, T_PAINT, haze)
    if h < sc.ch:
        sc.poly(sc.p([x0 + 0.1, x1 - 0.1, x1 - 0.1, x0 + 0.1], h,
                     [cz0 + sl_near, cz0 + sl_near, cz1 - sl_far, cz1 - sl_far]), CAR, col * 1.15, T_PAINT, haze)
    sc.poly(sc.p([x0 + 0.08, x1 - 0.08, x1 - 0.1, x0 + 0.1], [hb, hb, h, h],
                 [cz0, cz0, cz0 + sl_near, cz0 + sl_near]), CAR, col * sc.face(0) * 0.9, T_PAINT, haze)
    sc.poly(sc.p([x0 + 0.14, x1 - 0.14, x1 - 0.16, x0 + 0.16], [hb + 0.05, hb + 0.05, h - 0.06, h - 0.06],
                 [cz0 + 0.02, cz0 + 0.02, cz0 + sl_near - 0.03, cz0 + sl_near - 0.03]), CAR, glass, T_GLASS, haze)
    _car_near_face(sc, Xc, x0, x1, z0, clr, hb, col, near_is_front, haze)


def _car_near_face(sc: Scene, Xc: float, x0: float, x1: float, z0: float, clr: float, hb: float, col: np.ndarray,
                   near_is_front: bool, haze: int) -> None:
    """The car's face towards the camera: body, bumper, head or tail lights, number plate, grille."""
    fc = col * sc.face(0)
    sc.poly(sc.zquad(x0, x1, clr, hb, z0), CAR, fc, T_PAINT, haze)
    sc.poly(sc.zquad(x0, x1, clr, clr + 0.18, z0), CAR, fc * 0.55, T_PAINT, haze)
    ly = hb - 0.12
    lc = [240, 235, 210] if near_is_front else [190, 25, 25]
    for xa, xb in ((x0 + 0.05, x0 + 0.38), (x1 - 0.38, x1 - 0.05)):
        sc.poly(sc.zquad(xa, xb, ly - 0.12, ly + 0.05, z0), CAR, lc, T_NONE, haze)
    sc.poly(sc.zquad(Xc - 0.26, Xc + 0.26, clr + 0.22, clr + 0.33, z0), CAR, [225, 225, 220], T_NONE, haze)
    if near_is_front:
        sc.poly(sc.zquad(Xc - 0.45, Xc + 0.45, clr + 0.36, ly - 0.05, z0), CAR, fc * 0.35, T_METAL, haze)


def car_across(sc: Scene, Xc: float, zc: float, L: float) -> None:
    """Car crossing the junction (long side towards the camera)."""
    rng = sc.rng
    w, h, clr = rng.uniform(1.7, 1.9), rng.uniform(1.38, 1.55), 0.14
    hb = clr + (h - clr) * 0.5
    x0, x1 = Xc - L / 2, Xc + L / 2
    z0, z1 = zc - w / 2, zc + w / 2
    col, glass, haze = vehicle_color(sc), sc.jit([40, 45, 55], 0.15), sc.hz(z0)
    sc.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.2, z0 - 0.2, z1 + 0.2, z1 + 0.2], 0.65)
    if x0 > 0 or x1 < 0:
        xs = x0 if x0 > 0 else x1
        sc.poly(sc.xquad(xs, clr, hb, z0, z1), CAR, col * sc.face(1 if xs == x1 else -1), T_PAINT, haze)
    sc.poly(sc.p([x0, x1, x1, x0], hb, [z0, z0, z1, z1]), CAR, col * 1.12, T_PAINT, haze)
    d = 1 if rng.random() < 0.5 else -1
    a, b = (0.18 * L, 0.35 * L) if d > 0 else (0.35 * L, 0.18 * L)
    sc.poly(sc.p([x0 + a, x0 + a + 0.45, x1 - b - 0.35, x1 - b], [hb, h, h, hb], z0 + 0.1), CAR,
            col * sc.face(0), T_PAINT, haze)
    sc.poly(sc.p([x0 + a + 0.12, x0 + a + 0.5, x1 - b - 0.4, x1 - b - 0.12],
                 [hb + 0.06, h - 0.06, h - 0.06, hb + 0.06], z0 + 0.1), CAR, glass, T_GLASS, haze)
    sc.poly(sc.zquad(x0, x1, clr, hb, z0), CAR, col * sc.face(0), T_PAINT, haze)
    k = sc.f / z0
    for xw in (x0 + 0.8, x1 - 0.8):
        cx, cy = sc.cx + k * xw, sc.yh + k * (sc.ch - 0.32)
        sc.ellipse(cx, cy, k * 0.32, k * 0.32, CAR, [28, 28, 30], T_NONE, haze)
        sc.ellipse(cx, cy, k * 0.18, k * 0.18, CAR, [150, 150, 150], T_METAL, haze)


def ego_hood(sc: Scene) -> None:
    """The recording car's bonnet at the bottom edge: 'ego vehicle' is unlabeled (ignore) in Cityscapes."""
    rng, H, W = sc.rng, sc.H, sc.W
    hh = H * rng.uniform(0.04, 0.09)
    xs = np.linspace(-0.05 * W, 1.05 * W, 33)
    ys = H - hh * (1 - ((xs - sc.cx) / (0.75 * W)) ** 2).clip(0.25, 1)
    col = vehicle_color(sc) * 0.7
    sc.poly(np.concatenate([np.stack([xs, ys], -1), [[1.05 * W, H + 2], [-0.05 * W, H + 2]]]), IGNORE_ID, col,
            T_PAINT, 0)
    ys2 = ys + hh * 0.35
    sc.poly(np.concatenate([np.stack([xs, ys2], -1), [[1.05 * W, H + 2], [-0.05 * W, H + 2]]]), IGNORE_ID,
            col * 0.75, T_PAINT, 0)
