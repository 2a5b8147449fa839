"""Image-only effects: texture noise, ground shadows, aerial haze, vignetting, exposure, sensor noise, blur.

Everything here is per pixel, reads the meta canvas (train id, texture id, haze) and never
changes the label. All noise comes from the scene's pixel-noise stream, whose draws depend on the
image size, so the layout stream stays the same at every resolution.
"""

from __future__ import annotations


import numpy as np
from PIL import Image, ImageChops, ImageFilter

from .palette import GROUND_HAZE, ROAD, SIDEWALK, TERRAIN, TEX_AMP

from .canvas import Scene

# as 8-bit PIL point() tables: a lookup over a whole 2-Mpixel image costs ~2 ms this way
_TEX_SCALE = 255.0 / 0.5
_TEX_LUT8 = [np.clip(np.round(TEX_AMP[:, i] * _TEX_SCALE), 0, 255).astype(int).tolist() for i in range(3)]
_GROUND_LUT8 = [255 if i in (ROAD, SIDEWALK, TERRAIN) else 0 for i in range(256)]  # shadows darken ground only
_HAZE_LUT8 = [round(i * 255 / 254) if i < GROUND_HAZE else 0 for i in range(256)]
_GROUND_HAZE_LUT8 = [255 if i == GROUND_HAZE else 0 for i in range(256)]


def _f32(im: Image.Image) -> np.ndarray:
    return np.asarray(im).astype(np.float32)


def _upsampled_noise(rng: np.random.Generator, H: int, W: int, step: int) -> np.ndarray:
    """Smooth noise, about N(0, 0.6): coarse uint8 noise upsampled bilinearly by ``step``."""
    n = rng.normal(128, 60, (H // step + 2, W // step + 2)).clip(0, 255).astype(np.uint8)
    big = Image.fromarray(n).resize((W + 2 * step, H + 2 * step), Image.BILINEAR).crop((0, 0, W, H))
    a = _f32(big)
    a -= 128.0
    a *= 1.0 / 100.0
    return a


def _texture(sc: Scene, tex_im: Image.Image, nf: np.ndarray) -> np.ndarray:
    """Brightness factor per pixel: fine (pixel), medium (leaves, grain) and coarse (stains) noise per texture."""
    rng, H, W = sc.nrng, sc.H, sc.W
    mod = _f32(tex_im.point(_TEX_LUT8[0]))
    mod *= nf
    t = _f32(tex_im.point(_TEX_LUT8[1]))
    t *= _upsampled_noise(rng, H, W, max(2, W // 400))
    mod += t
    t = _f32(tex_im.point(_TEX_LUT8[2]))
    t *= _upsampled_noise(rng, H, W, max(4, W // 40))
    mod += t
    mod *= 1.0 / _TEX_SCALE
    mod += 1.0
    return mod


def _shadow_factor(sc: Scene, lab_im: Image.Image) -> np.ndarray:
    """Brightness factor of the shadows, soft-edged by a down/up-sampling, on ground classes only."""
    r = max(2, int(round(3 * sc.scale)))
    soft = sc.shadows.reduce(r).resize((sc.W, sc.H), Image.BILINEAR)
    t = _f32(ImageChops.multiply(soft, lab_im.point(_GROUND_LUT8)))
    t *= -1.0 / 255.0
    t += 1.0
    return t


def _haze(sc: Scene, hz_im: Image.Image) -> np.ndarray:
    """Aerial haze 0..haze_max: per object (0..254), or from the row's ground depth for ground pixels (255)."""
    H = sc.H
    haze = _f32(hz_im.point(_HAZE_LUT8))
    haze *= sc.haze_max / 255.0
    rows = np.arange(H, dtype=np.float32) - sc.yh
    zrow = np.where(rows > 0.5, sc.f * sc.ch / np.maximum(rows, 0.5), 1e4)
    hrow = ((1.0 - np.exp(-zrow / sc.haze_dist)) * sc.haze_max / 255.0).astype(np.float32)
    t = _f32(hz_im.point(_GROUND_HAZE_LUT8))
    t *= hrow[:, None]
    haze += t
    return haze


def finish(sc: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Apply the image-only effects to the painted scene; return (RGB uint8 H×W×3, train ids uint8 H×W)."""
    rng, H, W = sc.nrng, sc.H, sc.W
    lab_im, tex_im, hz_im = sc.meta.split()
    label = np.array(lab_im)
    fine = rng.random((H + 8, W + 8), dtype=np.float32)
    fine -= 0.5
    nf, ns = fine[:H, :W], fine[8:, 8:]
    mod = _texture(sc, tex_im, nf)
    mod *= _shadow_factor(sc, lab_im)
    haze = _haze(sc, hz_im)
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
    hcol = sc.sky_horizon * 0.95 * g
    ns *= np.float32(rng.uniform(1.5, 5.0) * 3.46)  # unit-variance scale
    ns += np.float32((1 - contrast) * 110 * gain)
    planes = []
    for ch, band in enumerate(sc.img.split()):
        p = _f32(band)
        p *= mod
        p *= np.float32(g[ch])
        t = haze * np.float32(hcol[ch])
        p += t
        p += ns
        np.clip(p, 0, 255, out=p)
        planes.append(Image.fromarray(p.astype(np.uint8)))
    out = Image.merge("RGB", planes)
    out = out.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 0.65) * max(sc.scale, 0.25) ** 0.5))
    return np.array(out), label
