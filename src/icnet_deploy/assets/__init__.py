"""Files shipped inside the package (so they exist on any install, not only in a clone)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PHOTOS_DIR", "real_photos"]

PHOTOS_DIR = Path(__file__).parent / "photos"


def real_photos() -> list[Path]:
    """The shipped real photographs (public domain / CC0), sorted by name."""
    return sorted(p for p in PHOTOS_DIR.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
