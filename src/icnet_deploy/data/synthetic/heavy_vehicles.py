"""Trucks, buses and trams: long boxes along the street with the face towards the camera drawn last."""

from __future__ import annotations


import numpy as np

from .palette import BUS, T_GLASS, T_METAL, T_NONE, T_PAINT, TRAIN, TRUCK
from .vehicles import vehicle_color, visible_side, wheels_x

from .canvas import Scene


def _box_shadow(sc: Scene, x0: float, x1: float, z0: float, z1: float, darkness: float) -> None:
    """The shadow of a long vehicle: its footprint widened by 0.3 m."""
    sc.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.3, z0 - 0.3, z1 + 0.3, z1 + 0.3], darkness)


def _rear_lights(sc: Scene, cls: int, xs: tuple[float, float], y0: float, y1: float, z0: float, front: bool,
                 haze: int) -> None:
    """Head lights (seen from the front) or tail lights, 0.3 m wide, at the given left edges."""
    lc = [240, 235, 210] if front else [190, 25, 25]
    for xa in xs:
        sc.poly(sc.zquad(xa, xa + 0.3, y0, y1, z0), cls, lc, T_NONE, haze)


def truck(sc: Scene, Xc: float, z0: float, L: float, oncoming: bool) -> None:
    """A box truck: cab and cargo box, the nearer one drawn last (cab first when it drives away)."""
    rng = sc.rng
    w, h = rng.uniform(2.3, 2.55), rng.uniform(3.0, 4.0)
    x0, x1 = Xc - w / 2, Xc + w / 2
    cargo_col = sc.jit([rng.uniform(180, 240)] * 3, 0.08) if rng.random() < 0.6 else vehicle_color(sc)
    cab_col = vehicle_color(sc)
    haze = sc.hz(z0)
    cab_len = 2.2
    if oncoming:
        cab = (z0, z0 + cab_len)
        box = (z0 + cab_len + 0.2, z0 + L)
    else:
        box = (z0, z0 + L - cab_len - 0.2)
        cab = (z0 + L - cab_len, z0 + L)
    _box_shadow(sc, x0, x1, z0, z0 + L, 0.6)
    xs = visible_side(x0, x1)
    ch_h = rng.uniform(2.6, 3.0)
    parts = ((x0, x1, Xc), xs, haze, oncoming)
    if oncoming:
        _truck_box(sc, *parts, box, h, ch_h, cargo_col, L)
        _truck_cab(sc, *parts, cab, ch_h, cab_col)
    else:
        _truck_cab(sc, *parts, cab, ch_h, cab_col)
        _truck_box(sc, *parts, box, h, ch_h, cargo_col, L)


def _truck_cab(sc: Scene, xr: tuple[float, float, float], xs: float | None, haze: int, oncoming: bool,
               cab: tuple[float, float], ch_h: float, cab_col: np.ndarray) -> None:
    """The cab: side with window and front wheel; windscreen and grille when it comes towards the camera."""
    x0, x1, Xc = xr
    if xs is not None:
        sc.poly(sc.xquad(xs, 0.5, ch_h, cab[0], cab[1]), TRUCK, cab_col * sc.face(np.sign(xs) * -1), T_PAINT, haze)
        sc.poly(sc.xquad(xs, 1.6, ch_h - 0.25, cab[0] + 0.2, cab[1] - 0.6), TRUCK, [45, 50, 60], T_GLASS, haze)
        wheels_x(sc, xs, (cab[0] + 1.0,), 0.5, TRUCK, haze)
    if oncoming:
        sc.poly(sc.zquad(x0, x1, 0.5, ch_h, cab[0]), TRUCK, cab_col * sc.face(0), T_PAINT, haze)
        sc.poly(sc.zquad(x0 + 0.15, x1 - 0.15, 1.6, ch_h - 0.25, cab[0]), TRUCK, [45, 50, 60], T_GLASS, haze)
        sc.poly(sc.zquad(Xc - 0.7, Xc + 0.7, 0.6, 1.3, cab[0]), TRUCK, [50, 50, 50], T_METAL, haze)


def _truck_box(sc: Scene, xr: tuple[float, float, float], xs: float | None, haze: int, oncoming: bool,
               box: tuple[float, float], h: float, ch_h: float, cargo_col: np.ndarray, L: float) -> None:
    """The cargo box: side with chassis, wheels and maybe a logo; its rear (doors, lights) when driving away."""
    rng = sc.rng
    x0, x1, Xc = xr
    if xs is not None:
        sc.poly(sc.xquad(xs, 0.9, h, box[0], box[1]), TRUCK, cargo_col * sc.face(-np.sign(xs)), T_PAINT, haze)
        sc.poly(sc.xquad(xs, 0.6, 0.95, box[0], box[1]), TRUCK, [40, 40, 42], T_METAL, haze)
        n_ax = 2 if L > 7 else 1
        wheels_x(sc, xs, [box[1] - 1.0 - 1.3 * i for i in range(n_ax)], 0.5, TRUCK, haze)
        if rng.random() < 0.4:
            sc.poly(sc.xquad(xs, h * 0.5, h * 0.7, box[0] + 1, box[1] - 1), TRUCK,
                    sc.jit([rng.uniform(30, 220) for _ in range(3)], 0.1), T_PAINT, haze)
    if not oncoming:
        sc.poly(sc.zquad(x0 + 0.2, x0 + 0.55, 0, 1.0, box[0] + 0.8), TRUCK, [25, 25, 27], T_NONE, haze)
        sc.poly(sc.zquad(x1 - 0.55, x1 - 0.2, 0, 1.0, box[0] + 0.8), TRUCK, [25, 25, 27], T_NONE, haze)
        fc = cargo_col * sc.face(0)
        sc.poly(sc.zquad(x0, x1, 0.9, h, box[0]), TRUCK, fc, T_PAINT, haze)
        sc.poly(sc.zquad(Xc - 0.03, Xc + 0.03, 1.0, h - 0.1, box[0]), TRUCK, fc * 0.6, T_PAINT, haze)
        sc.poly(sc.zquad(x0 + 0.1, x1 - 0.1, 0.45, 0.6, box[0]), TRUCK, [50, 50, 50], T_METAL, haze)
        for xa in (x0 + 0.1, x1 - 0.4):
            sc.poly(sc.zquad(xa, xa + 0.3, 0.95, 1.15, box[0]), TRUCK, [190, 30, 30], T_NONE, haze)
    elif ch_h < h:
        sc.poly(sc.zquad(x0, x1, ch_h, h, box[0]), TRUCK, cargo_col * sc.face(0), T_PAINT, haze)


def bus(sc: Scene, Xc: float, z0: float, L: float, oncoming: bool) -> None:
    """A city bus (12 m, or 18 m articulated): side with windows, door and axles, then its near end."""
    rng = sc.rng
    w, h, clr = 2.55, rng.uniform(2.9, 3.2), 0.3
    x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
    col = sc.jit([(230, 200, 40), (235, 235, 230), (200, 40, 40), (40, 90, 170), (220, 120, 30)][rng.integers(5)],
                 0.06)
    glass = sc.jit([40, 48, 58], 0.1)
    haze = sc.hz(z0)
    _box_shadow(sc, x0, x1, z0, z1, 0.6)
    for xa, xb in ((x0 + 0.1, x0 + 0.4), (x1 - 0.4, x1 - 0.1)):
        sc.poly(sc.zquad(xa, xb, 0, clr + 0.3, z0 + 2.5), BUS, [25, 25, 27], T_NONE, haze)
    xs = visible_side(x0, x1)
    if xs is not None:
        side_col = col * sc.face(-np.sign(xs))
        sc.poly(sc.xquad(xs, clr, h, z0, z1), BUS, side_col, T_PAINT, haze)
        sc.poly(sc.xquad(xs, 1.15, 2.6, z0 + 0.3, z1 - 0.3), BUS, glass, T_GLASS, haze)
        z = z0 + rng.uniform(1.2, 2.0)
        while z < z1 - 0.5:
            sc.poly(sc.xquad(xs, 1.15, 2.6, z, z + 0.12), BUS, side_col * 0.8, T_PAINT, haze)
            z += rng.uniform(1.3, 1.9)
        sc.poly(sc.xquad(xs, clr, 2.6, z0 + 2.0, z0 + 3.1), BUS, glass * 0.8, T_GLASS, haze)  # door
        axles = [z0 + 2.6, z1 - 3.0] + ([z0 + L / 2 + 1.5] if L > 14 else [])
        wheels_x(sc, xs, axles, 0.5, BUS, haze)
        if L > 14:
            sc.poly(sc.xquad(xs, clr, h, z0 + L / 2 - 0.4, z0 + L / 2 + 0.4), BUS, [40, 40, 40], T_METAL, haze)
    fc = col * sc.face(0)
    sc.poly(sc.zquad(x0, x1, clr, h, z0), BUS, fc, T_PAINT, haze)
    if oncoming:
        sc.poly(sc.zquad(x0 + 0.1, x1 - 0.1, 1.0, h - 0.35, z0), BUS, glass, T_GLASS, haze)
        sc.poly(sc.zquad(x0 + 0.3, x1 - 0.3, h - 0.32, h - 0.08, z0), BUS, [30, 30, 30], T_PAINT, haze)
        sc.poly(sc.zquad(x0 + 0.6, x0 + 1.4, h - 0.28, h - 0.12, z0), BUS, [240, 150, 30], T_NONE, haze)
    else:
        sc.poly(sc.zquad(x0 + 0.3, x1 - 0.3, 1.9, h - 0.2, z0), BUS, glass, T_GLASS, haze)
        sc.poly(sc.zquad(x0 + 0.4, x1 - 0.4, 0.5, 1.1, z0), BUS, fc * 0.5, T_METAL, haze)
    _rear_lights(sc, BUS, (x0 + 0.1, x1 - 0.4), 0.6, 0.85, z0, oncoming, haze)


def tram(sc: Scene, Xc: float, z0: float, L: float, oncoming: bool) -> None:
    """A tram on the track (class train): pantograph, side with windows, then its near end."""
    rng = sc.rng
    w, h, clr = 2.65, 3.4, 0.35
    x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
    col = sc.jit([(235, 235, 230), (200, 30, 30), (240, 200, 30), (30, 120, 60)][rng.integers(4)], 0.05)
    glass = sc.jit([40, 48, 58], 0.1)
    haze = sc.hz(z0)
    _box_shadow(sc, x0, x1, z0, z1, 0.55)
    xs = visible_side(x0, x1)
    _pantograph(sc, Xc, h, z0 + L * 0.3, haze)
    if xs is not None:
        side_col = col * sc.face(-np.sign(xs))
        sc.poly(sc.xquad(xs, clr, h, z0, z1), TRAIN, side_col, T_PAINT, haze)
        sc.poly(sc.xquad(xs, 1.3, 2.7, z0 + 1.5, z1 - 1.0), TRAIN, glass, T_GLASS, haze)
        z = z0 + 2.5
        while z < z1 - 1.5:
            sc.poly(sc.xquad(xs, 1.3, 2.7, z, z + 0.15), TRAIN, side_col, T_PAINT, haze)
            z += rng.uniform(1.5, 2.2)
        sc.poly(sc.xquad(xs, clr, 0.7, z0, z1), TRAIN, side_col * 0.5, T_PAINT, haze)
    fc = col * sc.face(0)
    sc.poly(sc.zquad(x0, x1, clr, h, z0), TRAIN, fc, T_PAINT, haze)
    sc.poly(sc.zquad(x0 + 0.15, x1 - 0.15, 1.2, h - 0.3, z0), TRAIN, glass, T_GLASS, haze)
    sc.poly(sc.zquad(x0, x1, clr, 0.6, z0), TRAIN, fc * 0.5, T_PAINT, haze)
    _rear_lights(sc, TRAIN, (x0 + 0.15, x1 - 0.45), 0.8, 1.0, z0, oncoming, haze)


def _pantograph(sc: Scene, Xc: float, h: float, zp: float, haze: int) -> None:
    """The pantograph on the tram's roof at depth zp: two arms (at least a pixel thick) and the bow."""
    k = sc.p([Xc - 0.6, Xc, Xc + 0.6], [h + 0.1, h + 1.0, h + 0.1], zp)
    for i in range(2):
        sc.poly(np.concatenate([k[i:i + 2], k[i:i + 2][::-1] + [0, -max(1.0, 0.05 * sc.f / zp)]]),
                TRAIN, [60, 60, 60], T_METAL, haze)
    sc.poly(sc.p([Xc - 0.9, Xc + 0.9, Xc + 0.9, Xc - 0.9], [h + 1.0, h + 1.0, h + 1.06, h + 1.06], zp),
            TRAIN, [60, 60, 60], T_METAL, haze)
