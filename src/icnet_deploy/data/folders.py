"""Reading images and Cityscapes-layout datasets robustly, with one clear error per bad file.

Why: training, evaluation and calibration all read user folders; a truncated PNG, a label with
stray values or a missing label file must stop the run with a message naming the file, not a
stack trace from deep inside PIL or a silently wrong mIoU.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from ..labels import IGNORE_ID, NUM_CLASSES, label_ids_to_train_ids

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "CityscapesDataset", "list_images", "read_rgb", "read_train_ids"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Images larger than this are refused from their header, before decoding: a 140 KB PNG can declare
# 12000×12000 and take 7.7 GB and 38 s to decode (PIL itself only warns below 89 MP). 50 MP is 6×
# a 4K frame and 24× Cityscapes' 1024×2048.
DEFAULT_MAX_PIXELS = 50_000_000
_VALID_IDS = np.zeros(256, bool)
_VALID_IDS[:NUM_CLASSES] = True
_VALID_IDS[IGNORE_ID] = True
_GLOB_CHARS = set("*?[")


def _open(path: Path, what: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, check the size the header declares against ``max_pixels`` (None: no limit), then fully
    decode (``load()``) so that truncated files fail here, not later."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} file not found.")
    if not path.is_file():
        raise DataError(f"{path}: cannot read {what}: not a file.")
    try:
        img = Image.open(path)
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            img.close()
            raise DataError(f"{path}: {what} is {width}×{height} ({width * height:,} pixels), over the pixel limit "
                            f"of {max_pixels:,} (--max-pixels); not decoded.")
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, UnidentifiedImageError) or path.stat().st_size == 0:
            reason = "empty file" if path.stat().st_size == 0 else "not an image format PIL can decode"
        raise DataError(f"{path}: cannot read {what}: {reason}.") from None
    return img


def read_rgb(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read any image as uint8 H×W×3 RGB; one whose header declares more than ``max_pixels``
    pixels is refused (``DataError``) without being decoded.

    EXIF orientation is applied (ignored if the EXIF block itself is unreadable); grayscale is
    replicated to 3 channels; alpha (RGBA, LA, PA, transparent palettes) is dropped, keeping the
    stored colours (no compositing); 16-bit images (modes I;16*, I) are scaled to 8 bits with ``>> 8``; float images (mode F) are taken as 0..1
    when their maximum is ≤ 1, else as 0..255; CMYK/YCbCr/other modes use PIL's conversion.
    """
    path = Path(path)
    img = _open(path, "image", max_pixels)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
        pass
    try:
        mode = img.mode
        if mode.startswith("I;16") or mode == "I":
            a = np.asarray(img).astype(np.int64)
            a = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        elif mode == "F":
            a = np.asarray(img, dtype=np.float64)
            finite = a[np.isfinite(a)]
            scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
            a = np.clip(np.nan_to_num(a * scale), 0, 255).round().astype(np.uint8)
        elif mode in ("L", "RGB"):
            a = np.asarray(img)
        elif mode == "1":
            a = np.asarray(img.convert("L"))
        else:  # P, PA, LA, RGBA, RGBa, CMYK, YCbCr, LAB, HSV ...
            if mode in ("P", "PA"):
                img = img.convert("RGBA")
            a = np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image: {exc or type(exc).__name__}.") from None
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{path}: cannot read image: unexpected shape {a.shape}.")
    return np.ascontiguousarray(a, dtype=np.uint8)


def _check_train_ids(ids: np.ndarray, path: Path) -> np.ndarray:
    counts = np.bincount(ids.ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~_VALID_IDS)
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:10]) + (", …" if bad.size > 10 else "")
        raise DataError(f"{path}: label has values outside 0..{NUM_CLASSES - 1} and {IGNORE_ID}: {shown}.")
    return ids


def _read_ids(path: Path, what: str) -> np.ndarray:
    img = _open(path, what)
    if img.mode in ("L", "P"):  # P: the palette indices are the ids
        a = np.asarray(img)
    elif img.mode.startswith("I"):  # 16/32-bit label PNGs from some tools
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(f"{path}: {what} has values outside 0..255 ({int(a.min())}..{int(a.max())}).")
        a = a.astype(np.uint8)
    else:
        raise DataError(f"{path}: {what} must be a single-channel (mode L or P) image, got mode {img.mode}.")
    return np.ascontiguousarray(a, dtype=np.uint8)


def read_train_ids(path: Path) -> np.ndarray:
    """Read a ``*_labelTrainIds.png`` (mode L/P) as uint8 H×W; every value must be 0..18 or 255."""
    path = Path(path)
    return _check_train_ids(_read_ids(path, "label"), path)


def list_images(path: Path | str, recursive: bool = True) -> list[Path]:
    """Image files named by an image path, a folder (recursive by default) or a glob pattern; sorted."""
    text = str(path)
    p = Path(path)

    def is_image(q: Path) -> bool:
        return q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS and not q.name.startswith(".")

    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{p}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}).")
        return [p]
    if p.is_dir():
        found = [q for q in (p.rglob("*") if recursive else p.iterdir()) if is_image(q)]
        where = f"{p}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}" + \
            (" in all subfolders)." if recursive else ").")
    elif _GLOB_CHARS & set(text):
        found = [Path(q) for q in glob.glob(text, recursive=recursive) if is_image(Path(q))]
        where = f"{text}: no image files match this pattern."
    else:
        raise DataError(f"{p}: no such file or folder.")
    if not found:
        raise DataError(where)
    return sorted(found, key=str)


class CityscapesDataset:
    """Image/label pairs of one split in the Cityscapes layout (real or synthetic).

    ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` pairs with
    ``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` or, failing that,
    ``…_gtFine_labelIds.png`` (converted to train ids). Pairing is checked up front so a
    missing label fails at construction; pixels are read and checked on access.
    """

    def __init__(self, root: Path, split: str = "val") -> None:
        self.root = root = Path(root)
        self.split = split
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found.")
        img_dir = root / "leftImg8bit" / split
        if not img_dir.is_dir():
            raise DataError(f"{root}: no leftImg8bit/{split} folder; expected the Cityscapes layout "
                            f"leftImg8bit/{split}/<city>/*_leftImg8bit.png with labels in "
                            f"gtFine/{split}/<city>/*_gtFine_labelTrainIds.png (or *_gtFine_labelIds.png).")
        images = sorted((q for q in img_dir.rglob("*_leftImg8bit.png") if not q.name.startswith(".")), key=str)
        if not images:
            raise DataError(f"{img_dir}: no *_leftImg8bit.png images in this folder or its city subfolders.")
        self.image_paths: list[Path] = images
        self.label_paths: list[Path] = []
        self._is_train_ids: list[bool] = []
        gt_dir = root / "gtFine" / split
        for img in images:
            stem = img.name[: -len("_leftImg8bit.png")]
            folder = gt_dir / img.parent.relative_to(img_dir)
            train = folder / f"{stem}_gtFine_labelTrainIds.png"
            ids = folder / f"{stem}_gtFine_labelIds.png"
            if train.is_file():
                self.label_paths.append(train)
                self._is_train_ids.append(True)
            elif ids.is_file():
                self.label_paths.append(ids)
                self._is_train_ids.append(False)
            else:
                raise DataError(f"{img}: no label file; expected {train} (or {ids.name}).")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 H×W×3 RGB image, uint8 H×W train ids with 255 = ignore)."""
        n = len(self.image_paths)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i %= n
        image = read_rgb(self.image_paths[i])
        label = self.label(i)
        lp = self.label_paths[i]
        if label.shape != image.shape[:2]:
            raise DataError(f"{lp}: label size {label.shape[1]}×{label.shape[0]} does not match image "
                            f"{self.image_paths[i].name} size {image.shape[1]}×{image.shape[0]} (W×H).")
        return image, label

    def label(self, i: int) -> np.ndarray:
        """Train ids of image ``i`` alone (uint8 H×W, 255 = ignore): label statistics need no pixels."""
        lp = self.label_paths[i]
        if self._is_train_ids[i]:
            return read_train_ids(lp)
        return label_ids_to_train_ids(_read_ids(lp, "label"))

    def __repr__(self) -> str:
        return f"CityscapesDataset({str(self.root)!r}, split={self.split!r}, images={len(self)})"
