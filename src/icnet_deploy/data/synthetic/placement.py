"""Where standing objects go: trees, street furniture, traffic, parked vehicles and people.

Nothing is drawn here (except tree pits on the sidewalk): each object is queued with its depth, and
the scene draws the queue far to near. The order of the random draws is part of every seed's scene.
"""

from __future__ import annotations


from .heavy_vehicles import bus, tram, truck
from .palette import T_GRASS, TERRAIN
from .people import person
from .street_furniture import lamp, litter_bin, sign, traffic_light
from .two_wheelers import cycle
from .vegetation import bush, tree
from .vehicles import car, car_across

from .canvas import Scene


def place_objects(sc: Scene) -> None:
    """Queue everything that stands in the scene, in the draw order the seeds were made with."""
    rng = sc.rng
    for s in (-1, 1):
        _street_trees(sc, s)
        if sc.side[s] in ("open", "suburban"):
            _park_trees(sc, s)
        _lamps(sc, s)
        for _ in range(rng.integers(0, 5)):  # traffic signs
            z = sc.z_between(sc.z_bot, 90)
            sc.add(z, sign, sc.edge[s] + s * rng.uniform(0.3, 0.9), z, s)
        # litter bins / bollards (static objects are "unlabeled" in Cityscapes: ignore)
        for _ in range(rng.integers(0, 2)):
            z = sc.z_between(max(sc.z_bot, 7.0), 60)
            sc.add(z, litter_bin, sc.edge[s] + s * rng.uniform(0.4, 1.0), z)
    if sc.median_kind == "grass" and rng.random() < 0.7:
        z = rng.uniform(3, 12)
        while z < 150:
            sc.add(z, tree, sc.xc - sc.median / 2, z, 0.0, rng.uniform(0.7, 1.1))
            z += rng.uniform(8, 15)
    _traffic_lights(sc)
    _traffic(sc)
    _people(sc)


def _street_trees(sc: Scene, s: int) -> None:
    """A row of trees along side s (on the sidewalk, in the verge or behind), with grass pits."""
    rng = sc.rng
    if rng.random() >= {"urban": 0.5, "suburban": 0.75, "open": 0.9}[sc.side[s]]:
        return
    z = rng.uniform(2, 12)
    sp = rng.uniform(7, 16)
    xt = sc.edge[s] + s * min(rng.uniform(0.8, 1.5), sc.sw[s] * 0.5)
    if sc.verge[s]:
        xt = sc.edge[s] + s * (0.25 + sc.verge[s] / 2)
    if sc.sw[s] < 2.2 or rng.random() < 0.3:
        xt = sc.outer[s] + s * rng.uniform(1.0, 3.0)
    size = rng.uniform(0.7, 1.3)
    while z < 150:
        if not sc.in_cross(z, z, 1.0):
            sc.add(z, tree, xt + rng.normal(0, 0.1), z, sc.curb_h, size * rng.uniform(0.8, 1.2))
            if abs(xt - sc.edge[s]) < sc.sw[s] and rng.random() < 0.6:
                sc.gquad(xt - 0.6, xt + 0.6, z - 0.6, z + 0.6, TERRAIN, sc.grass * 0.8, T_GRASS, Y=sc.curb_h)
        z += sp * rng.uniform(0.85, 1.15)


def _park_trees(sc: Scene, s: int) -> None:
    """Scattered trees and bushes behind the sidewalk of an open or suburban side."""
    rng = sc.rng
    open_side = sc.side[s] == "open"
    for _ in range(rng.integers(3, 18 if open_side else 8)):
        z = sc.z_between(6, 160)
        x = sc.outer[s] + s * rng.uniform(2, 45 if open_side else 5)
        if rng.random() < 0.6:
            sc.add(z, tree, x, z, 0.0, rng.uniform(0.8, 1.8))
        else:
            sc.add(z, bush, x, z, 0.0)


def _lamps(sc: Scene, s: int) -> None:
    """Evenly spaced street lamps of one style along side s."""
    rng = sc.rng
    if rng.random() >= 0.8:
        return
    z = rng.uniform(3, 25)
    sp = rng.uniform(18, 40)
    xl = sc.edge[s] + s * rng.uniform(0.35, 0.7)
    st = (rng.uniform(5.5, 9.5), rng.uniform(0.12, 0.22), sc.jit([rng.uniform(70, 150)] * 3, 0.1),
          rng.random() < 0.8)
    while z < 200:
        if not sc.in_cross(z, z):
            sc.add(z, lamp, xl, z, s, st)
        z += sp


def _traffic_lights(sc: Scene) -> None:
    """Junction: lights at the corners, some hanging over the road; elsewhere maybe a pedestrian light."""
    rng = sc.rng
    if sc.cross:
        a, b, c = sc.cross
        for s in (-1, 1):
            for zl in (a - c * 0.5, b + c * 0.5):
                if rng.random() < 0.8:
                    sc.add(zl, traffic_light, sc.edge[s] + s * 0.6, zl, s, rng.random() < 0.35)
    elif rng.random() < 0.35:  # a pedestrian light
        zl = rng.uniform(15, 50)
        s = int(rng.choice([-1, 1]))
        sc.add(zl, traffic_light, sc.edge[s] + s * 0.5, zl, s, False)


def _lane(sc: Scene, x: float, oncoming: bool, density: float, truck_p: float, bus_p: float,
          moto_p: float) -> None:
    """Vehicles one behind the other in the lane at x: trucks, buses, motorcycles or cars, with gaps."""
    rng, zb = sc.rng, sc.z_bot
    z = rng.uniform(zb + 2.5, 25) if not oncoming else rng.uniform(zb, 20)
    if abs(x) < sc.lw / 2:  # our own lane: keep a safe distance
        z = max(z, zb + rng.uniform(3, 10))
    while z < 160:
        r = rng.random()
        if rng.random() < density:
            if r < truck_p:
                L = rng.uniform(6, 10)
                sc.add(z, truck, x + rng.normal(0, 0.2), z, L, oncoming)
            elif r < truck_p + bus_p:
                L = rng.choice([12.0, 12.0, 18.0])
                sc.add(z, bus, x + rng.normal(0, 0.2), z, L, oncoming)
            elif r < truck_p + bus_p + moto_p:
                L = 2.2
                sc.add(z, cycle, x + rng.normal(0, 0.3), z, 0.0, "motorcycle", -1 if oncoming else 1,
                       rng.uniform(0.08, 0.3), True)
            else:
                L = rng.uniform(3.9, 5.0)
                sc.add(z, car, x + rng.normal(0, 0.25), z, L, oncoming)
        else:
            L = rng.uniform(4, 12)
        z += L + rng.uniform(2.5, 30) * (1.3 - density)


def _traffic(sc: Scene) -> None:
    """Moving traffic in every lane (a tram on the track), parked vehicles, junction traffic, cyclists."""
    rng, zb, mix = sc.rng, sc.z_bot, sc.mix
    density = rng.uniform(0.25, 0.9)
    truck_p = rng.uniform(0.0, 0.15) * mix.heavy * mix.trucks
    bus_p = rng.uniform(0.0, 0.12) * mix.heavy
    moto_p = 0.05 * mix.two_wheelers
    for x in sc.right_lanes:
        if sc.train and x == sc.track_x:
            if rng.random() < 0.8:
                zt = rng.uniform(zb + 4, 60)
                sc.add(zt, tram, x, zt, rng.uniform(22, 38), rng.random() < 0.4)
            continue
        _lane(sc, x, False, density, truck_p, bus_p, moto_p)
    for x in sc.left_lanes:
        _lane(sc, x, True, density, truck_p, bus_p, moto_p)
    for s in (-1, 1):
        if sc.park[s]:
            _parked(sc, s)
    if sc.cross and rng.random() < 0.6:  # crossing traffic in the junction
        a, b, _ = sc.cross
        for _ in range(rng.integers(1, 3)):
            zc = rng.uniform(a + 2, b - 2)
            xc_ = rng.uniform(-25, 25)
            sc.add(zc - 1, car_across, xc_, zc, rng.uniform(3.9, 4.9))
    _cyclists(sc)


def _parked(sc: Scene, s: int) -> None:
    """Parked cars (a few motorcycles) in the parking lane of side s."""
    rng = sc.rng
    x = sc.edge[s] - s * 1.1
    z = rng.uniform(1, 8)
    occ = rng.uniform(0.3, 0.9)
    while z < 120:
        L = rng.uniform(3.8, 5.0)
        if not sc.in_cross(z, z + L) and rng.random() < occ:
            if rng.random() < 0.06 * sc.mix.two_wheelers:
                sc.add(z, cycle, x, z, 0.0, "motorcycle", s, rng.uniform(0.1, 0.9), False)
            else:
                sc.add(z, car, x + rng.normal(0, 0.1), z, L, bool(rng.random() < 0.1), True)
        z += L + rng.uniform(0.4, 3)


def _cyclists(sc: Scene) -> None:
    """Cyclists on the right edge or bike lane, and two-wheelers crossing the junction."""
    rng, zb = sc.rng, sc.z_bot
    if rng.random() < min(1.0, 0.6 * sc.mix.two_wheelers):
        xb = sc.edge[1] - (2.2 if sc.park[1] else 0) - 0.8
        for _ in range(rng.integers(1, 4)):
            z = sc.z_between(zb + 1, 70)
            sc.add(z, cycle, xb + rng.normal(0, 0.2), z, 0.0, "bicycle", 1, rng.uniform(0.05, 0.3), True)
    if sc.cross and rng.random() < min(1.0, 0.4 * sc.mix.two_wheelers):
        a, b, _ = sc.cross
        for _ in range(rng.integers(1, 3)):
            z = rng.uniform(a + 1, b - 1)
            kind = "bicycle" if rng.random() < 0.7 else "motorcycle"
            sc.add(z, cycle, rng.uniform(-15, 15), z, 0.0, kind, int(rng.choice([-1, 1])), rng.uniform(0.7, 1.0),
                   True)


def _people(sc: Scene) -> None:
    """Pedestrians on the sidewalks (some in groups), parked bicycles, people in parks, crossing, jaywalking."""
    rng, zb = sc.rng, sc.z_bot
    lam = rng.uniform(0, 12)
    for s in (-1, 1):
        for _ in range(rng.poisson(lam / 2)):
            z = sc.z_between(zb * 0.9, 80)
            x = sc.edge[s] + s * rng.uniform(0.5, max(0.6, sc.sw[s] - 0.3))
            group = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
            for g in range(group):
                sc.add(z + g * 0.3, person, x + g * rng.uniform(0.45, 0.7) * s, z + g * 0.3, sc.curb_h)
        if rng.random() < 0.5:  # parked bicycles
            z = sc.z_between(zb, 50)
            x = sc.outer[s] - s * rng.uniform(0.4, 1.0)
            c = rng.uniform(0.15, 1.0)
            for i in range(rng.integers(1, 7)):
                sc.add(z + i * 0.7 * c, cycle, x, z + i * 0.7 * c, sc.curb_h, "bicycle", int(rng.choice([-1, 1])), c,
                       False)
        if sc.side[s] != "urban" and sc.setback[s] == "terrain":
            for _ in range(rng.poisson(1.0)):
                z = sc.z_between(8, 60)
                sc.add(z, person, sc.outer[s] + s * rng.uniform(1, 15), z, 0.0)
    if sc.cross:  # pedestrians crossing (on the zebra if there is one)
        z0, z1 = sc.zebra or (sc.cross[0] - sc.cross[2] - 4, sc.cross[0] - sc.cross[2] - 1)
        for _ in range(rng.poisson(rng.uniform(0, 4))):
            z = rng.uniform(z0 + 0.3, z1 - 0.3)
            sc.add(z, person, rng.uniform(sc.edge[-1], sc.edge[1]), z, 0.0, 0.85)
    for _ in range(rng.poisson(0.6)):  # jaywalker / someone next to a parked car
        z = sc.z_between(zb + 1, 50)
        sc.add(z, person, rng.uniform(sc.edge[-1] + 0.5, sc.edge[1] - 0.5), z, 0.0)
