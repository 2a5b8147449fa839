"""Safe writes: a failure never leaves a half-written artifact behind, and no output replaces an input.

* ``atomic_path`` / ``atomic_write_*``: temp file beside the target, renamed onto it only on success.
* ``refuse_overwriting``: an output path that is one of the inputs — the same path, a symbolic
  link to it, or a hard link of it — is refused before any work (``build-engine a.onnx -o a.onnx``
  would otherwise replace its own parent).
* ``require_writable_dir``: a folder that cannot take files is found before the first result
  is computed, not after.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import IcnetDeployError

__all__ = [
    "check_file_target",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_parent",
    "refuse_overwriting",
    "require_writable_dir",
    "same_file",
]

# mkstemp creates files 0600; artifacts should get the usual permissions (0666 minus umask).
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def ensure_parent(target: str | Path) -> Path:
    """Make ``target``'s folder (and its parents); a clear error, not an OSError, where that is impossible."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IcnetDeployError(f"{target}: cannot write here: {_reason(exc)}") from None
    return target


def check_file_target(output: Path, example: str, sidecar: Path | None = None) -> None:
    """Refuse, before any slow work, an output that cannot become a file: a folder (``example`` names a
    file to give instead), a path under a file, or a ``sidecar`` (its manifest) that is a folder."""
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise IcnetDeployError(f"{output}: cannot write here: {parent} is a file, not a directory")
            break
    if output.is_dir():
        raise IcnetDeployError(f"{output}: is a directory; give a file name like {example}")
    if sidecar is not None and sidecar.is_dir():
        raise IcnetDeployError(f"{sidecar}: is a directory, cannot write the manifest there")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = ensure_parent(target)
    if target.is_dir():
        raise IcnetDeployError(f"{target}: is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise IcnetDeployError(f"{target}: cannot write here: {_reason(exc)}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.chmod(tmp_path, _FILE_MODE)
            os.replace(tmp_path, target)
        except OSError as exc:
            raise IcnetDeployError(f"{target}: cannot write here: {_reason(exc)}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file: the same path, a symbolic link to it, or a hard link
    (same device and inode). A path that does not exist yet is compared by where it resolves to."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def refuse_overwriting(outputs: Iterable[str | Path | None], inputs: Iterable[str | Path | None]) -> None:
    """Refuse, before any work, an output that is one of the inputs (see ``same_file``)."""
    ins = [Path(p) for p in inputs if p is not None]
    for out in (Path(p) for p in outputs if p is not None):
        for src in ins:
            if same_file(out, src):
                how = "is" if out.absolute() == src.absolute() else "is a link to (or of)"
                raise IcnetDeployError(f"{out}: output {how} the input {src}: writing it would destroy that input; "
                                       "choose another output path")


def require_writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove that files can be created in it (a probe file, removed again)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise IcnetDeployError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".icnet-deploy-probe.", dir=folder)
    except OSError as exc:
        raise IcnetDeployError(f"{folder}: output folder is not writable: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(probe)
    return folder
