"""Procedural street scenes with pixel-exact Cityscapes train-id labels.

Why: the project trains and evaluates ICNet without access to the real Cityscapes data, so it
needs a deterministic, licence-free stand-in whose labels are exact by construction.

How: a pinhole camera over a flat ground plane (horizon, vanishing point, metric object sizes).
Every object is a set of polygons/ellipses in world metres, projected and drawn far-to-near
(painter's algorithm) with PIL on two canvases that share one rasteriser: the RGB image and a
"meta" canvas holding (train id, texture id, haze). Because both canvases receive the same
primitive in the same order, every pixel's label is the class of the object drawn last there.
Image-only effects are applied afterwards per pixel and never touch the label: texture noise
(per texture id), shadows on the ground, aerial haze, exposure/contrast/colour temperature,
vignetting, sensor noise and a slight blur.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from ..errors import DataError
from ..fileio import atomic_path
from ..labels import CLASSES, IGNORE_ID, train_ids_to_label_ids

__all__ = ["generate_scene", "write_dataset", "write_images"]

_T = {c.name: c.train_id for c in CLASSES}
ROAD, SIDEWALK, BUILDING, WALL, FENCE = _T["road"], _T["sidewalk"], _T["building"], _T["wall"], _T["fence"]
POLE, LIGHT, SIGN, VEG, TERRAIN, SKY = (_T[n] for n in ("pole", "traffic light", "traffic sign", "vegetation",
                                                         "terrain", "sky"))
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN = (_T[n] for n in ("person", "rider", "car", "truck", "bus", "train"))
MOTO, BIKE = _T["motorcycle"], _T["bicycle"]

# Texture ids (meta canvas channel 1) and their brightness modulation (fine, medium, coarse noise).
(T_NONE, T_ASPHALT, T_PAVING, T_FACADE, T_FOLIAGE, T_GRASS, T_PAINT, T_SKY, T_CLOTH, T_GLASS, T_BARK,
 T_CONCRETE, T_METAL) = range(13)
_TEX_AMP = np.zeros((256, 3), np.float32)  # per texture id: (fine, medium, coarse) amplitude
for _t, _a in {
    T_NONE: (0.04, 0.0, 0.02), T_ASPHALT: (0.20, 0.05, 0.05), T_PAVING: (0.16, 0.05, 0.05),
    T_FACADE: (0.10, 0.03, 0.05), T_FOLIAGE: (0.25, 0.40, 0.08), T_GRASS: (0.40, 0.22, 0.10),
    T_PAINT: (0.04, 0.0, 0.03), T_SKY: (0.0, 0.0, 0.0), T_CLOTH: (0.12, 0.06, 0.02), T_GLASS: (0.04, 0.03, 0.12),
    T_BARK: (0.35, 0.12, 0.05), T_CONCRETE: (0.14, 0.05, 0.06), T_METAL: (0.05, 0.0, 0.04),
}.items():
    _TEX_AMP[_t] = _a
# as 8-bit PIL point() tables: a lookup over a whole 2-Mpixel image costs ~2 ms this way
_TEX_SCALE = 255.0 / 0.5
_TEX_LUT8 = [np.clip(np.round(_TEX_AMP[:, i] * _TEX_SCALE), 0, 255).astype(int).tolist() for i in range(3)]
_GROUND_HAZE = 255  # meta canvas channel 2: haze from the pixel's row (ground plane), else 0..254 per object
_GROUND_LUT8 = [255 if i in (ROAD, SIDEWALK, TERRAIN) else 0 for i in range(256)]  # shadows darken ground only
_HAZE_LUT8 = [round(i * 255 / 254) if i < _GROUND_HAZE else 0 for i in range(256)]
_GROUND_HAZE_LUT8 = [255 if i == _GROUND_HAZE else 0 for i in range(256)]

Color = tuple[int, int, int]


def _col(c) -> Color:
    r, g, b = (float(v) for v in c)
    return (min(255, max(0, int(r + 0.5))), min(255, max(0, int(g + 0.5))), min(255, max(0, int(b + 0.5))))


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of 2-D points; used to give thin side-view parts a lateral width."""
    p = sorted(set(map(tuple, np.round(pts, 6).tolist())))
    if len(p) <= 2:
        return np.array(p)

    def half(seq):
        out: list = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(reversed(p))
    return np.array(lower[:-1] + upper[:-1])


def _seg(p, q, t: float) -> np.ndarray:
    """Quad of thickness t around segment p-q (local metres): tubes, limbs, poles."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    n = math.hypot(d[0], d[1])
    if n < 1e-9:
        d = np.array([0.0, 1.0])
        n = 1.0
    o = np.array([-d[1], d[0]]) / n * (t / 2)
    return np.array([p + o, q + o, q - o, p - o])


@dataclass(frozen=True)
class SceneMix:
    """How often the rare street objects appear: a knob for *training* data only.

    The defaults are the generator every validation, held-out and calibration set was made with;
    with them a seed gives the same scene as before this class existed (the same random draws).
    Raising them shows the network more of what it confuses (trucks and buses, which it reads as
    train; trams; small two-wheelers) without touching the sets it is judged on.
    """

    train: float = 0.1  # probability that a scene has a tram track (and, mostly, a tram)
    heavy: float = 1.0  # multiplier on the per-lane truck and bus rates (drawn up to 0.15 / 0.12)
    two_wheelers: float = 1.0  # multiplier on motorcycles in traffic and parked, and on cyclist groups
    trucks: float = 1.0  # a further multiplier on the truck rate alone (trucks are what it now reads as train)

    def __post_init__(self) -> None:
        for name, value, hi in (("train", self.train, 1.0), ("heavy", self.heavy, 2.5),
                                ("two_wheelers", self.two_wheelers, 3.0), ("trucks", self.trucks, 3.0)):
            if not 0.0 <= value <= hi:
                raise ValueError(f"scene mix {name}={value} is out of range 0..{hi}")

    @property
    def is_default(self) -> bool:
        return self == SceneMix()

    def require_split(self, split: str) -> None:
        """Refuse a non-default mix for any split but ``train``: held-out sets must not change."""
        if not self.is_default and split != "train":
            raise DataError(f"a scene mix other than the default (--train-prob/--heavy/--two-wheelers/--trucks) is "
                            f"for training data only (--split train), not split '{split}': held-out sets must stay "
                            "the scenes every score was measured on")


class _Scene:
    """One scene: camera, canvases, layout and the painter's queue of standing objects."""

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

    # ---------------------------------------------------------------- geometry and drawing
    def p(self, X, Y, Z) -> np.ndarray:
        X, Y, Z = np.broadcast_arrays(np.asarray(X, float), np.asarray(Y, float), np.asarray(Z, float))
        Z = np.maximum(Z, 0.5)
        return np.stack([self.cx + self.f * X / Z, self.yh + self.f * (self.ch - Y) / Z], axis=-1)

    def hz(self, z: float) -> int:
        return int(min(254.0, 254.0 * (1.0 - math.exp(-max(z, 0.0) / self.haze_dist))))

    def poly(self, pts, cls: int, color, tex: int, haze: int) -> None:
        xy = np.asarray(pts, float).ravel().tolist()  # |coords| < 1e8 since depth >= 0.5 m
        if len(xy) < 6:
            return
        self.di.polygon(xy, fill=_col(color))
        self.dm.polygon(xy, fill=(cls, tex, haze))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, cls: int, color, tex: int, haze: int,
                ring: float = 0.0) -> None:
        if rx <= 0 or ry <= 0:
            return
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if box[2] < 0 or box[0] > self.W or box[3] < 0 or box[1] > self.H:
            return
        if ring > 0:
            wd = max(1, int(round(ring)))
            self.di.ellipse(box, outline=_col(color), width=wd)
            self.dm.ellipse(box, outline=(cls, tex, haze), width=wd)
        else:
            self.di.ellipse(box, fill=_col(color))
            self.dm.ellipse(box, fill=(cls, tex, haze))

    def sprite(self, X: float, z: float, base: float, uv, cls: int, color, tex: int) -> None:
        """Polygon given in local metres (u right, v up) on the frontal plane at depth z."""
        uv = np.asarray(uv, float)
        k = self.f / z
        pts = np.stack([self.cx + k * (X + uv[:, 0]), self.yh + k * (self.ch - base - uv[:, 1])], -1)
        self.poly(pts, cls, color, tex, self.hz(z))

    def sprite_ellipse(self, X, z, base, u, v, ru, rv, cls, color, tex, ring_m: float = 0.0) -> None:
        k = self.f / z
        self.ellipse(self.cx + k * (X + u), self.yh + k * (self.ch - base - v), k * ru, k * rv, cls, color, tex,
                     self.hz(z), ring=k * ring_m)

    def gpoly(self, X, Z, cls: int, color, tex: int, Y: float = 0.0) -> None:
        """Ground polygon (haze from the row)."""
        self.poly(self.p(X, Y, Z), cls, color, tex, _GROUND_HAZE)

    def gquad(self, x0, x1, z0, z1, cls, color, tex, Y=0.0) -> None:
        self.gpoly([x0, x1, x1, x0], [z0, z0, z1, z1], cls, color, tex, Y)

    def shadow(self, X, Z, darkness: float) -> None:
        xy = self.p(X, 0.0, Z).ravel().tolist()
        self.ds.polygon(xy, fill=int(np.clip(darkness * 255, 0, 255)))

    def xquad(self, X, y0, y1, z0, z1):
        return self.p([X, X, X, X], [y0, y1, y1, y0], [z0, z0, z1, z1])

    def zquad(self, x0, x1, y0, y1, z):
        return self.p([x0, x1, x1, x0], [y0, y0, y1, y1], [z, z, z, z])

    def add(self, z: float, fn: Callable, *args) -> None:
        self._n += 1
        self.queue.append((z, self._n, fn, args))

    def jit(self, c, a: float = 0.08) -> np.ndarray:
        c = np.asarray(c, float)
        return c * self.rng.uniform(1 - a, 1 + a) * (1 + self.rng.normal(0, a / 3, 3))

    def face(self, normal_x: float) -> float:
        """Brightness of a vertical face whose normal points along X (sign) or at the camera (0)."""
        if normal_x == 0:
            return 1.0 + self.sun_k * self.front_light
        return 1.0 + self.sun_k * (1.0 if np.sign(normal_x) == self.sun_side else -1.0)

    # ---------------------------------------------------------------- scene
    def render(self) -> tuple[np.ndarray, np.ndarray]:
        self._sky()
        self._layout()
        self._skyline()
        self._ground()
        self._buildings()
        self._boundaries()
        self._plan_objects()
        for _, _, fn, args in sorted(self.queue, key=lambda t: (-t[0], t[1])):
            fn(*args)
        if self.rng.random() < 0.45:
            self._ego_hood()
        return self._finish()

    def _sky(self) -> None:
        rng, H, W = self.rng, self.H, self.W
        img = np.zeros((H, W, 3), np.uint8)
        rows = int(min(H, math.ceil(self.yh) + 2))
        if self.weather == "clear":
            top = np.array([rng.uniform(55, 115), rng.uniform(110, 160), rng.uniform(185, 240)])
            hor = np.array([rng.uniform(175, 215), rng.uniform(195, 225), rng.uniform(220, 245)])
            cover, cloud = rng.uniform(0.0, 0.8), np.array([245.0, 245, 248])
        elif self.weather == "hazy":
            top = np.array([rng.uniform(130, 170), rng.uniform(160, 190), rng.uniform(195, 225)])
            hor = np.array([rng.uniform(205, 230)] * 3) + rng.uniform(-5, 5, 3)
            cover, cloud = rng.uniform(0.2, 0.9), np.array([235.0, 236, 238])
        else:
            g = rng.uniform(140, 190)
            top = np.array([g, g + 3, g + 8])
            hor = np.array([g + 30, g + 32, g + 35]).clip(0, 245)
            cover, cloud = 1.0, np.array([g - 25, g - 22, g - 18])
        self.sky_horizon = hor
        # smooth content: computed at 1/4 resolution and upsampled
        sr = 4 if min(rows, W) >= 64 else 1
        rw, rr = -(-W // sr), -(-rows // sr)
        t = (np.arange(rr, dtype=np.float32) * sr / max(self.yh, 1.0)).clip(0, 1)[:, None] ** 0.7
        grad = (top[None] * (1 - t) + hor[None] * t).astype(np.float32)  # rows×3
        cs = max(4, rw // 12)
        n1 = self.nrng.standard_normal((rr // cs + 3, rw // cs + 3)).astype(np.float32)
        n2 = self.nrng.standard_normal((rr // (cs // 3) + 3, rw // (cs // 3) + 3)).astype(np.float32)
        big = np.asarray(Image.fromarray(n1, "F").resize((rw, rr), Image.BICUBIC))
        small = np.asarray(Image.fromarray(n2, "F").resize((rw, rr), Image.BICUBIC))
        field = big + 0.45 * small
        thr = 1.3 - 1.6 * cover
        alpha = np.clip((field - thr) * rng.uniform(0.6, 1.5), 0, 1) * (0.5 + 0.5 * t)  # flatter near horizon
        if self.weather == "overcast":
            alpha *= 0.6
        shade = (1.0 - 0.12 * np.clip(small, -1, 1))[..., None]
        sky = grad[:, None, :] * (1 - alpha[..., None]) + (cloud[None, None, :] * shade) * alpha[..., None]
        sky8 = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)).resize((W, rows), Image.BILINEAR)
        img[:rows] = np.asarray(sky8)
        self.img = Image.fromarray(img)
        self.meta = Image.new("RGB", (W, H), (SKY, T_SKY, 0))
        self.shadows = Image.new("L", (W, H), 0)
        self.di, self.dm, self.ds = ImageDraw.Draw(self.img), ImageDraw.Draw(self.meta), ImageDraw.Draw(self.shadows)

    # ---------------------------------------------------------------- layout
    def _layout(self) -> None:
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
        if self.cross is None:
            return False
        a, b, c = self.cross
        return z1 > a - c - pad and z0 < b + c + pad

    # ---------------------------------------------------------------- far background
    def _skyline(self) -> None:
        rng, W, H = self.rng, self.W, self.H
        yh = self.yh
        if rng.random() < 0.6:  # distant tree line
            n = 40
            xs = np.linspace(-5, W + 5, n)
            amp = H * rng.uniform(0.01, 0.05)
            hs = amp * (0.5 + np.abs(np.cumsum(rng.normal(0, 0.35, n))) % 1.5) + rng.uniform(0, amp * 0.4, n)
            pts = np.concatenate([np.stack([xs, yh - hs], -1), [[W + 5, yh + 2], [-5, yh + 2]]])
            self.poly(pts, VEG, self.jit([70, 95, 60], 0.1), T_FOLIAGE, self.hz(600))
        if rng.random() < 0.55:  # distant building blocks
            x = rng.uniform(-0.1, 0.2) * W
            while x < W:
                bw = W * rng.uniform(0.02, 0.1)
                bh = H * rng.uniform(0.015, 0.12)
                if rng.random() < 0.75:
                    col = self.jit([rng.uniform(120, 190)] * 3, 0.1)
                    self.poly([[x, yh - bh], [x + bw, yh - bh], [x + bw, yh + 2], [x, yh + 2]], BUILDING, col,
                              T_FACADE, self.hz(700))
                x += bw * rng.uniform(0.7, 1.6)

    # ---------------------------------------------------------------- ground plane
    def _ground(self) -> None:
        rng = self.rng
        zn, zf = self.z_near, 5000.0
        far = 2000.0
        self.gquad(-far, far, zn, zf, TERRAIN, self.grass, T_GRASS)
        for s in (-1, 1):
            o = self.outer[s]
            kind = self.setback[s]
            if kind == "paved":
                self.gquad(o, s * far, zn, zf, SIDEWALK, self.paving[s] * 0.95, T_PAVING, Y=self.curb_h)
            elif kind == "parking":
                self.gquad(o, s * far, zn, zf, IGNORE_ID, self.asphalt * 1.05, T_ASPHALT)
            elif self.side[s] == "urban" and kind == "none":
                self.gquad(o, s * far, zn, zf, SIDEWALK, self.paving[s], T_PAVING, Y=self.curb_h)
            # sidewalk, curb top stones, curb face
            self.gquad(self.edge[s], o, zn, zf, SIDEWALK, self.paving[s], T_PAVING, Y=self.curb_h)
            if self.sw[s] > 2.5 and rng.random() < 0.5:  # a strip of different paving
                a = self.edge[s] + s * rng.uniform(0.6, 1.5)
                self.gquad(a, a + s * rng.uniform(0.4, 1.0), zn, zf, SIDEWALK, self.jit(self.paving[s], 0.1),
                           T_PAVING, Y=self.curb_h)
            curb = self.jit([175, 175, 172], 0.05)
            self.gquad(self.edge[s], self.edge[s] + s * 0.25, zn, zf, SIDEWALK, curb, T_CONCRETE, Y=self.curb_h)
            self.poly(self.xquad(self.edge[s], 0, self.curb_h, zn, zf), SIDEWALK, curb * 0.8, T_CONCRETE,
                      _GROUND_HAZE)
            self._joints(s)
            if self.verge[s]:  # grass verge between curb and footway (trees stand in it)
                e = self.edge[s] + s * 0.25
                self.gquad(e, e + s * self.verge[s], zn, zf, TERRAIN, self.grass, T_GRASS, Y=self.curb_h)
        # road
        xl, xr = self.edge[-1], self.edge[1]
        self.gquad(xl, xr, zn, zf, ROAD, self.asphalt, T_ASPHALT)
        for _ in range(rng.integers(0, 6)):  # repaired patches, darker tyre tracks
            z0 = float(np.exp(rng.uniform(np.log(self.z_bot), np.log(80))))
            x0 = rng.uniform(xl, xr - 1)
            self.gquad(x0, min(xr, x0 + rng.uniform(0.8, 5)), z0, z0 + rng.uniform(1, 12), ROAD,
                       self.asphalt * rng.uniform(0.8, 1.15), T_ASPHALT)
        if self.median:
            m0, m1 = self.xc - self.median, self.xc
            if self.median_kind == "grass":
                self.gquad(m0, m1, zn, zf, TERRAIN, self.grass * 0.95, T_GRASS)
            else:
                self.gquad(m0, m1, zn, zf, SIDEWALK, self.paving[1], T_PAVING, Y=self.curb_h)
            for x in (m0, m1):
                self.gquad(x - 0.12, x + 0.12, zn, zf, SIDEWALK, [170, 170, 168], T_CONCRETE, Y=self.curb_h)
        if self.bike_lane:
            b = self.edge[1] - (2.2 if self.park[1] else 0.0)
            self.gquad(b - 1.6, b, zn, zf, ROAD, self.jit([150, 80, 70], 0.08), T_ASPHALT)
        if self.train:
            for o in (-0.72, 0.72):
                for e in (-0.04, 0.04):
                    self.gquad(self.track_x + o + e - 0.03, self.track_x + o + e + 0.03, zn, zf, ROAD,
                               [150, 145, 140], T_METAL)
        self._markings()
        if self.cross:
            a, b, c = self.cross
            for s in (-1, 1):
                for z0, z1 in ((a - c, a), (b, b + c)):
                    self.gquad(self.outer[s], s * far, z0, z1, SIDEWALK, self.paving[s], T_PAVING, Y=self.curb_h)
            self.gquad(-far, far, a, b, ROAD, self.asphalt * 0.97, T_ASPHALT)
            if rng.random() < 0.7:  # zebra crossing before the junction
                zc0 = a - c * 0.3 - rng.uniform(3, 5)
                self.zebra = (zc0, zc0 + 3.0)
                x = xl + 0.3
                white = self.jit([225, 225, 220], 0.05)
                while x < xr - 0.5:
                    self.gquad(x, x + 0.5, zc0, zc0 + rng.uniform(3, 4), ROAD, white, T_PAINT)
                    x += 1.0
                if rng.random() < 0.5:  # stop line
                    self.gquad(xl, xr, zc0 - 1.0, zc0 - 0.6, ROAD, white, T_PAINT)

    def _joints(self, s: int) -> None:
        """Paving joints near the camera (same class as the sidewalk)."""
        tile = self.rng.uniform(0.3, 1.5)
        col = self.paving[s] * 0.8
        e, o = self.edge[s] + s * 0.25, self.outer[s]
        z = self.z_near
        while z < 25:
            self.gquad(e, o, z, z + 0.035, SIDEWALK, col, T_PAVING, Y=self.curb_h)
            z += tile
        x = e + s * tile
        while (x - o) * s < 0:
            self.gquad(x, x + 0.035, self.z_near, 25, SIDEWALK, col, T_PAVING, Y=self.curb_h)
            x += s * tile

    def _markings(self) -> None:
        rng = self.rng
        white = self.jit([228, 228, 222], 0.04) * rng.uniform(0.8, 1.0)
        yellow = self.jit([215, 180, 60], 0.06)
        zn = self.z_near
        wear = rng.uniform(0.55, 1.0)
        white = self.asphalt + (white - self.asphalt) * wear

        def dashed(x, width, dash, gap, col):
            z = zn + rng.uniform(0, dash + gap)
            while z < 180:
                if not self.in_cross(z, z + dash):
                    self.gquad(x - width / 2, x + width / 2, z, z + dash, ROAD, col, T_PAINT)
                z += dash + gap

        def solid(x, width, col):
            segs = [(zn, 5000.0)]
            if self.cross:
                a, b, c = self.cross
                segs = [(zn, a - c), (b + c, 5000.0)]
            for z0, z1 in segs:
                self.gquad(x - width / 2, x + width / 2, z0, z1, ROAD, col, T_PAINT)

        lw_ = rng.uniform(0.1, 0.16)
        dash, gap = (3.0, 6.0) if rng.random() < 0.6 else (6.0, 12.0)
        for i in range(1, self.n_right):
            dashed(self.xc + i * self.lw, lw_, dash, gap, white)
        for j in range(1, self.n_left):
            dashed(self.xc - self.median - j * self.lw, lw_, dash, gap, white)
        if self.n_left and not self.median:
            c = yellow if rng.random() < 0.2 else white
            if rng.random() < 0.5:
                solid(self.xc, lw_, c)
            else:
                dashed(self.xc, lw_, dash, gap, c)
        if rng.random() < 0.6:
            for s in (-1, 1):
                x = self.edge[s] - s * (2.2 if self.park[s] else 0.3) - s * (1.6 if s == 1 and self.bike_lane else 0)
                solid(x, lw_ * 0.9, white)

    # ---------------------------------------------------------------- buildings
    def _building_style(self, suburban: bool) -> dict:
        rng = self.rng
        palette = [(205, 190, 165), (215, 212, 205), (150, 148, 145), (150, 85, 65), (205, 185, 130),
                   (195, 160, 150), (95, 95, 100), (120, 135, 150), (180, 175, 160), (160, 120, 90),
                   (225, 220, 200), (130, 110, 95)]
        base = self.jit(palette[rng.integers(len(palette))], 0.1)
        glass = self.jit([rng.uniform(35, 80), rng.uniform(45, 85), rng.uniform(55, 100)], 0.1)
        return dict(
            color=base, glass=glass, floor=rng.uniform(2.8, 3.6), col=rng.uniform(2.2, 4.2),
            win_w=rng.uniform(0.35, 0.65), win_h=rng.uniform(0.4, 0.62),
            frame=rng.random() < 0.5, frame_col=self.jit([225, 222, 215], 0.05) if rng.random() < 0.7 else base * 0.7,
            shop=(not suburban) and rng.random() < 0.6, cornice=rng.random() < 0.6,
            roof=suburban and rng.random() < 0.8, roof_col=self.jit([rng.choice([150, 90, 70]), 70, 55], 0.15),
            ribbon=(not suburban) and rng.random() < 0.12,
            courses=rng.uniform(0.3, 0.7) if rng.random() < 0.3 else 0.0,  # stone/brick courses (metres)
        )

    def _windows_x(self, X, s, z0, z1, y0, y1, st, haze):
        """Window grid on a facade plane X = const spanning z0..z1, y0..y1 (vectorised projection)."""
        rng = self.rng
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
        pts = self.p(X, Y, Z)  # R×C×4×2
        wpx = np.abs(pts[..., 2, 0] - pts[..., 0, 0])
        hpx = np.abs(pts[..., 1, 1] - pts[..., 0, 1])
        tint = rng.uniform(0.7, 1.5, wpx.shape)
        frame = st["frame"]
        for r in range(pts.shape[0]):
            for c in range(pts.shape[1]):
                if wpx[r, c] < 0.6 or hpx[r, c] < 0.8:
                    continue
                q = pts[r, c]
                if frame and hpx[r, c] > 5:
                    self.poly(q, BUILDING, st["frame_col"], T_PAINT, haze)
                    cen = q.mean(0)
                    q = cen + (q - cen) * 0.82
                self.poly(q, BUILDING, st["glass"] * tint[r, c], T_GLASS, haze)

    def _windows_z(self, Z, x0, x1, y0, y1, st, haze):
        """Window grid on a plane Z = const (front faces, end-of-street facades)."""
        rng = self.rng
        lo, hi = min(x0, x1), max(x0, x1)
        cols = np.arange(lo + st["col"] * 0.6, hi - st["col"] * 0.4, st["col"])
        rows = np.arange(y0, y1 - st["floor"] * 0.6, st["floor"])
        if not len(cols) or not len(rows):
            return
        ww, wh = st["col"] * st["win_w"], st["floor"] * st["win_h"]
        k = self.f / Z
        xs0, xs1 = self.cx + k * (cols - ww / 2), self.cx + k * (cols + ww / 2)
        ys0 = self.yh + k * (self.ch - (rows + st["floor"] * 0.25))
        ys1 = ys0 - k * wh
        tint = rng.uniform(0.7, 1.5, (len(rows), len(cols)))
        if k * ww < 0.6 or k * wh < 0.8:
            return
        fr = st["frame"] and k * wh > 5
        b = max(1.0, k * wh * 0.06)
        for r in range(len(rows)):
            for c in range(len(cols)):
                if fr:
                    self.poly([[xs0[c], ys0[r]], [xs1[c], ys0[r]], [xs1[c], ys1[r]], [xs0[c], ys1[r]]], BUILDING,
                              st["frame_col"], T_PAINT, haze)
                    self.poly([[xs0[c] + b, ys0[r] - b], [xs1[c] - b, ys0[r] - b], [xs1[c] - b, ys1[r] + b],
                               [xs0[c] + b, ys1[r] + b]], BUILDING, st["glass"] * tint[r, c], T_GLASS, haze)
                else:
                    self.poly([[xs0[c], ys0[r]], [xs1[c], ys0[r]], [xs1[c], ys1[r]], [xs0[c], ys1[r]]], BUILDING,
                              st["glass"] * tint[r, c], T_GLASS, haze)

    def _courses(self, X, y0, y1, z0, z1, step, cls, col, haze) -> None:
        """Mortar lines of stone/brick courses on a plane X = const, only where they are > 2.5 px apart."""
        zmax = min(z1, self.f * step / 2.5)
        if zmax <= z0:
            return
        t = max(0.02, step * 0.08)
        y = y0 + step
        while y < y1 - step * 0.5:
            self.poly(self.xquad(X, y, y + t, z0, zmax), cls, col, T_CONCRETE, haze)
            y += step

    def _building(self, s: int, X: float, z0: float, z1: float, h: float, depth: float, st: dict, yb: float):
        rng = self.rng
        haze = self.hz(0.5 * (z0 + min(z1, 150)))
        side_col = st["color"] * self.face(-s)
        front_col = st["color"] * self.face(0) * 0.97
        # front face (towards the camera) first, then the facade along the street
        self.poly(self.zquad(X, X + s * depth, yb, h, z0), BUILDING, front_col, T_FACADE, self.hz(z0))
        if h > 4:
            self._windows_z(z0, X + s * 1.0, X + s * depth, yb + (4.0 if st["shop"] else 0.6), h - 0.8, st,
                            self.hz(z0))
        self.poly(self.xquad(X, yb, h, z0, z1), BUILDING, side_col, T_FACADE, haze)
        if st["courses"]:
            self._courses(X, yb, h, z0, z1, st["courses"], BUILDING, side_col * 0.88, haze)
        if st["roof"]:
            rh = rng.uniform(2, 5)
            xr = X + s * depth / 2
            self.poly(self.p([X, xr, xr, X], [h, h + rh, h + rh, h], [z0, z0, z1, z1]), BUILDING,
                      st["roof_col"] * self.face(-s) * 0.9, T_CONCRETE, haze)
            self.poly(self.p([X, xr, X + s * depth], [h, h + rh, h], [z0, z0, z0]), BUILDING, front_col, T_FACADE,
                      self.hz(z0))
        if st["cornice"] and not st["roof"]:
            self.poly(self.xquad(X, h - 0.6, h, z0, z1), BUILDING, side_col * 0.85, T_FACADE, haze)
        g0 = yb
        if st["shop"]:
            self.poly(self.xquad(X, yb, yb + 3.6, z0, z1), BUILDING, self.jit(side_col * 0.75, 0.1), T_FACADE, haze)
            z = z0 + rng.uniform(0.5, 2)
            while z < z1 - 2:
                wz = rng.uniform(1.5, 5)
                top = yb + rng.uniform(2.4, 3.2)
                self.poly(self.xquad(X, yb + rng.uniform(0.0, 0.6), top, z, min(z + wz, z1 - 0.5)), BUILDING,
                          st["glass"] * rng.uniform(0.8, 1.4), T_GLASS, haze)
                if rng.random() < 0.3:  # shop sign
                    self.poly(self.xquad(X, top + 0.1, top + 0.6, z, min(z + wz, z1 - 0.5)), BUILDING,
                              self.jit([rng.uniform(60, 230) for _ in range(3)], 0.1), T_PAINT, haze)
                z += wz + rng.uniform(0.5, 2.0)
            g0 = yb + 4.0
        elif rng.random() < 0.6:  # door
            zd = rng.uniform(z0 + 1, max(z0 + 1.5, z1 - 2))
            self.poly(self.xquad(X, yb, yb + 2.2, zd, zd + 1.1), BUILDING, self.jit([80, 60, 45], 0.2), T_PAINT, haze)
        if st["ribbon"]:  # glass office facade: horizontal window ribbons
            y = g0 + 0.8
            while y < h - 1.5:
                self.poly(self.xquad(X, y, y + st["floor"] * 0.55, z0 + 0.3, z1 - 0.3), BUILDING, st["glass"] * 1.2,
                          T_GLASS, haze)
                y += st["floor"]
        else:
            self._windows_x(X, s, z0, z1, g0 + (0.0 if st["shop"] else 0.4), h - 0.5, st, haze)

    def _buildings(self) -> None:
        rng = self.rng
        # buildings at the end of the street (frontal facades)
        if self.end_wall:
            z = self.z_far + rng.uniform(0, 30)
            x = -rng.uniform(60, 120)
            while x < 120:
                bw = rng.uniform(8, 30)
                st = self._building_style(False)
                h = rng.uniform(8, 30)
                self.poly(self.zquad(x, x + bw, 0, h, z), BUILDING, st["color"] * self.face(0), T_FACADE, self.hz(z))
                self._windows_z(z, x, x + bw, 0.6, h - 0.5, st, self.hz(z))
                x += bw
        items = []
        for s in (-1, 1):
            kind = self.side[s]
            if kind == "open":
                if rng.random() < 0.6:  # distant blocks behind the park
                    z = rng.uniform(30, 80)
                    while z < self.z_far + 50:
                        L = rng.uniform(15, 50)
                        items.append((z, s, self.outer[s] + s * rng.uniform(25, 70), z, z + L, rng.uniform(10, 40),
                                      20.0, self._building_style(False), 0.0))
                        z += L + rng.uniform(5, 40)
                continue
            sub = kind == "suburban"
            if not sub and rng.random() < 0.5:  # taller back row above the front row
                z = rng.uniform(5, 40)
                while z < self.z_far:
                    L = rng.uniform(15, 40)
                    items.append((z + 1000, s, self.outer[s] + s * rng.uniform(18, 30), z, z + L,
                                  rng.uniform(20, 45), 20.0, self._building_style(False), 0.0))
                    z += L + rng.uniform(0, 30)
            z = rng.uniform(0.5, 6)
            yb = self.curb_h if self.setback[s] in ("none", "paved") else 0.0
            while z < self.z_far:
                L = rng.uniform(8, 18) if sub else rng.uniform(10, 32)
                gap = rng.uniform(3, 12) if (rng.random() < (0.5 if sub else 0.12)) else 0.0
                z0, z1 = z, z + L
                if self.in_cross(z0, z1):
                    a, b, c = self.cross
                    if z0 < a - c:
                        z1 = a - c
                    else:
                        z0 = max(z0, b + c)
                        z1 = max(z1, z0 + rng.uniform(10, 25))
                if z1 - z0 > 2:
                    sb = rng.uniform(3, 9) if sub else (rng.uniform(0, 1.0) if self.setback[s] == "none"
                                                         else rng.uniform(2, 6))
                    h = rng.uniform(5, 8.5) if sub else rng.uniform(9, 28)
                    after_cross = self.cross is not None and z0 >= self.cross[1]
                    depth = rng.uniform(60, 120) if after_cross else rng.uniform(10, 20)
                    items.append((z0, s, self.outer[s] + s * sb, z0, z1, h, depth, self._building_style(sub), yb))
                z = z1 + gap
        for it in sorted(items, key=lambda t: -t[0]):
            _, s, X, z0, z1, h, depth, st, yb = it
            z0 = max(z0, self.z_near)
            if z1 > z0:
                self._building(s, X, z0, z1, h, depth, st, yb)
                if s == self.sun_side and self.sun_k > 0.1:  # cast shadow on the street
                    sl = min(h * rng.uniform(0.3, 1.2), abs(X - self.edge[-s]))
                    self.shadow([X, X - s * sl, X - s * sl, X], [z0, z0, z1, z1], self.sun_k * 1.1)

    # ---------------------------------------------------------------- walls, fences, hedges
    def _boundaries(self) -> None:
        rng = self.rng
        for s in (-1, 1):
            X = self.outer[s] + s * 0.05
            p_wall, p_fence, p_hedge = {"urban": (0.35, 0.3, 0.15), "suburban": (0.3, 0.45, 0.25),
                                        "open": (0.35, 0.4, 0.25)}[self.side[s]]
            if self.side[s] == "urban" and self.setback[s] == "none":
                p_wall, p_fence, p_hedge = 0.2, 0.15, 0.05
            segs = []
            z = rng.uniform(0.5, 20)
            while z < min(self.z_far, 160):
                L = rng.uniform(6, 40)
                if not self.in_cross(z, z + L):
                    r = rng.random()
                    kind = "wall" if r < p_wall else ("fence" if r < p_wall + p_fence else
                                                      ("hedge" if r < p_wall + p_fence + p_hedge else None))
                    if kind and rng.random() < 0.85:
                        segs.append((kind, z, z + L))
                z += L + rng.uniform(0, 25)
            for kind, z0, z1 in sorted(segs, key=lambda t: -t[1]):
                z0 = max(z0, self.z_near)
                yb = self.curb_h
                haze = self.hz(0.5 * (z0 + z1))
                if kind == "wall":
                    h = rng.uniform(0.5, 2.6)
                    col = self.jit(rng.choice([(165, 160, 150), (140, 140, 138), (150, 95, 75), (190, 185, 170)]),
                                   0.08)
                    self.poly(self.zquad(X, X + s * 0.3, yb, h, z0), WALL, col * self.face(0), T_CONCRETE,
                              self.hz(z0))
                    self.poly(self.xquad(X, yb, h, z0, z1), WALL, col * self.face(-s), T_CONCRETE, haze)
                    if rng.random() < 0.5:
                        self._courses(X, yb, h, z0, z1, rng.uniform(0.2, 0.4), WALL, col * self.face(-s) * 0.85,
                                      haze)
                    if h < self.ch - 0.1:
                        self.poly(self.p([X, X + s * 0.3, X + s * 0.3, X], h, [z0, z0, z1, z1]), WALL, col * 1.1,
                                  T_CONCRETE, haze)
                    if rng.random() < 0.5:
                        self.poly(self.xquad(X, h - 0.12, h, z0, z1), WALL, col * 0.85, T_CONCRETE, haze)
                elif kind == "fence":
                    self._fence(s, X, z0, z1, yb, haze)
                else:
                    h = rng.uniform(0.7, 2.0)
                    zs = np.linspace(z0, z1, max(3, int((z1 - z0) / 0.7)))
                    tops = h + rng.normal(0, 0.07, len(zs))
                    pts = np.concatenate([self.p(X, tops, zs), self.p(X, yb, zs[::-1])])
                    self.poly(pts, VEG, self.jit([60, 90, 45], 0.1) * self.face(-s), T_FOLIAGE, haze)
                    self.poly(self.zquad(X, X + s * 0.8, yb, h, z0), VEG, self.jit([55, 85, 40], 0.1), T_FOLIAGE,
                              self.hz(z0))

    def _fence(self, s, X, z0, z1, yb, haze) -> None:
        rng = self.rng
        h = rng.uniform(0.8, 2.0)
        style = rng.choice(["slats", "metal", "panel"])
        if style == "slats":
            col = self.jit([rng.uniform(110, 190), rng.uniform(85, 150), rng.uniform(60, 110)], 0.08)
        else:
            col = self.jit([rng.uniform(60, 150)] * 3, 0.1)
        base = col * self.face(-s)
        self.poly(self.xquad(X, yb, h, z0, z1), FENCE, base, T_CONCRETE if style == "panel" else T_METAL, haze)
        step = {"slats": 0.15, "metal": 0.12, "panel": 2.0}[style]
        z = z0 + step
        n = 0
        while z < z1 and n < 400:
            q = self.xquad(X, yb, h, z, z + step * 0.25)
            if abs(q[2, 0] - q[0, 0]) < 0.7:  # joints below a pixel apart: stop (texture noise takes over)
                break
            self.poly(q, FENCE, base * (0.55 if style != "panel" else 0.7), T_METAL, haze)
            z += step
            n += 1
        for y in ([yb + 0.1, h - 0.1] if style != "panel" else [h - 0.08]):
            self.poly(self.xquad(X, y - 0.05, y + 0.05, z0, z1), FENCE, base * 0.8, T_METAL, haze)
        z = z0
        while z < z1:  # posts
            self.poly(self.xquad(X, yb, h + 0.05, z, z + 0.1), FENCE, base * 0.7, T_METAL, haze)
            z += rng.uniform(2.0, 3.0)

    # ---------------------------------------------------------------- standing objects
    def _z(self, lo: float, hi: float) -> float:
        lo = max(lo, 1.0)
        return float(np.exp(self.rng.uniform(np.log(lo), np.log(max(hi, lo + 1e-3)))))

    def _plan_objects(self) -> None:
        rng = self.rng
        zb = self.z_bot
        # trees along the sidewalks / in the setback / in parks
        for s in (-1, 1):
            if rng.random() < {"urban": 0.5, "suburban": 0.75, "open": 0.9}[self.side[s]]:
                z = rng.uniform(2, 12)
                sp = rng.uniform(7, 16)
                xt = self.edge[s] + s * min(rng.uniform(0.8, 1.5), self.sw[s] * 0.5)
                if self.verge[s]:
                    xt = self.edge[s] + s * (0.25 + self.verge[s] / 2)
                if self.sw[s] < 2.2 or rng.random() < 0.3:
                    xt = self.outer[s] + s * rng.uniform(1.0, 3.0)
                size = rng.uniform(0.7, 1.3)
                while z < 150:
                    if not self.in_cross(z, z, 1.0):
                        self.add(z, self._tree, xt + rng.normal(0, 0.1), z, self.curb_h, size * rng.uniform(0.8, 1.2))
                        if abs(xt - self.edge[s]) < self.sw[s] and rng.random() < 0.6:
                            self.gquad(xt - 0.6, xt + 0.6, z - 0.6, z + 0.6, TERRAIN, self.grass * 0.8, T_GRASS,
                                       Y=self.curb_h)
                    z += sp * rng.uniform(0.85, 1.15)
            if self.side[s] in ("open", "suburban"):
                for _ in range(rng.integers(3, 18 if self.side[s] == "open" else 8)):
                    z = self._z(6, 160)
                    x = self.outer[s] + s * rng.uniform(2, 45 if self.side[s] == "open" else 5)
                    if rng.random() < 0.6:
                        self.add(z, self._tree, x, z, 0.0, rng.uniform(0.8, 1.8))
                    else:
                        self.add(z, self._bush, x, z, 0.0)
            # street lamps
            if rng.random() < 0.8:
                z = rng.uniform(3, 25)
                sp = rng.uniform(18, 40)
                xl = self.edge[s] + s * rng.uniform(0.35, 0.7)
                st = (rng.uniform(5.5, 9.5), rng.uniform(0.12, 0.22), self.jit([rng.uniform(70, 150)] * 3, 0.1),
                      rng.random() < 0.8)
                while z < 200:
                    if not self.in_cross(z, z):
                        self.add(z, self._lamp, xl, z, s, st)
                    z += sp
            # traffic signs
            for _ in range(rng.integers(0, 5)):
                z = self._z(zb, 90)
                self.add(z, self._sign, self.edge[s] + s * rng.uniform(0.3, 0.9), z, s)
            # litter bins / bollards (static objects are "unlabeled" in Cityscapes: ignore)
            for _ in range(rng.integers(0, 2)):
                z = self._z(max(zb, 7.0), 60)
                self.add(z, self._bin, self.edge[s] + s * rng.uniform(0.4, 1.0), z)
        if self.median_kind == "grass" and rng.random() < 0.7:
            z = rng.uniform(3, 12)
            while z < 150:
                self.add(z, self._tree, self.xc - self.median / 2, z, 0.0, rng.uniform(0.7, 1.1))
                z += rng.uniform(8, 15)
        # junction: traffic lights at the corners, some hanging over the road
        if self.cross:
            a, b, c = self.cross
            for s in (-1, 1):
                for zl in (a - c * 0.5, b + c * 0.5):
                    if rng.random() < 0.8:
                        self.add(zl, self._traffic_light, self.edge[s] + s * 0.6, zl, s, rng.random() < 0.35)
        elif rng.random() < 0.35:  # a pedestrian light
            zl = rng.uniform(15, 50)
            s = int(rng.choice([-1, 1]))
            self.add(zl, self._traffic_light, self.edge[s] + s * 0.5, zl, s, False)
        self._plan_traffic()
        self._plan_people()

    def _plan_traffic(self) -> None:
        rng = self.rng
        zb = self.z_bot
        density = rng.uniform(0.25, 0.9)
        truck_p = rng.uniform(0.0, 0.15) * self.mix.heavy * self.mix.trucks
        bus_p = rng.uniform(0.0, 0.12) * self.mix.heavy
        moto_p = 0.05 * self.mix.two_wheelers

        def lane(x, oncoming):
            z = rng.uniform(zb + 2.5, 25) if not oncoming else rng.uniform(zb, 20)
            if abs(x) < self.lw / 2:  # our own lane: keep a safe distance
                z = max(z, zb + rng.uniform(3, 10))
            while z < 160:
                r = rng.random()
                if rng.random() < density:
                    if r < truck_p:
                        L = rng.uniform(6, 10)
                        self.add(z, self._truck, x + rng.normal(0, 0.2), z, L, oncoming)
                    elif r < truck_p + bus_p:
                        L = rng.choice([12.0, 12.0, 18.0])
                        self.add(z, self._bus, x + rng.normal(0, 0.2), z, L, oncoming)
                    elif r < truck_p + bus_p + moto_p:
                        L = 2.2
                        self.add(z, self._cycle, x + rng.normal(0, 0.3), z, 0.0, "motorcycle",
                                 -1 if oncoming else 1, rng.uniform(0.08, 0.3), True)
                    else:
                        L = rng.uniform(3.9, 5.0)
                        self.add(z, self._car, x + rng.normal(0, 0.25), z, L, oncoming)
                else:
                    L = rng.uniform(4, 12)
                z += L + rng.uniform(2.5, 30) * (1.3 - density)
        for x in self.right_lanes:
            if self.train and x == self.track_x:
                if rng.random() < 0.8:
                    zt = rng.uniform(zb + 4, 60)
                    self.add(zt, self._tram, x, zt, rng.uniform(22, 38), rng.random() < 0.4)
                continue
            lane(x, False)
        for x in self.left_lanes:
            lane(x, True)
        for s in (-1, 1):  # parked cars
            if self.park[s]:
                x = self.edge[s] - s * 1.1
                z = rng.uniform(1, 8)
                occ = rng.uniform(0.3, 0.9)
                while z < 120:
                    L = rng.uniform(3.8, 5.0)
                    if not self.in_cross(z, z + L) and rng.random() < occ:
                        if rng.random() < 0.06 * self.mix.two_wheelers:
                            self.add(z, self._cycle, x, z, 0.0, "motorcycle", s, rng.uniform(0.1, 0.9), False)
                        else:
                            self.add(z, self._car, x + rng.normal(0, 0.1), z, L, bool(rng.random() < 0.1),
                                     True)
                    z += L + rng.uniform(0.4, 3)
        if self.cross and rng.random() < 0.6:  # crossing traffic in the junction
            a, b, _ = self.cross
            for _ in range(rng.integers(1, 3)):
                zc = rng.uniform(a + 2, b - 2)
                xc_ = rng.uniform(-25, 25)
                self.add(zc - 1, self._car_across, xc_, zc, rng.uniform(3.9, 4.9))
        # cyclists on the right edge / bike lane
        if rng.random() < min(1.0, 0.6 * self.mix.two_wheelers):
            xb = self.edge[1] - (2.2 if self.park[1] else 0) - 0.8
            for _ in range(rng.integers(1, 4)):
                z = self._z(zb + 1, 70)
                self.add(z, self._cycle, xb + rng.normal(0, 0.2), z, 0.0, "bicycle", 1, rng.uniform(0.05, 0.3), True)
        if self.cross and rng.random() < min(1.0, 0.4 * self.mix.two_wheelers):
            a, b, _ = self.cross
            for _ in range(rng.integers(1, 3)):
                z = rng.uniform(a + 1, b - 1)
                kind = "bicycle" if rng.random() < 0.7 else "motorcycle"
                self.add(z, self._cycle, rng.uniform(-15, 15), z, 0.0, kind, int(rng.choice([-1, 1])),
                         rng.uniform(0.7, 1.0), True)

    def _plan_people(self) -> None:
        rng = self.rng
        zb = self.z_bot
        lam = rng.uniform(0, 12)
        for s in (-1, 1):
            for _ in range(rng.poisson(lam / 2)):
                z = self._z(zb * 0.9, 80)
                x = self.edge[s] + s * rng.uniform(0.5, max(0.6, self.sw[s] - 0.3))
                group = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
                for g in range(group):
                    self.add(z + g * 0.3, self._person, x + g * rng.uniform(0.45, 0.7) * s, z + g * 0.3,
                             self.curb_h)
            if rng.random() < 0.5:  # parked bicycles
                z = self._z(zb, 50)
                x = self.outer[s] - s * rng.uniform(0.4, 1.0)
                c = rng.uniform(0.15, 1.0)
                for i in range(rng.integers(1, 7)):
                    self.add(z + i * 0.7 * c, self._cycle, x, z + i * 0.7 * c, self.curb_h, "bicycle",
                             int(rng.choice([-1, 1])), c, False)
            if self.side[s] != "urban" and self.setback[s] == "terrain":
                for _ in range(rng.poisson(1.0)):
                    z = self._z(8, 60)
                    self.add(z, self._person, self.outer[s] + s * rng.uniform(1, 15), z, 0.0)
        if self.cross:  # pedestrians crossing (on the zebra if there is one)
            z0, z1 = self.zebra or (self.cross[0] - self.cross[2] - 4, self.cross[0] - self.cross[2] - 1)
            for _ in range(rng.poisson(rng.uniform(0, 4))):
                z = rng.uniform(z0 + 0.3, z1 - 0.3)
                self.add(z, self._person, rng.uniform(self.edge[-1], self.edge[1]), z, 0.0, 0.85)
        for _ in range(rng.poisson(0.6)):  # jaywalker / someone next to a parked car
            z = self._z(zb + 1, 50)
            self.add(z, self._person, rng.uniform(self.edge[-1] + 0.5, self.edge[1] - 0.5), z, 0.0)

    # ---------------------------------------------------------------- object painters
    def _tree(self, X: float, z: float, base: float, size: float) -> None:
        rng = self.rng
        hc = rng.uniform(4.5, 8.0) * size
        rc = rng.uniform(1.6, 3.2) * size
        rv = rc * rng.uniform(0.9, 1.4)
        tw = rng.uniform(0.18, 0.35) * size ** 0.5
        bark = self.jit([rng.uniform(60, 100), rng.uniform(50, 80), rng.uniform(40, 60)], 0.1)
        green = self.jit([rng.uniform(45, 95), rng.uniform(75, 125), rng.uniform(25, 60)], 0.1)
        if rng.random() < 0.12:
            green = self.jit([rng.uniform(120, 170), rng.uniform(100, 140), rng.uniform(30, 60)], 0.1)  # autumn
        sx = self.sun_side * 1.0
        self.shadow(*self._ground_ellipse(X - sx * rc * 0.8, z + rc * 0.3, rc * 1.1, rc * 0.8),
                    self.sun_k * 0.9)
        conifer = rng.random() < 0.12
        self.sprite(X, z, base, _seg((0, 0), (0.03 * rng.normal(), hc - rv * 0.3), tw), VEG, bark, T_BARK)
        if conifer:
            top = hc + rv * 1.2
            for i in range(4):
                y0 = hc - rv * 0.9 + i * rv * 0.45
                wdt = rc * (1.0 - i * 0.22)
                self.sprite(X, z, base, [(-wdt, y0), (wdt, y0), (0, min(top, y0 + rv * 1.1))], VEG,
                            green * (0.8 + 0.08 * i), T_FOLIAGE)
            return
        for i in range(2):  # a few branches into the crown
            self.sprite(X, z, base, _seg((0, hc - rv * 0.6), (rng.uniform(-0.7, 0.7) * rc, hc), tw * 0.5), VEG,
                        bark, T_BARK)
        # crown: a dark core, clumps lit from above, then small leaf clusters that break the outline
        # (their number follows the crown's size on screen, so far trees stay cheap)
        px = rc * self.f / z
        n, mmax = int(rng.integers(9, 16)), 40
        ang = rng.uniform(0, 2 * np.pi, n + mmax)
        rad = np.concatenate([np.sqrt(rng.uniform(0, 1, n)) * 0.6, rng.uniform(0.75, 1.0, mmax)])
        size = np.concatenate([rng.uniform(0.35, 0.55, n), rng.uniform(0.1, 0.22, mmax)])
        jit = rng.uniform(0.8, 1.1, n + mmax), rng.uniform(0.85, 1.12, n + mmax)
        m = int(np.clip(px / 4, 0, mmax))
        order = np.concatenate([np.argsort(np.sin(ang[:n]) * rad[:n]), n + np.argsort(np.sin(ang[n:n + m]))])
        self.sprite_ellipse(X, z, base, 0, hc, rc * 0.8, rv * 0.8, VEG, green * 0.7, T_FOLIAGE)
        for i in order:
            u, v = np.cos(ang[i]) * rad[i] * rc, np.sin(ang[i]) * rad[i] * rv
            light = 0.7 + 0.4 * (np.sin(ang[i]) * min(rad[i], 0.6) / 0.6 + 1) / 2 - 0.1 * sx * np.cos(ang[i])
            r = size[i]
            self.sprite_ellipse(X, z, base, u, hc + v, rc * r, rv * r * jit[0][i], VEG, green * light * jit[1][i],
                                T_FOLIAGE)

    def _ground_ellipse(self, X, z, rx, rz, n=16):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return X + rx * np.cos(t), np.maximum(z + rz * np.sin(t), 0.5)

    def _bush(self, X: float, z: float, base: float) -> None:
        rng = self.rng
        w, h = rng.uniform(0.8, 3.0), rng.uniform(0.5, 1.6)
        green = self.jit([rng.uniform(45, 90), rng.uniform(70, 115), rng.uniform(30, 55)], 0.1)
        for _ in range(rng.integers(3, 7)):
            u = rng.uniform(-w / 2, w / 2)
            r = rng.uniform(0.3, 0.55) * min(w, 2 * h)
            self.sprite_ellipse(X, z, base, u, min(h - r * 0.6, r * 0.9), r, r * 0.85, VEG,
                                green * rng.uniform(0.8, 1.15), T_FOLIAGE)

    def _pole(self, X, z, base, h, w, col, taper=0.7) -> None:
        self.sprite(X, z, base, [(-w / 2, 0), (w / 2, 0), (w * taper / 2, h), (-w * taper / 2, h)], POLE,
                    col * self.face(0), T_METAL)

    def _lamp(self, X: float, z: float, s: int, st) -> None:
        h, w, col, arm = st
        self._pole(X, z, self.curb_h, h, w, col)
        if arm:
            L = min(2.5, h * 0.3)
            self.sprite(X, z, self.curb_h, _seg((0, h - 0.1), (-s * L, h + 0.15), w * 0.5), POLE, col, T_METAL)
            self.sprite(X, z, self.curb_h, [(-s * (L - 0.2), h + 0.22), (-s * (L + 0.45), h + 0.22),
                                            (-s * (L + 0.4), h + 0.05), (-s * (L - 0.15), h + 0.05)], POLE,
                        col * 0.8, T_METAL)
        else:
            self.sprite(X, z, self.curb_h, [(-0.2, h), (0.2, h), (0.15, h + 0.45), (-0.15, h + 0.45)], POLE,
                        col * 0.8, T_METAL)

    def _sign(self, X: float, z: float, s: int) -> None:
        rng = self.rng
        hp = rng.uniform(2.0, 3.0)
        pw = rng.uniform(0.06, 0.09)
        self._pole(X, z, self.curb_h, hp + 0.3, pw, self.jit([150, 150, 150], 0.15), 1.0)
        c = 1.0 if rng.random() < 0.75 else rng.uniform(0.15, 0.6)  # side-on signs look thin
        y = hp
        for _ in range(1 if rng.random() < 0.7 else 2):
            kind = rng.choice(["round", "triangle", "rect", "diamond", "octagon"], p=[0.35, 0.2, 0.3, 0.08, 0.07])
            r = rng.uniform(0.3, 0.42)
            if kind == "round":
                if rng.random() < 0.6:
                    self.sprite_ellipse(X, z, self.curb_h, 0, y + r, r * c, r, SIGN, [200, 30, 35], T_PAINT)
                    self.sprite_ellipse(X, z, self.curb_h, 0, y + r, r * c * 0.78, r * 0.78, SIGN, [235, 235, 230],
                                        T_PAINT)
                    if rng.random() < 0.5:
                        self.sprite(X, z, self.curb_h, [(-0.12 * c, y + r - 0.05), (0.12 * c, y + r - 0.05),
                                                         (0.12 * c, y + r + 0.05), (-0.12 * c, y + r + 0.05)], SIGN,
                                    [30, 30, 30], T_PAINT)
                else:
                    self.sprite_ellipse(X, z, self.curb_h, 0, y + r, r * c, r, SIGN, [30, 80, 170], T_PAINT)
                    self.sprite(X, z, self.curb_h, _seg((0, y + r * 0.4), (0, y + r * 1.5), 0.08 * c), SIGN,
                                [235, 235, 235], T_PAINT)
                y += 2 * r + 0.05
            elif kind == "triangle":
                a = r * 2.2
                up = rng.random() < 0.75
                t0, t1 = (y, y + a * 0.87) if up else (y + a * 0.87, y)
                self.sprite(X, z, self.curb_h, [(-a / 2 * c, t0), (a / 2 * c, t0), (0, t1)], SIGN, [205, 35, 40],
                            T_PAINT)
                m = 0.12 / 0.87
                i0, i1 = (t0 + a * m * 0.6, t1 - a * m * 1.2) if up else (t0 - a * m * 0.6, t1 + a * m * 1.2)
                self.sprite(X, z, self.curb_h, [(-a / 2 * c * 0.7, i0), (a / 2 * c * 0.7, i0), (0, i1)], SIGN,
                            [240, 238, 232], T_PAINT)
                y += a * 0.87 + 0.05
            elif kind == "rect":
                bw, bh = rng.uniform(0.4, 1.1), rng.uniform(0.4, 0.8)
                col = [(30, 80, 170), (240, 240, 235), (230, 190, 30), (30, 120, 70)][rng.integers(4)]
                self.sprite(X, z, self.curb_h, [(-bw / 2 * c, y), (bw / 2 * c, y), (bw / 2 * c, y + bh),
                                                (-bw / 2 * c, y + bh)], SIGN, self.jit(col, 0.06), T_PAINT)
                self.sprite(X, z, self.curb_h, [(-bw / 3 * c, y + bh * 0.4), (bw / 3 * c, y + bh * 0.4),
                                                (bw / 3 * c, y + bh * 0.6), (-bw / 3 * c, y + bh * 0.6)], SIGN,
                            [250, 250, 250] if col[0] < 200 else [40, 40, 40], T_PAINT)
                y += bh + 0.05
            elif kind == "diamond":
                self.sprite(X, z, self.curb_h, [(0, y), (r * c, y + r), (0, y + 2 * r), (-r * c, y + r)], SIGN,
                            [240, 240, 235], T_PAINT)
                self.sprite(X, z, self.curb_h, [(0, y + 0.3 * r), (0.7 * r * c, y + r), (0, y + 1.7 * r),
                                                (-0.7 * r * c, y + r)], SIGN, [235, 190, 30], T_PAINT)
                y += 2 * r + 0.05
            else:
                t = np.arange(8) * np.pi / 4 + np.pi / 8
                self.sprite(X, z, self.curb_h, np.stack([np.cos(t) * r * c, y + r + np.sin(t) * r], -1), SIGN,
                            [195, 25, 30], T_PAINT)
                y += 2 * r + 0.05

    def _traffic_light(self, X: float, z: float, s: int, hanging: bool) -> None:
        rng = self.rng
        col = self.jit([rng.uniform(40, 110)] * 3, 0.1)
        h = rng.uniform(3.0, 4.2) if not hanging else rng.uniform(5.5, 6.8)
        self._pole(X, z, self.curb_h, h, rng.uniform(0.12, 0.2), col)
        housing = self.jit([35, 35, 35] if rng.random() < 0.6 else [200, 170, 40], 0.1)
        lit = rng.integers(3)
        boxes = [(0.0, h - 1.1)]
        if hanging:
            L = rng.uniform(3, 6)
            self.sprite(X, z, self.curb_h, _seg((0, h - 0.3), (-s * L, h - 0.3), 0.12), POLE, col, T_METAL)
            boxes = [(-s * L * 0.95, h - 1.4), (-s * L * 0.5, h - 1.4)]
        elif rng.random() < 0.4:
            boxes.append((0.0, rng.uniform(1.9, 2.3) - 1.0))
        for u, y0 in boxes:
            bw, bh = rng.uniform(0.28, 0.36), rng.uniform(0.8, 1.0)
            if rng.random() < 0.4:  # back plate
                self.sprite(X, z, self.curb_h, [(u - bw, y0 - 0.1), (u + bw, y0 - 0.1), (u + bw, y0 + bh + 0.1),
                                                (u - bw, y0 + bh + 0.1)], LIGHT, housing * 0.9, T_PAINT)
            self.sprite(X, z, self.curb_h, [(u - bw / 2, y0), (u + bw / 2, y0), (u + bw / 2, y0 + bh),
                                            (u - bw / 2, y0 + bh)], LIGHT, housing, T_PAINT)
            on = [(230, 40, 30), (240, 170, 30), (60, 220, 120)]
            for i in range(3):
                cy = y0 + bh * (0.82 - 0.32 * i)
                c = on[i] if i == lit else np.array(on[i]) * 0.25 + 20
                self.sprite_ellipse(X, z, self.curb_h, u, cy, bw * 0.3, bw * 0.3, LIGHT, c, T_NONE)

    def _bin(self, X: float, z: float) -> None:
        """Litter bin: 'static' in Cityscapes, i.e. unlabeled (ignore)."""
        rng = self.rng
        w, h = rng.uniform(0.35, 0.55), rng.uniform(0.7, 1.0)
        col = self.jit([(60, 90, 60), (110, 110, 110), (200, 110, 40), (50, 50, 55)][rng.integers(4)], 0.1)
        self.sprite(X, z, self.curb_h, [(-w * 0.45, 0), (w * 0.45, 0), (w / 2, h), (-w / 2, h)], IGNORE_ID, col,
                    T_METAL)
        self.sprite(X, z, self.curb_h, [(-w * 0.55, h - 0.03), (w * 0.55, h - 0.03), (w * 0.5, h + 0.08),
                                        (-w * 0.5, h + 0.08)], IGNORE_ID, col * 0.7, T_METAL)
        self.sprite(X, z, self.curb_h, [(-w * 0.3, h * 0.75), (w * 0.3, h * 0.75), (w * 0.3, h * 0.82),
                                        (-w * 0.3, h * 0.82)], IGNORE_ID, col * 0.5, T_METAL)

    # ---- people and two-wheelers
    def _clothes(self):
        rng = self.rng
        dark = rng.random() < 0.55
        def c():
            if dark:
                return self.jit([rng.uniform(20, 80)] * 3, 0.2)
            return np.array([rng.uniform(30, 220), rng.uniform(30, 200), rng.uniform(30, 200)])
        skin = self.jit(rng.choice([(225, 185, 160), (200, 150, 120), (150, 100, 70), (95, 65, 45)]), 0.05)
        hair = self.jit(rng.choice([(30, 25, 20), (80, 60, 40), (150, 120, 80), (200, 190, 170)]), 0.1)
        return dict(top=c(), bottom=c(), skin=skin, hair=hair, shoes=self.jit([35, 32, 30], 0.3))

    def _person(self, X: float, z: float, base: float, c: float | None = None) -> None:
        rng = self.rng
        hp = rng.uniform(1.55, 1.95) if rng.random() < 0.92 else rng.uniform(1.0, 1.4)
        c = rng.uniform(0, 1) if c is None else c  # 0: facing/back to camera, 1: profile
        d = 1 if rng.random() < 0.5 else -1
        cl = self._clothes()
        back = rng.random() < 0.5
        bulk = rng.uniform(0.9, 1.15)
        sw = hp * (0.26 * (1 - c) + 0.15 * c) * bulk
        hw = hp * (0.19 * (1 - c) + 0.13 * c) * bulk
        hip, sh = 0.52 * hp, 0.81 * hp
        stride = rng.uniform(0, 0.22) * hp * c
        off = 0.05 * hp * (1 - c)
        legw, legb = 0.085 * hp, 0.055 * hp
        self.shadow(*self._ground_ellipse(X - self.sun_side * 0.3, z, 0.45, 0.35, 10), 0.4)
        P = lambda uv, col, tex=T_CLOTH: self.sprite(X, z, base, uv, PERSON, col, tex)  # noqa: E731
        swing = rng.uniform(-0.12, 0.12) * hp * c
        arm_w = 0.055 * hp
        # back arm, legs, torso, front arm, head
        P(_seg((-d * (sw / 2 - arm_w / 2) * (1 - c), sh - 0.02 * hp), (-d * (sw / 2) * (1 - c) - swing * d, 0.47 * hp),
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
        P(_seg((d * (sw / 2 - arm_w / 2) * (1 - c), sh - 0.02 * hp), (d * (sw / 2) * (1 - c) + swing * d, 0.47 * hp),
               arm_w), cl["top"] * 0.95)
        if rng.random() < 0.25:  # bag
            bu = d * sw * 0.55
            P([(bu - 0.06 * hp, 0.45 * hp), (bu + 0.06 * hp, 0.45 * hp), (bu + 0.06 * hp, 0.6 * hp),
               (bu - 0.06 * hp, 0.6 * hp)], self.jit([rng.uniform(20, 160)] * 3, 0.2))
        P(_seg((0, sh - 0.01 * hp), (0, 0.87 * hp), 0.045 * hp), cl["skin"], T_NONE)
        hu = d * 0.012 * hp * c
        self.sprite_ellipse(X, z, base, hu, 0.925 * hp, 0.055 * hp, 0.068 * hp, PERSON, cl["skin"], T_NONE)
        if back:
            self.sprite_ellipse(X, z, base, hu, 0.93 * hp, 0.056 * hp, 0.064 * hp, PERSON, cl["hair"], T_CLOTH)
        else:
            self.sprite_ellipse(X, z, base, hu - d * 0.012 * hp * c, 0.955 * hp, 0.055 * hp, 0.04 * hp, PERSON,
                                cl["hair"], T_CLOTH)

    def _cycle(self, X: float, z: float, base: float, kind: str, d: int, c: float, rider: bool) -> None:
        """Bicycle or motorcycle in side view compressed by c (1: side-on, ~0.1: seen from behind)."""
        rng = self.rng
        moto = kind == "motorcycle"
        cls = MOTO if moto else BIKE
        lat = 1.0 - c  # how much of the lateral width is visible
        r, tyre = (0.31, 0.1) if moto else (0.34, 0.045)
        wb = 0.72 if moto else 0.52
        frame = self.jit([rng.uniform(20, 200), rng.uniform(20, 120), rng.uniform(20, 120)], 0.1)
        if rng.random() < 0.4:
            frame = self.jit([rng.uniform(20, 60)] * 3, 0.1)
        U = lambda pts: np.array([(d * u * c, v) for u, v in pts])  # noqa: E731
        S = lambda uv, col, k=cls, tex=T_METAL: self.sprite(X, z, base, uv, k, col, tex)  # noqa: E731
        tyre_col = self.jit([30, 30, 32], 0.1)
        self.shadow(*self._ground_ellipse(X, z, 0.3 + 0.9 * c, 0.3 + 0.9 * lat, 12), 0.45)
        for hub in (-wb, wb):  # tyres: rings (see-through), an edge-on tyre is a thin dark ellipse
            self.sprite_ellipse(X, z, base, d * hub * c, r, max(r * c, tyre * 0.6), r, cls, tyre_col, T_NONE,
                                ring_m=tyre)
            if c > 0.3 and moto:
                self.sprite_ellipse(X, z, base, d * hub * c, r, r * c * 0.5, r * 0.5, cls, [150, 150, 155], T_METAL,
                                    ring_m=0.03)
        if moto:
            body = U([(-0.9, 0.62), (-0.55, 0.85), (-0.05, 0.87), (0.15, 0.98), (0.45, 0.95), (0.55, 0.75),
                      (0.3, 0.45), (-0.1, 0.32), (-0.5, 0.45)])
            S(_hull(np.concatenate([body + [0.25 * lat, 0], body - [0.25 * lat, 0]])), frame)
            S(U([(-0.2, 0.35), (0.25, 0.35), (0.25, 0.6), (-0.2, 0.6)]), self.jit([90, 90, 95], 0.1))  # engine
            S(_seg(U([(0.5, 0.95)])[0], U([(wb, r)])[0], 0.07), [160, 160, 165])
            S(_seg(U([(0.45, 1.05)])[0] - [0.32 * lat, 0], U([(0.45, 1.05)])[0] + [0.32 * lat, 0], 0.05),
              [40, 40, 40])
            if c < 0.5:
                S(U([(-0.95, 0.65), (-0.95, 0.75), (-0.9, 0.75), (-0.9, 0.65)]) + [[-0.06, 0], [-0.06, 0], [0.06, 0],
                                                                                     [0.06, 0]], [200, 30, 30])
        else:
            bb, seat, ht, hb, bar = (-0.05, 0.3), (-0.22, 0.92), (0.38, 0.88), (0.42, 0.72), (0.32, 1.03)
            t = 0.04
            for p, q in ((bb, seat), ((-0.2, 0.86), ht), (bb, hb), (bb, (-wb, r)), ((-0.2, 0.86), (-wb, r)),
                         (hb, (wb, r)), (ht, hb), (ht, bar)):
                S(_seg(U([p])[0], U([q])[0], t), frame)
            sp = U([seat])[0]
            S([sp + [-0.12, 0.03], sp + [0.1, 0.03], sp + [0.1, -0.02], sp + [-0.12, -0.02]], [30, 30, 30])
            bp = U([bar])[0]
            S(_seg(bp - [0.28 * lat + 0.02, 0], bp + [0.28 * lat + 0.02, 0], 0.03), [40, 40, 40])
        if not rider:
            return
        cl = self._clothes()
        R = lambda uv, col, tex=T_CLOTH: self.sprite(X, z, base, uv, RIDER, col, tex)  # noqa: E731
        if moto:
            hip, knee, foot, sh, hand = (-0.25, 1.0), (0.15, 0.85), (-0.05, 0.45), (0.02, 1.55), (0.45, 1.07)
        else:
            hip, knee, foot, sh, hand = (-0.2, 1.0), (0.1, 0.72), (0.0, 0.22), (0.1, 1.5), (0.32, 1.05)
        hip, knee, foot, sh, hand = (U([p])[0] for p in (hip, knee, foot, sh, hand))
        tw = 0.42 * lat + 0.26 * c
        for sgn in (-1, 1):
            o = np.array([sgn * 0.1 * lat, 0])
            k2 = knee + o + ([d * -0.08 * c, 0.1] if sgn < 0 else [0, 0])
            R(_seg(hip + o, k2, 0.13), cl["bottom"] * (0.85 if sgn < 0 else 1))
            R(_seg(k2, foot + o + ([d * -0.1 * c, 0.15] if sgn < 0 else [0, 0]), 0.1), cl["bottom"] * 0.9)
        R(_hull(np.array([hip - [tw / 2, 0.05], hip + [tw / 2, -0.05], sh + [tw / 2, 0], sh - [tw / 2, 0]])),
          cl["top"])
        for sgn in (-1, 1):
            o = np.array([sgn * (tw / 2 - 0.04) * lat, 0])
            elbow = (sh + hand) / 2 + [0, -0.08]
            R(_seg(sh + o, elbow + o, 0.08), cl["top"] * 0.9)
            R(_seg(elbow + o, hand + o * 0.8, 0.07), cl["top"] * 0.9)
        head = sh + [d * 0.06 * c, 0.17]
        helmet = moto or rng.random() < 0.4
        if helmet:
            hc = self.jit([rng.uniform(20, 230), rng.uniform(20, 230), rng.uniform(20, 230)], 0.05)
            self.sprite_ellipse(X, z, base, head[0], head[1], 0.14 if moto else 0.11, 0.14 if moto else 0.1, RIDER,
                                hc, T_PAINT)
        elif c < 0.5:  # seen from behind: hair
            self.sprite_ellipse(X, z, base, head[0], head[1], 0.095, 0.115, RIDER, cl["hair"], T_CLOTH)
        else:
            self.sprite_ellipse(X, z, base, head[0], head[1], 0.1, 0.12, RIDER, cl["skin"], T_NONE)
            self.sprite_ellipse(X, z, base, head[0] - d * 0.02, head[1] + 0.04, 0.09, 0.08, RIDER, cl["hair"],
                                T_CLOTH)

    # ---- vehicles
    def _vehicle_color(self) -> np.ndarray:
        rng = self.rng
        pal = [(25, 25, 28), (230, 230, 228), (170, 172, 175), (110, 112, 115), (35, 45, 80), (150, 25, 25),
               (60, 70, 90), (30, 60, 40), (200, 190, 170), (80, 20, 25), (40, 90, 160), (220, 150, 40)]
        w = np.array([16, 16, 14, 12, 8, 6, 6, 3, 4, 4, 5, 2], float)
        return self.jit(pal[rng.choice(len(pal), p=w / w.sum())], 0.05)

    def _wheels_x(self, Xs, zs, r, cls, haze, rim=(150, 150, 150)) -> None:
        for zw in zs:
            t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            pts = self.p(Xs, r + r * np.sin(t), zw + r * np.cos(t))
            self.poly(pts, cls, [28, 28, 30], T_NONE, haze)
            pts = self.p(Xs, r + 0.55 * r * np.sin(t), zw + 0.55 * r * np.cos(t))
            self.poly(pts, cls, rim, T_METAL, haze)

    def _car(self, Xc: float, z0: float, L: float, oncoming: bool, parked: bool = False) -> None:
        rng = self.rng
        van = rng.random() < 0.12
        suv = (not van) and rng.random() < 0.25
        w = rng.uniform(1.7, 1.95) + (0.1 if van else 0)
        h = rng.uniform(1.85, 2.2) if van else (rng.uniform(1.6, 1.78) if suv else rng.uniform(1.38, 1.52))
        clr = 0.2 if suv or van else 0.14
        hb = clr + (h - clr) * (0.5 if not van else 0.45)
        x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
        col = self._vehicle_color()
        glass = self.jit([40, 45, 55], 0.15)
        haze = self.hz(z0)
        near_is_front = oncoming
        a_near = (0.35 if near_is_front else 0.18) * L
        a_far = (0.18 if near_is_front else 0.35) * L
        if van:
            a_near, a_far = (0.2 * L, 0.05 * L) if near_is_front else (0.03 * L, 0.2 * L)
        sl_near = 0.35 if not van else 0.1
        sl_far = 0.45 if not van else 0.3
        cz0, cz1 = z0 + a_near, z1 - a_far  # cabin base
        self.shadow([x0 - 0.2, x1 + 0.2, x1 + 0.2, x0 - 0.2], [z0 - 0.3, z0 - 0.3, z1 + 0.3, z1 + 0.3], 0.65)
        # tyres seen below the near face
        for xa, xb in ((x0 + 0.02, x0 + 0.27), (x1 - 0.27, x1 - 0.02)):
            self.poly(self.zquad(xa, xb, 0, clr + 0.25, z0 + 0.8), CAR, [25, 25, 27], T_NONE, haze)
        # side face
        xs = x0 if x0 > 0 else (x1 if x1 < 0 else None)
        if xs is not None:
            sc = col * self.face(1 if xs == x1 else -1)
            self.poly(self.xquad(xs, clr + 0.05, hb, z0, z1), CAR, sc, T_PAINT, haze)
            self.poly(self.xquad(xs, clr + 0.05, clr + 0.2, z0, z1), CAR, sc * 0.6, T_PAINT, haze)
            self._wheels_x(xs, (z0 + 0.8, z1 - 0.85), 0.32, CAR, haze)
            cab = self.p(xs, [hb, h, h, hb], [cz0, cz0 + sl_near, cz1 - sl_far, cz1])
            self.poly(cab, CAR, sc, T_PAINT, haze)
            win = self.p(xs, [hb + 0.06, h - 0.06, h - 0.06, hb + 0.06],
                         [cz0 + 0.1, cz0 + sl_near + 0.05, cz1 - sl_far - 0.05, cz1 - 0.1])
            self.poly(win, CAR, glass * 1.1, T_GLASS, haze)
            zm = 0.5 * (cz0 + cz1)
            self.poly(self.xquad(xs, hb, h, zm - 0.06, zm + 0.06), CAR, sc * 0.5, T_PAINT, haze)
        # top of bonnet / boot, then cabin
        self.poly(self.p([x0, x1, x1, x0], hb, [z0, z0, z1, z1]), CAR, col * 1.12, T_PAINT, haze)
        if h < self.ch:
            self.poly(self.p([x0 + 0.1, x1 - 0.1, x1 - 0.1, x0 + 0.1], h,
                             [cz0 + sl_near, cz0 + sl_near, cz1 - sl_far, cz1 - sl_far]), CAR, col * 1.15, T_PAINT,
                      haze)
        self.poly(self.p([x0 + 0.08, x1 - 0.08, x1 - 0.1, x0 + 0.1], [hb, hb, h, h],
                         [cz0, cz0, cz0 + sl_near, cz0 + sl_near]), CAR, col * self.face(0) * 0.9, T_PAINT, haze)
        self.poly(self.p([x0 + 0.14, x1 - 0.14, x1 - 0.16, x0 + 0.16], [hb + 0.05, hb + 0.05, h - 0.06, h - 0.06],
                         [cz0 + 0.02, cz0 + 0.02, cz0 + sl_near - 0.03, cz0 + sl_near - 0.03]), CAR, glass, T_GLASS,
                  haze)
        # near face (rear or front)
        fc = col * self.face(0)
        self.poly(self.zquad(x0, x1, clr, hb, z0), CAR, fc, T_PAINT, haze)
        self.poly(self.zquad(x0, x1, clr, clr + 0.18, z0), CAR, fc * 0.55, T_PAINT, haze)
        ly = hb - 0.12
        lc = [240, 235, 210] if near_is_front else [190, 25, 25]
        for xa, xb in ((x0 + 0.05, x0 + 0.38), (x1 - 0.38, x1 - 0.05)):
            self.poly(self.zquad(xa, xb, ly - 0.12, ly + 0.05, z0), CAR, lc, T_NONE, haze)
        self.poly(self.zquad(Xc - 0.26, Xc + 0.26, clr + 0.22, clr + 0.33, z0), CAR, [225, 225, 220], T_NONE, haze)
        if near_is_front:
            self.poly(self.zquad(Xc - 0.45, Xc + 0.45, clr + 0.36, ly - 0.05, z0), CAR, fc * 0.35, T_METAL, haze)

    def _car_across(self, Xc: float, zc: float, L: float) -> None:
        """Car crossing the junction (long side towards the camera)."""
        rng = self.rng
        w, h, clr = rng.uniform(1.7, 1.9), rng.uniform(1.38, 1.55), 0.14
        hb = clr + (h - clr) * 0.5
        x0, x1 = Xc - L / 2, Xc + L / 2
        z0, z1 = zc - w / 2, zc + w / 2
        col, glass, haze = self._vehicle_color(), self.jit([40, 45, 55], 0.15), self.hz(z0)
        self.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.2, z0 - 0.2, z1 + 0.2, z1 + 0.2], 0.65)
        if x0 > 0 or x1 < 0:
            xs = x0 if x0 > 0 else x1
            self.poly(self.xquad(xs, clr, hb, z0, z1), CAR, col * self.face(1 if xs == x1 else -1), T_PAINT, haze)
        self.poly(self.p([x0, x1, x1, x0], hb, [z0, z0, z1, z1]), CAR, col * 1.12, T_PAINT, haze)
        d = 1 if rng.random() < 0.5 else -1
        a, b = (0.18 * L, 0.35 * L) if d > 0 else (0.35 * L, 0.18 * L)
        self.poly(self.p([x0 + a, x0 + a + 0.45, x1 - b - 0.35, x1 - b], [hb, h, h, hb], z0 + 0.1), CAR,
                  col * self.face(0), T_PAINT, haze)
        self.poly(self.p([x0 + a + 0.12, x0 + a + 0.5, x1 - b - 0.4, x1 - b - 0.12],
                         [hb + 0.06, h - 0.06, h - 0.06, hb + 0.06], z0 + 0.1), CAR, glass, T_GLASS, haze)
        self.poly(self.zquad(x0, x1, clr, hb, z0), CAR, col * self.face(0), T_PAINT, haze)
        k = self.f / z0
        for xw in (x0 + 0.8, x1 - 0.8):
            cx, cy = self.cx + k * xw, self.yh + k * (self.ch - 0.32)
            self.ellipse(cx, cy, k * 0.32, k * 0.32, CAR, [28, 28, 30], T_NONE, haze)
            self.ellipse(cx, cy, k * 0.18, k * 0.18, CAR, [150, 150, 150], T_METAL, haze)

    def _truck(self, Xc: float, z0: float, L: float, oncoming: bool) -> None:
        rng = self.rng
        w, h = rng.uniform(2.3, 2.55), rng.uniform(3.0, 4.0)
        x0, x1 = Xc - w / 2, Xc + w / 2
        cargo_col = self.jit([rng.uniform(180, 240)] * 3, 0.08) if rng.random() < 0.6 else self._vehicle_color()
        cab_col = self._vehicle_color()
        haze = self.hz(z0)
        cab_len = 2.2
        if oncoming:
            cab = (z0, z0 + cab_len)
            box = (z0 + cab_len + 0.2, z0 + L)
        else:
            box = (z0, z0 + L - cab_len - 0.2)
            cab = (z0 + L - cab_len, z0 + L)
        self.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.3, z0 - 0.3, z0 + L + 0.3, z0 + L + 0.3], 0.6)
        xs = x0 if x0 > 0 else (x1 if x1 < 0 else None)
        ch_h = rng.uniform(2.6, 3.0)

        def draw_cab():
            if xs is not None:
                self.poly(self.xquad(xs, 0.5, ch_h, cab[0], cab[1]), TRUCK, cab_col * self.face(np.sign(xs) * -1),
                          T_PAINT, haze)
                self.poly(self.xquad(xs, 1.6, ch_h - 0.25, cab[0] + 0.2, cab[1] - 0.6), TRUCK, [45, 50, 60], T_GLASS,
                          haze)
                self._wheels_x(xs, (cab[0] + 1.0,), 0.5, TRUCK, haze)
            if oncoming:
                self.poly(self.zquad(x0, x1, 0.5, ch_h, cab[0]), TRUCK, cab_col * self.face(0), T_PAINT, haze)
                self.poly(self.zquad(x0 + 0.15, x1 - 0.15, 1.6, ch_h - 0.25, cab[0]), TRUCK, [45, 50, 60], T_GLASS,
                          haze)
                self.poly(self.zquad(Xc - 0.7, Xc + 0.7, 0.6, 1.3, cab[0]), TRUCK, [50, 50, 50], T_METAL, haze)

        def draw_box():
            if xs is not None:
                self.poly(self.xquad(xs, 0.9, h, box[0], box[1]), TRUCK, cargo_col * self.face(-np.sign(xs)), T_PAINT,
                          haze)
                self.poly(self.xquad(xs, 0.6, 0.95, box[0], box[1]), TRUCK, [40, 40, 42], T_METAL, haze)
                n_ax = 2 if L > 7 else 1
                self._wheels_x(xs, [box[1] - 1.0 - 1.3 * i for i in range(n_ax)], 0.5, TRUCK, haze)
                if rng.random() < 0.4:
                    self.poly(self.xquad(xs, h * 0.5, h * 0.7, box[0] + 1, box[1] - 1), TRUCK,
                              self.jit([rng.uniform(30, 220) for _ in range(3)], 0.1), T_PAINT, haze)
            if not oncoming:
                self.poly(self.zquad(x0 + 0.2, x0 + 0.55, 0, 1.0, box[0] + 0.8), TRUCK, [25, 25, 27], T_NONE, haze)
                self.poly(self.zquad(x1 - 0.55, x1 - 0.2, 0, 1.0, box[0] + 0.8), TRUCK, [25, 25, 27], T_NONE, haze)
                fc = cargo_col * self.face(0)
                self.poly(self.zquad(x0, x1, 0.9, h, box[0]), TRUCK, fc, T_PAINT, haze)
                self.poly(self.zquad(Xc - 0.03, Xc + 0.03, 1.0, h - 0.1, box[0]), TRUCK, fc * 0.6, T_PAINT, haze)
                self.poly(self.zquad(x0 + 0.1, x1 - 0.1, 0.45, 0.6, box[0]), TRUCK, [50, 50, 50], T_METAL, haze)
                for xa in (x0 + 0.1, x1 - 0.4):
                    self.poly(self.zquad(xa, xa + 0.3, 0.95, 1.15, box[0]), TRUCK, [190, 30, 30], T_NONE, haze)
            elif ch_h < h:
                self.poly(self.zquad(x0, x1, ch_h, h, box[0]), TRUCK, cargo_col * self.face(0), T_PAINT, haze)

        if oncoming:
            draw_box()
            draw_cab()
        else:
            draw_cab()
            draw_box()

    def _bus(self, Xc: float, z0: float, L: float, oncoming: bool) -> None:
        rng = self.rng
        w, h, clr = 2.55, rng.uniform(2.9, 3.2), 0.3
        x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
        col = self.jit([(230, 200, 40), (235, 235, 230), (200, 40, 40), (40, 90, 170), (220, 120, 30)][rng.integers(5)],
                       0.06)
        glass = self.jit([40, 48, 58], 0.1)
        haze = self.hz(z0)
        self.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.3, z0 - 0.3, z1 + 0.3, z1 + 0.3], 0.6)
        for xa, xb in ((x0 + 0.1, x0 + 0.4), (x1 - 0.4, x1 - 0.1)):
            self.poly(self.zquad(xa, xb, 0, clr + 0.3, z0 + 2.5), BUS, [25, 25, 27], T_NONE, haze)
        xs = x0 if x0 > 0 else (x1 if x1 < 0 else None)
        if xs is not None:
            sc = col * self.face(-np.sign(xs))
            self.poly(self.xquad(xs, clr, h, z0, z1), BUS, sc, T_PAINT, haze)
            self.poly(self.xquad(xs, 1.15, 2.6, z0 + 0.3, z1 - 0.3), BUS, glass, T_GLASS, haze)
            z = z0 + rng.uniform(1.2, 2.0)
            while z < z1 - 0.5:
                self.poly(self.xquad(xs, 1.15, 2.6, z, z + 0.12), BUS, sc * 0.8, T_PAINT, haze)
                z += rng.uniform(1.3, 1.9)
            self.poly(self.xquad(xs, clr, 2.6, z0 + 2.0, z0 + 3.1), BUS, glass * 0.8, T_GLASS, haze)  # door
            axles = [z0 + 2.6, z1 - 3.0] + ([z0 + L / 2 + 1.5] if L > 14 else [])
            self._wheels_x(xs, axles, 0.5, BUS, haze)
            if L > 14:
                self.poly(self.xquad(xs, clr, h, z0 + L / 2 - 0.4, z0 + L / 2 + 0.4), BUS, [40, 40, 40], T_METAL, haze)
        fc = col * self.face(0)
        self.poly(self.zquad(x0, x1, clr, h, z0), BUS, fc, T_PAINT, haze)
        if oncoming:
            self.poly(self.zquad(x0 + 0.1, x1 - 0.1, 1.0, h - 0.35, z0), BUS, glass, T_GLASS, haze)
            self.poly(self.zquad(x0 + 0.3, x1 - 0.3, h - 0.32, h - 0.08, z0), BUS, [30, 30, 30], T_PAINT, haze)
            self.poly(self.zquad(x0 + 0.6, x0 + 1.4, h - 0.28, h - 0.12, z0), BUS, [240, 150, 30], T_NONE, haze)
        else:
            self.poly(self.zquad(x0 + 0.3, x1 - 0.3, 1.9, h - 0.2, z0), BUS, glass, T_GLASS, haze)
            self.poly(self.zquad(x0 + 0.4, x1 - 0.4, 0.5, 1.1, z0), BUS, fc * 0.5, T_METAL, haze)
        lc = [240, 235, 210] if oncoming else [190, 25, 25]
        for xa in (x0 + 0.1, x1 - 0.4):
            self.poly(self.zquad(xa, xa + 0.3, 0.6, 0.85, z0), BUS, lc, T_NONE, haze)

    def _tram(self, Xc: float, z0: float, L: float, oncoming: bool) -> None:
        rng = self.rng
        w, h, clr = 2.65, 3.4, 0.35
        x0, x1, z1 = Xc - w / 2, Xc + w / 2, z0 + L
        col = self.jit([(235, 235, 230), (200, 30, 30), (240, 200, 30), (30, 120, 60)][rng.integers(4)], 0.05)
        glass = self.jit([40, 48, 58], 0.1)
        haze = self.hz(z0)
        self.shadow([x0 - 0.3, x1 + 0.3, x1 + 0.3, x0 - 0.3], [z0 - 0.3, z0 - 0.3, z1 + 0.3, z1 + 0.3], 0.55)
        xs = x0 if x0 > 0 else (x1 if x1 < 0 else None)
        # pantograph on the roof
        for zp in (z0 + L * 0.3,):
            k = self.p([Xc - 0.6, Xc, Xc + 0.6], [h + 0.1, h + 1.0, h + 0.1], zp)
            for i in range(2):
                self.poly(np.concatenate([k[i:i + 2], k[i:i + 2][::-1] + [0, -max(1.0, 0.05 * self.f / zp)]]),
                          TRAIN, [60, 60, 60], T_METAL, haze)
            self.poly(self.p([Xc - 0.9, Xc + 0.9, Xc + 0.9, Xc - 0.9], [h + 1.0, h + 1.0, h + 1.06, h + 1.06], zp),
                      TRAIN, [60, 60, 60], T_METAL, haze)
        if xs is not None:
            sc = col * self.face(-np.sign(xs))
            self.poly(self.xquad(xs, clr, h, z0, z1), TRAIN, sc, T_PAINT, haze)
            self.poly(self.xquad(xs, 1.3, 2.7, z0 + 1.5, z1 - 1.0), TRAIN, glass, T_GLASS, haze)
            z = z0 + 2.5
            while z < z1 - 1.5:
                self.poly(self.xquad(xs, 1.3, 2.7, z, z + 0.15), TRAIN, sc, T_PAINT, haze)
                z += rng.uniform(1.5, 2.2)
            self.poly(self.xquad(xs, clr, 0.7, z0, z1), TRAIN, sc * 0.5, T_PAINT, haze)
        fc = col * self.face(0)
        self.poly(self.zquad(x0, x1, clr, h, z0), TRAIN, fc, T_PAINT, haze)
        self.poly(self.zquad(x0 + 0.15, x1 - 0.15, 1.2, h - 0.3, z0), TRAIN, glass, T_GLASS, haze)
        self.poly(self.zquad(x0, x1, clr, 0.6, z0), TRAIN, fc * 0.5, T_PAINT, haze)
        lc = [240, 235, 210] if oncoming else [190, 25, 25]
        for xa in (x0 + 0.15, x1 - 0.45):
            self.poly(self.zquad(xa, xa + 0.3, 0.8, 1.0, z0), TRAIN, lc, T_NONE, haze)

    def _ego_hood(self) -> None:
        """The recording car's bonnet at the bottom edge: 'ego vehicle' is unlabeled (ignore) in Cityscapes."""
        rng, H, W = self.rng, self.H, self.W
        hh = H * rng.uniform(0.04, 0.09)
        xs = np.linspace(-0.05 * W, 1.05 * W, 33)
        ys = H - hh * (1 - ((xs - self.cx) / (0.75 * W)) ** 2).clip(0.25, 1)
        col = self._vehicle_color() * 0.7
        self.poly(np.concatenate([np.stack([xs, ys], -1), [[1.05 * W, H + 2], [-0.05 * W, H + 2]]]), IGNORE_ID, col,
                  T_PAINT, 0)
        ys2 = ys + hh * 0.35
        self.poly(np.concatenate([np.stack([xs, ys2], -1), [[1.05 * W, H + 2], [-0.05 * W, H + 2]]]), IGNORE_ID,
                  col * 0.75, T_PAINT, 0)

    # ---------------------------------------------------------------- image-only effects
    def _finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Image-only effects; everything here is per pixel and never changes the label."""
        rng, H, W = self.nrng, self.H, self.W
        lab_im, tex_im, hz_im = self.meta.split()
        label = np.array(lab_im)

        def f32(im: Image.Image) -> np.ndarray:
            return np.asarray(im).astype(np.float32)

        def upsampled_noise(step: int) -> np.ndarray:  # smooth noise, about N(0, 0.6)
            n = rng.normal(128, 60, (H // step + 2, W // step + 2)).clip(0, 255).astype(np.uint8)
            big = Image.fromarray(n).resize((W + 2 * step, H + 2 * step), Image.BILINEAR).crop((0, 0, W, H))
            a = f32(big)
            a -= 128.0
            a *= 1.0 / 100.0
            return a

        # texture: fine (pixel), medium (leaves, grain) and coarse (stains) noise, per texture id
        fine = rng.random((H + 8, W + 8), dtype=np.float32)
        fine -= 0.5
        nf, ns = fine[:H, :W], fine[8:, 8:]
        mod = f32(tex_im.point(_TEX_LUT8[0]))
        mod *= nf
        t = f32(tex_im.point(_TEX_LUT8[1]))
        t *= upsampled_noise(max(2, W // 400))
        mod += t
        t = f32(tex_im.point(_TEX_LUT8[2]))
        t *= upsampled_noise(max(4, W // 40))
        mod += t
        mod *= 1.0 / _TEX_SCALE
        mod += 1.0
        # shadows, soft-edged by a down/up-sampling, on ground classes only
        r = max(2, int(round(3 * self.scale)))
        soft = self.shadows.reduce(r).resize((W, H), Image.BILINEAR)
        t = f32(ImageChops.multiply(soft, lab_im.point(_GROUND_LUT8)))
        t *= -1.0 / 255.0
        t += 1.0
        mod *= t
        # aerial haze: per object (0..254), or from the row for ground pixels (255)
        haze = f32(hz_im.point(_HAZE_LUT8))
        haze *= self.haze_max / 255.0
        rows = np.arange(H, dtype=np.float32) - self.yh
        zrow = np.where(rows > 0.5, self.f * self.ch / np.maximum(rows, 0.5), 1e4)
        hrow = ((1.0 - np.exp(-zrow / self.haze_dist)) * self.haze_max / 255.0).astype(np.float32)
        t = f32(hz_im.point(_GROUND_HAZE_LUT8))
        t *= hrow[:, None]
        haze += t
        # vignetting (separable)
        k = rng.uniform(0.05, 0.3)
        vy = 1.0 - k * 0.5 * ((np.arange(H, dtype=np.float32) - H / 2) / (H / 2)) ** 2
        vx = 1.0 - k * ((np.arange(W, dtype=np.float32) - W / 2) / (W / 2)) ** 2
        vig = vy[:, None] * vx[None, :]
        t = 1.0 - haze
        mod *= t
        mod *= vig
        haze *= vig
        # exposure, contrast, colour temperature (one gain and offset per channel), sensor noise
        gain = rng.uniform(0.78, 1.15)
        contrast = rng.uniform(0.85, 1.12)
        temp = rng.uniform(-0.07, 0.07)
        g = gain * contrast * np.array([1 + temp, 1.0, 1 - temp]) * (1 + rng.normal(0, 0.015, 3))
        hcol = self.sky_horizon * 0.95 * g
        ns *= np.float32(rng.uniform(1.5, 5.0) * 3.46)  # unit-variance scale
        ns += np.float32((1 - contrast) * 110 * gain)
        planes = []
        for ch, band in enumerate(self.img.split()):
            p = f32(band)
            p *= mod
            p *= np.float32(g[ch])
            t = haze * np.float32(hcol[ch])
            p += t
            p += ns
            np.clip(p, 0, 255, out=p)
            planes.append(Image.fromarray(p.astype(np.uint8)))
        out = Image.merge("RGB", planes)
        out = out.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 0.65) * max(self.scale, 0.25) ** 0.5))
        return np.array(out), label


def generate_scene(seed: int, height: int = 1024, width: int = 2048,
                   mix: SceneMix = SceneMix()) -> tuple[np.ndarray, np.ndarray]:
    """One street scene and its pixel-exact labels, deterministic in ``seed`` (and ``mix``).

    Returns (RGB uint8 H×W×3, train ids uint8 H×W with values 0..18 or 255). Geometry is relative to
    the image size, so any size ≥ 64×64 works; the same seed at another size is the same street.
    """
    if height < 64 or width < 64:
        raise ValueError(f"scene size must be at least 64×64, got {height}×{width}")
    return _Scene(int(seed), int(height), int(width), mix).render()


def _save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def write_dataset(out: Path, count: int, seed: int, size: tuple[int, int] = (1024, 2048), split: str = "train",
                  city: str | None = None, progress: Callable[[int], None] | None = None,
                  mix: SceneMix = SceneMix()) -> list[Path]:
    """Write ``count`` scenes (seeds seed, seed+1, …) in the Cityscapes folder layout; return the image paths.

    A non-default ``mix`` is for training data only: it is refused for any split but ``train``, and
    its scenes go to the city folder ``synthmix`` (default ``synth``), so they never overwrite, or
    pass for, the default scene of the same seed.

    Each scene gets ``leftImg8bit/<split>/<city>/<city>_000000_<seed:06d>_leftImg8bit.png`` plus
    ``gtFine/…_gtFine_labelIds.png`` (official label ids) and ``…_gtFine_labelTrainIds.png`` (train ids),
    every file written atomically so an interrupted run never leaves a half-written PNG behind.
    """
    mix.require_split(split)
    city = city or ("synth" if mix.is_default else "synthmix")
    out = Path(out)
    h, w = size
    img_dir = out / "leftImg8bit" / split / city
    gt_dir = out / "gtFine" / split / city
    paths = []
    for i in range(count):
        s = seed + i
        image, train_ids = generate_scene(s, h, w, mix)
        stem = f"{city}_000000_{s:06d}"
        img_path = img_dir / f"{stem}_leftImg8bit.png"
        _save_png(gt_dir / f"{stem}_gtFine_labelTrainIds.png", train_ids)
        _save_png(gt_dir / f"{stem}_gtFine_labelIds.png", train_ids_to_label_ids(train_ids))
        _save_png(img_path, image)
        paths.append(img_path)
        if progress is not None:
            progress(1)
    return paths



def write_images(out: Path, count: int, seed: int, size: tuple[int, int] = (1024, 2048), quality: int = 95,
                 progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write ``count`` scenes as plain JPEGs ``out/scene_<seed>.jpg`` (no labels): calibration sets.

    JPEG (not PNG) so that a calibration set of 32–64 full-size scenes stays small enough to ship,
    and so calibration sees the compression artefacts real camera images have.
    """
    out = Path(out)
    paths = []
    for i in range(count):
        s = seed + i
        image, _ = generate_scene(s, *size)
        path = out / f"scene_{s:06d}.jpg"
        with atomic_path(path) as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=quality, subsampling=0)
        paths.append(path)
        if progress is not None:
            progress(1)
    return paths
