"""Small 2-D shape builders in local metres, shared by the object painters."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of 2-D points; used to give thin side-view parts a lateral width."""
    p = sorted(set(map(tuple, np.round(pts, 6).tolist())))
    if len(p) <= 2:
        return np.array(p)

    def half(seq: list | reversed) -> list:
        out: list = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(reversed(p))
    return np.array(lower[:-1] + upper[:-1])


def seg(p: ArrayLike, q: ArrayLike, t: float) -> np.ndarray:
    """Quad of thickness t around segment p-q (local metres): tubes, limbs, poles."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    n = math.hypot(d[0], d[1])
    if n < 1e-9:
        d = np.array([0.0, 1.0])
        n = 1.0
    o = np.array([-d[1], d[0]]) / n * (t / 2)
    return np.array([p + o, q + o, q - o, p - o])


def ground_ellipse(X: float, z: float, rx: float, rz: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(X, Z) outline of an ellipse on the ground: the soft shadow under trees, people and bikes."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return X + rx * np.cos(t), np.maximum(z + rz * np.sin(t), 0.5)
