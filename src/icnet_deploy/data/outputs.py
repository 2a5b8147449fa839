"""Folder inference's files: which images a source names, the four outputs each gets (names that never
collide or overwrite an input), how labels are encoded and written, and the run's report. ``infer``
and ``infer --ray`` share them, so both write the same files."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, IcnetDeployError

__all__ = ["SUFFIXES", "InferReport", "Progress", "collect_inputs", "encode_outputs", "failure_message", "output_paths",
           "plan_outputs", "renamed_inputs", "write_encoded", "write_outputs"]

SUFFIXES = {"train_ids": "_labelTrainIds.png", "label_ids": "_labelIds.png", "color": "_color.png", "overlay": "_overlay.jpg"}
OVERLAY_ALPHA = 0.5
JPEG_QUALITY = 90

Progress = Callable[[int, int, dict], None]  # (done, total, {"images_per_s", "failed", "last"})


# --------------------------------------------------------------------------------------------
# inputs and outputs
# --------------------------------------------------------------------------------------------
def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    plain = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        plain.append(part)
    return Path(*plain) if plain else Path(".")


def collect_inputs(source: str | Path, exclude: Path | None = None) -> tuple[Path, list[Path]]:
    """(root, image files) for an image, a folder (recursive) or a glob; ``root`` anchors the mirrored tree.

    Unlike ``list_images``, files with an image suffix are all kept even when they turn out not
    to decode: the pipeline reports each one. Files under ``exclude`` (the output folder) are skipped.
    """
    from .folders import list_images

    text = str(source)
    path = Path(source)
    if path.is_file():
        return path.parent, [path]  # any suffix: a single named file is read (and reported) as asked
    if path.is_dir():
        root = path
    elif set("*?[") & set(text):
        root = _glob_root(text)
    else:
        raise DataError(f"{path}: no such file or folder.")
    files = list_images(source, recursive=True)
    if exclude is not None:
        ex = exclude.resolve()
        files = [f for f in files if ex not in f.resolve().parents]
        if not files:
            raise DataError(f"{source}: no images outside the output folder {exclude}.")
    return root, files


def _relative(f: Path, root: Path) -> Path:
    """``f`` under ``root`` as the user named it (a folder reached through a link keeps its own name),
    else as it resolves, else its bare name."""
    for a, b in ((f, root), (f.resolve(), root.resolve())):
        try:
            return a.relative_to(b)
        except ValueError:
            continue
    return Path(f.name)


def output_paths(root: Path, files: Sequence[Path], out: Path, overlay: bool = True) -> list[dict[str, Path]]:
    """Per input: {"train_ids", "label_ids", "color"[, "overlay"]} under ``out``, mirroring ``root``.

    Output names never collide, compared case-insensitively (a result copied to macOS or Windows
    must not lose a file): inputs that would share a stem in one folder (``b.jpg``, ``b.png``;
    ``a.png``, ``a.PNG``) get their suffix, lower-cased, in the stem (``b_jpg_…``, ``b_png_…``); a
    name still taken (``a_png`` twice, or an input already called ``b_jpg.png``) gets ``_2``,
    ``_3``, … in input order.
    """
    rels = [_relative(f, root) for f in files]
    key = lambda rel, stem: (str(rel.parent).casefold(), stem.casefold())  # noqa: E731
    stems = collections.Counter(key(r, r.stem) for r in rels)
    wanted = [r.stem if stems[key(r, r.stem)] == 1 else f"{r.stem}_{r.suffix.lstrip('.').lower()}" for r in rels]
    reserved = collections.Counter(key(r, w) for r, w in zip(rels, wanted))
    taken: set = set()
    out_list = []
    for rel, stem in zip(rels, wanted):
        name, n = stem, 1
        while key(rel, name) in taken or (name != stem and reserved[key(rel, name)]):
            n += 1
            name = f"{stem}_{n}"
        taken.add(key(rel, name))
        base = out / rel.parent
        out_list.append({k: base / f"{name}{s}" for k, s in SUFFIXES.items() if overlay or k != "overlay"})
    return out_list


def _refuse_inputs_as_outputs(files: Sequence[Path], names: Sequence[dict[str, Path]]) -> None:
    """An output file that is an input (``--allow-inside`` with an input named like ``x_color.png``)
    would be overwritten: refuse before any work, naming both."""
    inputs = {str(f.resolve()).casefold(): f for f in files}
    for f, outs in zip(files, names):
        for path in outs.values():
            hit = inputs.get(str(path.resolve()).casefold())
            if hit is not None:
                raise IcnetDeployError(f"{path}: output of {f} would overwrite the input {hit}; choose another --output")


def _stale(names: dict[str, Path]) -> list[Path]:
    """This input's output files that this run does not write (the overlay, with ``overlay=False``):
    removed with the new outputs, so no file beside them comes from another run or engine."""
    return [names["train_ids"].with_name(_stem(names) + s) for k, s in SUFFIXES.items() if k not in names]


def _stem(names: dict[str, Path]) -> str:
    """The output stem of one input's outputs (``b_jpg`` for ``out/b_jpg_labelTrainIds.png``)."""
    return names["train_ids"].name[: -len(SUFFIXES["train_ids"])]


def _check_output_folder(source: str | Path, root: Path, out: Path, allow_inside: bool) -> bool:
    """Refuse an output folder inside the input folder (unless allowed); True when it is inside."""
    root_r, out_r = root.resolve(), out.resolve()
    if out.exists() and not out.is_dir():
        raise IcnetDeployError(f"{out}: exists and is not a folder")
    if Path(source).is_file():
        inside = out_r == root_r  # a single file: only its own folder is off limits
    else:
        inside = out_r == root_r or root_r in out_r.parents
    if inside and not allow_inside:
        raise IcnetDeployError(
            f"output folder {out} is inside the input folder {root}: results would mix with (and be read back as) "
            "inputs; choose another --output or pass --allow-inside"
        )
    return inside


def encode_outputs(image: np.ndarray, labels: np.ndarray, overlay: bool = True) -> dict[str, bytes]:
    """One image's output files as bytes, by ``SUFFIXES`` key (the overlay only with ``overlay``)."""
    import io

    from PIL import Image

    from ..labels import colorize, train_ids_to_label_ids
    from .transforms import overlay as blend

    pictures = {
        "train_ids": (Image.fromarray(labels), {"format": "PNG", "compress_level": 1}),
        "label_ids": (Image.fromarray(train_ids_to_label_ids(labels)), {"format": "PNG", "compress_level": 1}),
        "color": (Image.fromarray(colorize(labels)), {"format": "PNG", "compress_level": 1}),
    }
    if overlay:
        pictures["overlay"] = (Image.fromarray(blend(image, labels, OVERLAY_ALPHA)), {"format": "JPEG", "quality": JPEG_QUALITY})
    encoded = {}
    for key, (picture, kwargs) in pictures.items():
        buffer = io.BytesIO()
        picture.save(buffer, **kwargs)
        encoded[key] = buffer.getvalue()
    return encoded


def write_outputs(image: np.ndarray, labels: np.ndarray, names: dict[str, Path]) -> None:
    write_encoded(encode_outputs(image, labels, overlay="overlay" in names), names)


def write_encoded(encoded: dict[str, bytes], names: dict[str, Path]) -> None:
    """Write one image's encoded outputs to temporary files, then rename them together (all or
    nothing), and remove the image's stale outputs (``_stale``)."""
    temps: dict[str, Path] = {}
    done: list[Path] = []
    try:
        for key, data in encoded.items():
            target = names[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            temps[key] = tmp
            tmp.write_bytes(data)
        for key, tmp in temps.items():
            os.replace(tmp, names[key])
            done.append(names[key])
        for path in _stale(names):
            path.unlink(missing_ok=True)
    except BaseException:
        for path in list(temps.values()) + done:
            path.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
@dataclass
class InferReport:
    """What ``infer_images`` did. Times in seconds; ``failures``: [{"path", "error"}]."""

    engine: dict
    source: str
    output: str
    total: int
    written: int
    failures: list[dict]
    batch: int
    resize: dict  # method -> image count
    wall_s: float
    engine_s: float  # the engine's own time (sum of infer calls)
    read_s: float  # decode + preprocess, summed over reader threads
    write_s: float  # postprocess + encode, summed over writer threads
    readers: int
    writers: int
    engine_sizes: list = field(default_factory=list)  # distinct engine input sizes used
    renamed: list = field(default_factory=list)  # [{"path", "stem"}]: inputs whose outputs got a disambiguated stem

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def images_per_s(self) -> float:
        return self.written / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "images_per_s": self.images_per_s,
                               "engine_busy_pct": 100.0 * self.engine_s / self.wall_s if self.wall_s else 0.0}



def failure_message(exc: BaseException) -> str:
    """How a file's failure is reported: our own and OS errors by their message, others with their type."""
    return str(exc) if isinstance(exc, (IcnetDeployError, OSError)) else f"{type(exc).__name__}: {exc}"


def renamed_inputs(files: Sequence[Path], names: Sequence[dict[str, Path]]) -> list[dict]:
    """[{"path", "stem"}] of the inputs whose outputs got a disambiguated stem (``output_paths``)."""
    return [{"path": str(f), "stem": _stem(n)} for f, n in zip(files, names) if _stem(n) != f.stem]


def plan_outputs(source: str | Path, output: Path, *, overlay: bool = True, allow_inside: bool = False,
                 max_pixels: int | None = None) -> tuple[list[Path], list[dict[str, Path]], int]:
    """(input files, their output names, max_pixels) for a run, after every check made before any
    image is read: the source, an output folder inside it, outputs that would overwrite inputs, an
    output folder that cannot be written, ``max_pixels`` (None: ``DEFAULT_MAX_PIXELS``)."""
    from .folders import DEFAULT_MAX_PIXELS
    from ..fileio import require_writable_dir

    src_path = Path(source)
    root = src_path.parent if src_path.is_file() else (src_path if src_path.is_dir() else _glob_root(str(source)))
    inside = _check_output_folder(source, root, output, allow_inside)
    root, files = collect_inputs(source, exclude=output if inside else None)
    names = output_paths(root, files, output, overlay)
    _refuse_inputs_as_outputs(files, names)
    require_writable_dir(output)
    if max_pixels is None:
        max_pixels = DEFAULT_MAX_PIXELS
    elif max_pixels < 1:
        raise IcnetDeployError(f"max_pixels must be at least 1, got {max_pixels}")
    return files, names, max_pixels
