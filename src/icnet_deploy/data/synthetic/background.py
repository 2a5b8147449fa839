"""Sky and far background: gradient and clouds, a distant tree line, distant building blocks.

The sky is drawn first and opens the canvases: every pixel nothing else covers is sky.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .palette import BUILDING, T_FACADE, T_FOLIAGE, VEG

from .canvas import Scene


def _sky_colours(sc: Scene) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(zenith colour, horizon colour, cloud cover 0..1, cloud colour) for the scene's weather."""
    rng = sc.rng
    if sc.weather == "clear":
        top = np.array([rng.uniform(55, 115), rng.uniform(110, 160), rng.uniform(185, 240)])
        hor = np.array([rng.uniform(175, 215), rng.uniform(195, 225), rng.uniform(220, 245)])
        cover, cloud = rng.uniform(0.0, 0.8), np.array([245.0, 245, 248])
    elif sc.weather == "hazy":
        top = np.array([rng.uniform(130, 170), rng.uniform(160, 190), rng.uniform(195, 225)])
        hor = np.array([rng.uniform(205, 230)] * 3) + rng.uniform(-5, 5, 3)
        cover, cloud = rng.uniform(0.2, 0.9), np.array([235.0, 236, 238])
    else:
        g = rng.uniform(140, 190)
        top = np.array([g, g + 3, g + 8])
        hor = np.array([g + 30, g + 32, g + 35]).clip(0, 245)
        cover, cloud = 1.0, np.array([g - 25, g - 22, g - 18])
    return top, hor, cover, cloud


def paint_sky(sc: Scene) -> None:
    """Gradient sky with noise clouds above the horizon, then open the canvases on it."""
    rng, H, W = sc.rng, sc.H, sc.W
    img = np.zeros((H, W, 3), np.uint8)
    rows = int(min(H, math.ceil(sc.yh) + 2))
    top, hor, cover, cloud = _sky_colours(sc)
    # smooth content: computed at 1/4 resolution and upsampled
    sr = 4 if min(rows, W) >= 64 else 1
    rw, rr = -(-W // sr), -(-rows // sr)
    t = (np.arange(rr, dtype=np.float32) * sr / max(sc.yh, 1.0)).clip(0, 1)[:, None] ** 0.7
    grad = (top[None] * (1 - t) + hor[None] * t).astype(np.float32)  # rows×3
    cs = max(4, rw // 12)
    n1 = sc.nrng.standard_normal((rr // cs + 3, rw // cs + 3)).astype(np.float32)
    n2 = sc.nrng.standard_normal((rr // (cs // 3) + 3, rw // (cs // 3) + 3)).astype(np.float32)
    big = np.asarray(Image.fromarray(n1, "F").resize((rw, rr), Image.BICUBIC))
    small = np.asarray(Image.fromarray(n2, "F").resize((rw, rr), Image.BICUBIC))
    field = big + 0.45 * small
    thr = 1.3 - 1.6 * cover
    alpha = np.clip((field - thr) * rng.uniform(0.6, 1.5), 0, 1) * (0.5 + 0.5 * t)  # flatter near horizon
    if sc.weather == "overcast":
        alpha *= 0.6
    shade = (1.0 - 0.12 * np.clip(small, -1, 1))[..., None]
    sky = grad[:, None, :] * (1 - alpha[..., None]) + (cloud[None, None, :] * shade) * alpha[..., None]
    sky8 = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)).resize((W, rows), Image.BILINEAR)
    img[:rows] = np.asarray(sky8)
    sc.open_canvases(img, hor)


def paint_skyline(sc: Scene) -> None:
    """A distant tree line and distant building blocks on the horizon (flat, hazy, in pixels)."""
    rng, W, H = sc.rng, sc.W, sc.H
    yh = sc.yh
    if rng.random() < 0.6:  # distant tree line
        n = 40
        xs = np.linspace(-5, W + 5, n)
        amp = H * rng.uniform(0.01, 0.05)
        hs = amp * (0.5 + np.abs(np.cumsum(rng.normal(0, 0.35, n))) % 1.5) + rng.uniform(0, amp * 0.4, n)
        pts = np.concatenate([np.stack([xs, yh - hs], -1), [[W + 5, yh + 2], [-5, yh + 2]]])
        sc.poly(pts, VEG, sc.jit([70, 95, 60], 0.1), T_FOLIAGE, sc.hz(600))
    if rng.random() < 0.55:  # distant building blocks
        x = rng.uniform(-0.1, 0.2) * W
        while x < W:
            bw = W * rng.uniform(0.02, 0.1)
            bh = H * rng.uniform(0.015, 0.12)
            if rng.random() < 0.75:
                col = sc.jit([rng.uniform(120, 190)] * 3, 0.1)
                sc.poly([[x, yh - bh], [x + bw, yh - bh], [x + bw, yh + 2], [x, yh + 2]], BUILDING, col,
                        T_FACADE, sc.hz(700))
            x += bw * rng.uniform(0.7, 1.6)
