"""The order painters run in: a scene painted far to near, and ``generate_scene``, the generator's entry.

Every random draw comes from ``Scene.rng`` in a fixed order — the order ``render`` calls the
painters in — so a seed is the same street at any image size.
"""

from __future__ import annotations

import numpy as np

from . import background, boundaries, buildings, effects, placement, road, sidewalk, vehicles
from .canvas import Scene
from .mix import SceneMix


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Paint the scene far to near and return (RGB uint8 H×W×3, train ids uint8 H×W)."""
    background.paint_sky(scene)
    scene.lay_out()
    background.paint_skyline(scene)
    sidewalk.paint_sides(scene)
    road.paint_road(scene)
    buildings.paint_buildings(scene)
    boundaries.paint_boundaries(scene)
    placement.place_objects(scene)
    for _, _, fn, args in sorted(scene.queue, key=lambda t: (-t[0], t[1])):
        fn(scene, *args)
    if scene.rng.random() < 0.45:
        vehicles.ego_hood(scene)
    return effects.finish(scene)


def generate_scene(seed: int, height: int = 1024, width: int = 2048,
                   mix: SceneMix = SceneMix()) -> tuple[np.ndarray, np.ndarray]:
    """One street scene and its pixel-exact labels, deterministic in ``seed`` (and ``mix``).

    Returns (RGB uint8 H×W×3, train ids uint8 H×W with values 0..18 or 255). Geometry is relative to
    the image size, so any size ≥ 64×64 works; the same seed at another size is the same street.
    """
    if height < 64 or width < 64:
        raise ValueError(f"scene size must be at least 64×64, got {height}×{width}")
    return render(Scene(int(seed), int(height), int(width), mix))
