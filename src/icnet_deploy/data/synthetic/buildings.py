"""Buildings: end-of-street facades, rows along both sides, with windows, shops, roofs and cast shadows."""

from __future__ import annotations

from typing import Any

import numpy as np

from .palette import BUILDING, T_CONCRETE, T_FACADE, T_GLASS, T_PAINT

from .canvas import Scene

Style = dict[str, Any]


def paint_buildings(sc: Scene) -> None:
    """The facades at the end of the street, then both sides' rows far to near, with their shadows."""
    rng = sc.rng
    if sc.end_wall:
        _end_of_street(sc)
    items: list = []
    for s in (-1, 1):
        if sc.side[s] == "open":
            _plan_distant_blocks(sc, s, items)
        else:
            _plan_row(sc, s, items)
    for it in sorted(items, key=lambda t: -t[0]):
        _, s, X, z0, z1, h, depth, st, yb = it
        z0 = max(z0, sc.z_near)
        if z1 > z0:
            _building(sc, s, X, z0, z1, h, depth, st, yb)
            if s == sc.sun_side and sc.sun_k > 0.1:  # cast shadow on the street
                sl = min(h * rng.uniform(0.3, 1.2), abs(X - sc.edge[-s]))
                sc.shadow([X, X - s * sl, X - s * sl, X], [z0, z0, z1, z1], sc.sun_k * 1.1)


def _end_of_street(sc: Scene) -> None:
    """A row of frontal facades closing the street in the distance."""
    rng = sc.rng
    z = sc.z_far + rng.uniform(0, 30)
    x = -rng.uniform(60, 120)
    while x < 120:
        bw = rng.uniform(8, 30)
        st = building_style(sc, False)
        h = rng.uniform(8, 30)
        sc.poly(sc.zquad(x, x + bw, 0, h, z), BUILDING, st["color"] * sc.face(0), T_FACADE, sc.hz(z))
        windows_z(sc, z, x, x + bw, 0.6, h - 0.5, st, sc.hz(z))
        x += bw


def _plan_distant_blocks(sc: Scene, s: int, items: list) -> None:
    """Open side: maybe a few large blocks far behind the park."""
    rng = sc.rng
    if rng.random() < 0.6:
        z = rng.uniform(30, 80)
        while z < sc.z_far + 50:
            L = rng.uniform(15, 50)
            items.append((z, s, sc.outer[s] + s * rng.uniform(25, 70), z, z + L, rng.uniform(10, 40),
                          20.0, building_style(sc, False), 0.0))
            z += L + rng.uniform(5, 40)


def _plan_row(sc: Scene, s: int, items: list) -> None:
    """Urban or suburban side: maybe a taller back row, then the front row, leaving the junction free."""
    rng = sc.rng
    sub = sc.side[s] == "suburban"
    if not sub and rng.random() < 0.5:  # taller back row above the front row
        z = rng.uniform(5, 40)
        while z < sc.z_far:
            L = rng.uniform(15, 40)
            items.append((z + 1000, s, sc.outer[s] + s * rng.uniform(18, 30), z, z + L,
                          rng.uniform(20, 45), 20.0, building_style(sc, False), 0.0))
            z += L + rng.uniform(0, 30)
    z = rng.uniform(0.5, 6)
    yb = sc.curb_h if sc.setback[s] in ("none", "paved") else 0.0
    while z < sc.z_far:
        L = rng.uniform(8, 18) if sub else rng.uniform(10, 32)
        gap = rng.uniform(3, 12) if (rng.random() < (0.5 if sub else 0.12)) else 0.0
        z0, z1 = z, z + L
        if sc.in_cross(z0, z1):
            a, b, c = sc.cross
            if z0 < a - c:
                z1 = a - c
            else:
                z0 = max(z0, b + c)
                z1 = max(z1, z0 + rng.uniform(10, 25))
        if z1 - z0 > 2:
            sb = rng.uniform(3, 9) if sub else (rng.uniform(0, 1.0) if sc.setback[s] == "none"
                                                else rng.uniform(2, 6))
            h = rng.uniform(5, 8.5) if sub else rng.uniform(9, 28)
            after_cross = sc.cross is not None and z0 >= sc.cross[1]
            depth = rng.uniform(60, 120) if after_cross else rng.uniform(10, 20)
            items.append((z0, s, sc.outer[s] + s * sb, z0, z1, h, depth, building_style(sc, sub), yb))
        z = z1 + gap


def building_style(sc: Scene, suburban: bool) -> Style:
    """Colours and facade rhythm of one building (floor height, window grid, shop, roof, cornice)."""
    rng = sc.rng
    palette = [(205, 190, 165), (215, 212, 205), (150, 148, 145), (150, 85, 65), (205, 185, 130),
               (195, 160, 150), (95, 95, 100), (120, 135, 150), (180, 175, 160), (160, 120, 90),
               (225, 220, 200), (130, 110, 95)]
    base = sc.jit(palette[rng.integers(len(palette))], 0.1)
    glass = sc.jit([rng.uniform(35, 80), rng.uniform(45, 85), rng.uniform(55, 100)], 0.1)
    return dict(
        color=base, glass=glass, floor=rng.uniform(2.8, 3.6), col=rng.uniform(2.2, 4.2),
        win_w=rng.uniform(0.35, 0.65), win_h=rng.uniform(0.4, 0.62),
        frame=rng.random() < 0.5, frame_col=sc.jit([225, 222, 215], 0.05) if rng.random() < 0.7 else base * 0.7,
        shop=(not suburban) and rng.random() < 0.6, cornice=rng.random() < 0.6,
        roof=suburban and rng.random() < 0.8, roof_col=sc.jit([rng.choice([150, 90, 70]), 70, 55], 0.15),
        ribbon=(not suburban) and rng.random() < 0.12,
        courses=rng.uniform(0.3, 0.7) if rng.random() < 0.3 else 0.0,  # stone/brick courses (metres)
    )


def _windows_x(sc: Scene, X: float, z0: float, z1: float, y0: float, y1: float, st: Style, haze: int) -> None:
    """Window grid on a facade plane X = const spanning z0..z1, y0..y1 (vectorised projection)."""
    cols = np.arange(z0 + st["col"] * 0.6, z1 - st["col"] * 0.4, st["col"])
    rows = np.arange(y0, y1 - st["floor"] * 0.6, st["floor"])
    if not len(cols) or not len(rows):
        return
    ww, wh = st["col"] * st["win_w"], st["floor"] * st["win_h"]
    za, zb = cols - ww / 2, cols + ww / 2
    ya, yb = rows + st["floor"] * 0.25, rows + st["floor"] * 0.25 + wh
    Z = np.stack(np.broadcast_arrays(za[None], za[None], zb[None], zb[None]), -1)  # 1×C×4
    Y = np.stack([ya, yb, yb, ya], -1)[:, None, :]  # R×1×4
    Z, Y = np.broadcast_arrays(Z, Y)
    pts = sc.p(X, Y, Z)  # R×C×4×2
    wpx = np.abs(pts[..., 2, 0] - pts[..., 0, 0])
    hpx = np.abs(pts[..., 1, 1] - pts[..., 0, 1])
    tint = sc.rng.uniform(0.7, 1.5, wpx.shape)
    frame = st["frame"]
    for r in range(pts.shape[0]):
        for c in range(pts.shape[1]):
            if wpx[r, c] < 0.6 or hpx[r, c] < 0.8:
                continue
            q = pts[r, c]
            if frame and hpx[r, c] > 5:
                sc.poly(q, BUILDING, st["frame_col"], T_PAINT, haze)
                cen = q.mean(0)
                q = cen + (q - cen) * 0.82
            sc.poly(q, BUILDING, st["glass"] * tint[r, c], T_GLASS, haze)


def windows_z(sc: Scene, Z: float, x0: float, x1: float, y0: float, y1: float, st: Style, haze: int) -> None:
    """Window grid on a plane Z = const (front faces, end-of-street facades)."""
    lo, hi = min(x0, x1), max(x0, x1)
    cols = np.arange(lo + st["col"] * 0.6, hi - st["col"] * 0.4, st["col"])
    rows = np.arange(y0, y1 - st["floor"] * 0.6, st["floor"])
    if not len(cols) or not len(rows):
        return
    ww, wh = st["col"] * st["win_w"], st["floor"] * st["win_h"]
    k = sc.f / Z
    xs0, xs1 = sc.cx + k * (cols - ww / 2), sc.cx + k * (cols + ww / 2)
    ys0 = sc.yh + k * (sc.ch - (rows + st["floor"] * 0.25))
    ys1 = ys0 - k * wh
    tint = sc.rng.uniform(0.7, 1.5, (len(rows), len(cols)))
    if k * ww < 0.6 or k * wh < 0.8:
        return
    fr = st["frame"] and k * wh > 5
    b = max(1.0, k * wh * 0.06)
    for r in range(len(rows)):
        for c in range(len(cols)):
            outer = [[xs0[c], ys0[r]], [xs1[c], ys0[r]], [xs1[c], ys1[r]], [xs0[c], ys1[r]]]
            if fr:
                sc.poly(outer, BUILDING, st["frame_col"], T_PAINT, haze)
                sc.poly([[xs0[c] + b, ys0[r] - b], [xs1[c] - b, ys0[r] - b], [xs1[c] - b, ys1[r] + b],
                         [xs0[c] + b, ys1[r] + b]], BUILDING, st["glass"] * tint[r, c], T_GLASS, haze)
            else:
                sc.poly(outer, BUILDING, st["glass"] * tint[r, c], T_GLASS, haze)


def courses(sc: Scene, X: float, y0: float, y1: float, z0: float, z1: float, step: float, cls: int,
            col: np.ndarray, haze: int) -> None:
    """Mortar lines of stone/brick courses on a plane X = const, only where they are > 2.5 px apart."""
    zmax = min(z1, sc.f * step / 2.5)
    if zmax <= z0:
        return
    t = max(0.02, step * 0.08)
    y = y0 + step
    while y < y1 - step * 0.5:
        sc.poly(sc.xquad(X, y, y + t, z0, zmax), cls, col, T_CONCRETE, haze)
        y += step


def _building(sc: Scene, s: int, X: float, z0: float, z1: float, h: float, depth: float, st: Style,
              yb: float) -> None:
    """One building: front face (towards the camera) first, then the facade along the street and its details."""
    haze = sc.hz(0.5 * (z0 + min(z1, 150)))
    side_col = st["color"] * sc.face(-s)
    front_col = st["color"] * sc.face(0) * 0.97
    sc.poly(sc.zquad(X, X + s * depth, yb, h, z0), BUILDING, front_col, T_FACADE, sc.hz(z0))
    if h > 4:
        windows_z(sc, z0, X + s * 1.0, X + s * depth, yb + (4.0 if st["shop"] else 0.6), h - 0.8, st, sc.hz(z0))
    sc.poly(sc.xquad(X, yb, h, z0, z1), BUILDING, side_col, T_FACADE, haze)
    if st["courses"]:
        courses(sc, X, yb, h, z0, z1, st["courses"], BUILDING, side_col * 0.88, haze)
    if st["roof"]:
        rh = sc.rng.uniform(2, 5)
        xr = X + s * depth / 2
        sc.poly(sc.p([X, xr, xr, X], [h, h + rh, h + rh, h], [z0, z0, z1, z1]), BUILDING,
                st["roof_col"] * sc.face(-s) * 0.9, T_CONCRETE, haze)
        sc.poly(sc.p([X, xr, X + s * depth], [h, h + rh, h], [z0, z0, z0]), BUILDING, front_col, T_FACADE,
                sc.hz(z0))
    if st["cornice"] and not st["roof"]:
        sc.poly(sc.xquad(X, h - 0.6, h, z0, z1), BUILDING, side_col * 0.85, T_FACADE, haze)
    g0 = _ground_floor(sc, X, z0, z1, st, yb, side_col, haze)
    if st["ribbon"]:  # glass office facade: horizontal window ribbons
        y = g0 + 0.8
        while y < h - 1.5:
            sc.poly(sc.xquad(X, y, y + st["floor"] * 0.55, z0 + 0.3, z1 - 0.3), BUILDING, st["glass"] * 1.2,
                    T_GLASS, haze)
            y += st["floor"]
    else:
        _windows_x(sc, X, z0, z1, g0 + (0.0 if st["shop"] else 0.4), h - 0.5, st, haze)


def _ground_floor(sc: Scene, X: float, z0: float, z1: float, st: Style, yb: float, side_col: np.ndarray,
                  haze: int) -> float:
    """Shop windows and signs, or a door; returns the height where the upper floors' windows start."""
    rng = sc.rng
    if st["shop"]:
        sc.poly(sc.xquad(X, yb, yb + 3.6, z0, z1), BUILDING, sc.jit(side_col * 0.75, 0.1), T_FACADE, haze)
        z = z0 + rng.uniform(0.5, 2)
        while z < z1 - 2:
            wz = rng.uniform(1.5, 5)
            top = yb + rng.uniform(2.4, 3.2)
            sc.poly(sc.xquad(X, yb + rng.uniform(0.0, 0.6), top, z, min(z + wz, z1 - 0.5)), BUILDING,
                    st["glass"] * rng.uniform(0.8, 1.4), T_GLASS, haze)
            if rng.random() < 0.3:  # shop sign
                sc.poly(sc.xquad(X, top + 0.1, top + 0.6, z, min(z + wz, z1 - 0.5)), BUILDING,
                        sc.jit([rng.uniform(60, 230) for _ in range(3)], 0.1), T_PAINT, haze)
            z += wz + rng.uniform(0.5, 2.0)
        return yb + 4.0
    if rng.random() < 0.6:  # door
        zd = rng.uniform(z0 + 1, max(z0 + 1.5, z1 - 2))
        sc.poly(sc.xquad(X, yb, yb + 2.2, zd, zd + 1.1), BUILDING, sc.jit([80, 60, 45], 0.2), T_PAINT, haze)
    return yb
