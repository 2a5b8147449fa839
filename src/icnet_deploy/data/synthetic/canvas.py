"""The scene's state: camera, canvases, street layout and the drawing primitives every painter uses.

A pinhole camera over a flat ground plane (horizon, vanishing point, metric object sizes). Every
object is a set of polygons/ellipses in world metres, projected and drawn far-to-near (painter's
algorithm) on two canvases that share one rasteriser: the RGB image and a "meta" canvas holding
(train id, texture id, haze). Because both receive the same primitive in the same order, every
pixel's label is the class of the object drawn last there.

Every random draw comes from ``Scene.rng`` in a fixed order (the painters are called in the order
``scene.render`` lists), so a seed is the same street at any image size; pixel noise has its own stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw

from .mix import SceneMix
from .palette import GROUND_HAZE, SKY, T_SKY, to_color


class Scene:
    """One scene: camera, lighting, canvases, street layout and the painter's queue of standing objects."""

    def __init__(self, seed: int, height: int, width: int, mix: SceneMix = SceneMix()) -> None:
        self.mix = mix
        # two streams: layout/geometry (same draws at every image size, so a seed is the same street at
        # any resolution) and pixel noise (array shapes depend on the size)
        self.rng = rng = np.random.default_rng(seed)
        self.nrng = np.random.default_rng([seed, 0x5EED])
        self.H, self.W = height, width
        self.f = width * rng.uniform(0.95, 1.2)  # Cityscapes: f ~ 1.1 W
        self.yh = height * rng.uniform(0.35, 0.55)  # horizon row
        self.cx = width * rng.uniform(0.4, 0.6)  # vanishing point column (slight yaw)
        self.ch = rng.uniform(1.15, 1.5)  # camera height, metres
        self.z_bot = self.f * self.ch / (height - self.yh)  # depth seen at the bottom row
        self.z_near = 0.6 * self.z_bot
        self.scale = width / 2048.0
        w = rng.random()
        self.weather = "clear" if w < 0.55 else ("hazy" if w < 0.8 else "overcast")
        self.sun_k = {"clear": rng.uniform(0.22, 0.45), "hazy": rng.uniform(0.12, 0.28),
                      "overcast": rng.uniform(0.03, 0.1)}[self.weather]
        self.sun_side = 1 if rng.random() < 0.5 else -1  # facades on side -sun_side face the sun
        self.front_light = rng.uniform(-0.6, 0.6)
        self.haze_max = {"clear": rng.uniform(0.1, 0.3), "hazy": rng.uniform(0.3, 0.55),
                         "overcast": rng.uniform(0.2, 0.45)}[self.weather]
        self.haze_dist = rng.uniform(150.0, 500.0)
        self.queue: list = []
        self.zebra: tuple[float, float] | None = None
        self._n = 0

    def open_canvases(self, image: np.ndarray, sky_horizon: np.ndarray) -> None:
        """Start the three canvases from the sky: RGB image, meta (id, texture, haze) and ground shadows."""
        self.sky_horizon = sky_horizon
        self.img = Image.fromarray(image)
        self.meta = Image.new("RGB", (self.W, self.H), (SKY, T_SKY, 0))
        self.shadows = Image.new("L", (self.W, self.H), 0)
        self.di, self.dm, self.ds = ImageDraw.Draw(self.img), ImageDraw.Draw(self.meta), ImageDraw.Draw(self.shadows)

    # ---------------------------------------------------------------- geometry and drawing
    def p(self, X: ArrayLike, Y: ArrayLike, Z: ArrayLike) -> np.ndarray:
        """Project world points (metres; X right, Y up, Z depth) to pixel (x, y)."""
        X, Y, Z = np.broadcast_arrays(np.asarray(X, float), np.asarray(Y, float), np.asarray(Z, float))
        Z = np.maximum(Z, 0.5)
        return np.stack([self.cx + self.f * X / Z, self.yh + self.f * (self.ch - Y) / Z], axis=-1)

    def hz(self, z: float) -> int:
        """Aerial haze (0..254) of an object at depth z; 255 is reserved for ground pixels."""
        return int(min(254.0, 254.0 * (1.0 - math.exp(-max(z, 0.0) / self.haze_dist))))

    def poly(self, pts: ArrayLike, cls: int, color: ArrayLike, tex: int, haze: int) -> None:
        """Fill one pixel-space polygon on the image and, with its class/texture/haze, on the meta canvas."""
        xy = np.asarray(pts, float).ravel().tolist()  # |coords| < 1e8 since depth >= 0.5 m
        if len(xy) < 6:
            return
        self.di.polygon(xy, fill=to_color(color))
        self.dm.polygon(xy, fill=(cls, tex, haze))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, cls: int, color: ArrayLike, tex: int, haze: int,
                ring: float = 0.0) -> None:
        """Pixel-space ellipse on both canvases; ``ring`` > 0 draws only an outline that wide (tyres)."""
        if rx <= 0 or ry <= 0:
            return
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if box[2] < 0 or box[0] > self.W or box[3] < 0 or box[1] > self.H:
            return
        if ring > 0:
            wd = max(1, int(round(ring)))
            self.di.ellipse(box, outline=to_color(color), width=wd)
            self.dm.ellipse(box, outline=(cls, tex, haze), width=wd)
        else:
            self.di.ellipse(box, fill=to_color(color))
            self.dm.ellipse(box, fill=(cls, tex, haze))

    def sprite(self, X: float, z: float, base: float, uv: ArrayLike, cls: int, color: ArrayLike, tex: int) -> None:
        """Polygon given in local metres (u right, v up) on the frontal plane at depth z."""
        uv = np.asarray(uv, float)
        k = self.f / z
        pts = np.stack([self.cx + k * (X + uv[:, 0]), self.yh + k * (self.ch - base - uv[:, 1])], -1)
        self.poly(pts, cls, color, tex, self.hz(z))

    def sprite_ellipse(self, X: float, z: float, base: float, u: float, v: float, ru: float, rv: float, cls: int,
                       color: ArrayLike, tex: int, ring_m: float = 0.0) -> None:
        """Ellipse in local metres on the frontal plane at depth z (crowns, heads, wheels, round signs)."""
        k = self.f / z
        self.ellipse(self.cx + k * (X + u), self.yh + k * (self.ch - base - v), k * ru, k * rv, cls, color, tex,
                     self.hz(z), ring=k * ring_m)

    def gpoly(self, X: ArrayLike, Z: ArrayLike, cls: int, color: ArrayLike, tex: int, Y: float = 0.0) -> None:
        """Ground polygon (haze from the row)."""
        self.poly(self.p(X, Y, Z), cls, color, tex, GROUND_HAZE)

    def gquad(self, x0: float, x1: float, z0: float, z1: float, cls: int, color: ArrayLike, tex: int,
              Y: float = 0.0) -> None:
        """Axis-aligned ground rectangle x0..x1 × z0..z1 at height Y (lanes, curbs, paint)."""
        self.gpoly([x0, x1, x1, x0], [z0, z0, z1, z1], cls, color, tex, Y)

    def shadow(self, X: ArrayLike, Z: ArrayLike, darkness: float) -> None:
        """Ground shadow polygon; it darkens only ground classes, in the image effects."""
        xy = self.p(X, 0.0, Z).ravel().tolist()
        self.ds.polygon(xy, fill=int(np.clip(darkness * 255, 0, 255)))

    def xquad(self, X: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        """Projected rectangle on the plane X = const (facades and sides along the street)."""
        return self.p([X, X, X, X], [y0, y1, y1, y0], [z0, z0, z1, z1])

    def zquad(self, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
        """Projected rectangle on the plane Z = const (faces towards the camera)."""
        return self.p([x0, x1, x1, x0], [y0, y0, y1, y1], [z, z, z, z])

    def add(self, z: float, fn: Callable[..., None], *args: Any) -> None:
        """Queue a standing object at depth z; ``render`` draws the queue far to near as fn(scene, *args)."""
        self._n += 1
        self.queue.append((z, self._n, fn, args))

    def jit(self, c: ArrayLike, a: float = 0.08) -> np.ndarray:
        """A colour varied in brightness and tint by about ``a``, so no two objects look the same."""
        c = np.asarray(c, float)
        return c * self.rng.uniform(1 - a, 1 + a) * (1 + self.rng.normal(0, a / 3, 3))

    def face(self, normal_x: float) -> float:
        """Brightness of a vertical face whose normal points along X (sign) or at the camera (0)."""
        if normal_x == 0:
            return 1.0 + self.sun_k * self.front_light
        return 1.0 + self.sun_k * (1.0 if np.sign(normal_x) == self.sun_side else -1.0)

    def z_between(self, lo: float, hi: float) -> float:
        """A depth drawn log-uniformly in lo..hi: objects spread evenly over the image rows."""
        lo = max(lo, 1.0)
        return float(np.exp(self.rng.uniform(np.log(lo), np.log(max(hi, lo + 1e-3)))))

    # ---------------------------------------------------------------- layout
    def lay_out(self) -> None:
        """The street plan: lanes, median, parking, sidewalks, building sides, junction, tram track."""
        rng = self.rng
        self.lw = lw = rng.uniform(2.8, 3.6)
        self.n_right = int(rng.choice([1, 1, 2, 2, 3]))
        self.n_left = int(rng.choice([0, 1, 1, 2, 2, 3]))
        cam_lane = int(rng.integers(self.n_right))
        self.xc = xc = -(cam_lane + 0.5) * lw  # centre line (between directions)
        self.median = 0.0
        self.median_kind = None
        if self.n_left and rng.random() < 0.22:
            self.median = rng.uniform(1.2, 4.5)
            self.median_kind = "grass" if rng.random() < 0.6 else "island"
        self.right_lanes = [xc + (i + 0.5) * lw for i in range(self.n_right)]
        self.left_lanes = [xc - self.median - (j + 0.5) * lw for j in range(self.n_left)]
        xr, xl = xc + self.n_right * lw, xc - self.median - self.n_left * lw
        self.park = {-1: rng.random() < 0.45, 1: rng.random() < 0.5}
        self.bike_lane = rng.random() < 0.25
        if self.bike_lane:
            xr += 1.6
        if self.park[1]:
            xr += 2.2
        if self.park[-1]:
            xl -= 2.2
        self.edge = {-1: xl, 1: xr}
        self.curb_h = rng.uniform(0.08, 0.16)
        self.sw = {s: rng.uniform(2.0, 6.0) for s in (-1, 1)}
        self.outer = {s: self.edge[s] + s * self.sw[s] for s in (-1, 1)}
        self.verge = {s: (rng.uniform(0.8, min(2.2, self.sw[s] - 1.2)) if self.sw[s] > 2.6 and rng.random() < 0.4
                          else 0.0) for s in (-1, 1)}
        kinds = ["urban", "urban", "urban", "suburban", "suburban", "open"]
        self.side = {s: str(rng.choice(kinds)) for s in (-1, 1)}
        if self.side[-1] == "open" and self.side[1] == "open":
            self.side[1] = "urban"
        self.setback = {s: (rng.choice(["none", "terrain", "paved", "parking"], p=[0.45, 0.35, 0.15, 0.05])
                            if self.side[s] == "urban" else
                            rng.choice(["terrain", "paved"], p=[0.8, 0.2])) for s in (-1, 1)}
        self.cross = None
        if rng.random() < 0.5:
            zx = rng.uniform(10, 45)
            self.cross = (zx, zx + rng.uniform(9, 18), rng.uniform(2, 4.5))  # z0, z1, corner sidewalk width
        self.z_far = rng.uniform(70, 260)
        self.end_wall = rng.random() < 0.55
        self.asphalt = np.array([rng.uniform(70, 120)] * 3) * (1 + rng.normal(0, 0.03, 3)) + rng.uniform(-6, 6)
        self.train = rng.random() < self.mix.train
        self.track_x = self.right_lanes[0] if self.train else None
        tones = [(190, 190, 185), (170, 165, 160), (200, 190, 175), (175, 150, 140), (150, 150, 155), (210, 205, 195)]
        self.paving = {s: self.jit(tones[rng.integers(len(tones))], 0.08) for s in (-1, 1)}
        self.grass = self.jit([rng.uniform(70, 125), rng.uniform(100, 145), rng.uniform(40, 70)], 0.06)

    def in_cross(self, z0: float, z1: float, pad: float = 0.0) -> bool:
        """Whether depths z0..z1 overlap the junction (with its corner sidewalks): nothing stands there."""
        if self.cross is None:
            return False
        a, b, c = self.cross
        return z1 > a - c - pad and z0 < b + c + pad
