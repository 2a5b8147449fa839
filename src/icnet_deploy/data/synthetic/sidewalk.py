"""Ground beside the road: terrain, setbacks, sidewalks with their paving joints, curbs, grass verges."""

from __future__ import annotations


from .palette import GROUND_HAZE, IGNORE_ID, SIDEWALK, T_ASPHALT, T_CONCRETE, T_GRASS, T_PAVING, TERRAIN

from .canvas import Scene

FAR = 2000.0  # lateral extent of the ground plane (metres): beyond any image edge
Z_FAR = 5000.0  # depth where ground polygons end: at the horizon for every camera


def paint_sides(sc: Scene) -> None:
    """Terrain everywhere, then on each side the setback, sidewalk, curb and verge."""
    sc.gquad(-FAR, FAR, sc.z_near, Z_FAR, TERRAIN, sc.grass, T_GRASS)
    for s in (-1, 1):
        _setback(sc, s)
        _sidewalk(sc, s)
        if sc.verge[s]:  # grass verge between curb and footway (trees stand in it)
            e = sc.edge[s] + s * 0.25
            sc.gquad(e, e + s * sc.verge[s], sc.z_near, Z_FAR, TERRAIN, sc.grass, T_GRASS, Y=sc.curb_h)


def _setback(sc: Scene, s: int) -> None:
    """What lies beyond the sidewalk on side s: a paved forecourt, a car park (unlabeled) or terrain."""
    zn, o, kind = sc.z_near, sc.outer[s], sc.setback[s]
    if kind == "paved":
        sc.gquad(o, s * FAR, zn, Z_FAR, SIDEWALK, sc.paving[s] * 0.95, T_PAVING, Y=sc.curb_h)
    elif kind == "parking":
        sc.gquad(o, s * FAR, zn, Z_FAR, IGNORE_ID, sc.asphalt * 1.05, T_ASPHALT)
    elif sc.side[s] == "urban" and kind == "none":
        sc.gquad(o, s * FAR, zn, Z_FAR, SIDEWALK, sc.paving[s], T_PAVING, Y=sc.curb_h)


def _sidewalk(sc: Scene, s: int) -> None:
    """Sidewalk on side s: paving, maybe a strip of other paving, curb top stones and curb face, joints."""
    rng, zn, edge = sc.rng, sc.z_near, sc.edge[s]
    sc.gquad(edge, sc.outer[s], zn, Z_FAR, SIDEWALK, sc.paving[s], T_PAVING, Y=sc.curb_h)
    if sc.sw[s] > 2.5 and rng.random() < 0.5:  # a strip of different paving
        a = edge + s * rng.uniform(0.6, 1.5)
        sc.gquad(a, a + s * rng.uniform(0.4, 1.0), zn, Z_FAR, SIDEWALK, sc.jit(sc.paving[s], 0.1), T_PAVING,
                 Y=sc.curb_h)
    curb = sc.jit([175, 175, 172], 0.05)
    sc.gquad(edge, edge + s * 0.25, zn, Z_FAR, SIDEWALK, curb, T_CONCRETE, Y=sc.curb_h)
    sc.poly(sc.xquad(edge, 0, sc.curb_h, zn, Z_FAR), SIDEWALK, curb * 0.8, T_CONCRETE, GROUND_HAZE)
    _joints(sc, s)


def _joints(sc: Scene, s: int) -> None:
    """Paving joints near the camera (same class as the sidewalk)."""
    tile = sc.rng.uniform(0.3, 1.5)
    col = sc.paving[s] * 0.8
    e, o = sc.edge[s] + s * 0.25, sc.outer[s]
    z = sc.z_near
    while z < 25:
        sc.gquad(e, o, z, z + 0.035, SIDEWALK, col, T_PAVING, Y=sc.curb_h)
        z += tile
    x = e + s * tile
    while (x - o) * s < 0:
        sc.gquad(x, x + 0.035, sc.z_near, 25, SIDEWALK, col, T_PAVING, Y=sc.curb_h)
        x += s * tile
