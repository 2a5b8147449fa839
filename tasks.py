#!/usr/bin/env python3
"""The README's two commands, with nothing but Python 3.10+ on the machine.

    python3 tasks.py demo    # set up .venv, then run the main job on the shipped defaults
    python3 tasks.py test    # set up .venv, then run the test suite

Set-up creates ``.venv`` and installs torch 2.13.0 (CPU build) *before* the package: an
unpinned torch would pull a multi-GB CUDA build. It reinstalls only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ICNET_DEPLOY_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
TORCH = "torch==2.13.0"
DEMO_DIR = ROOT / "demo_out"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    """Create the venv and install the package with the CPU runtime and dev tools (idempotent)."""
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10+ is needed, this is {sys.version.split()[0]}")
    stamp = VENV / ".icnet-deploy-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = (PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    run(*pip, "--upgrade", "pip")
    run(*pip, TORCH)
    run(*pip, "-e", ".[cpu,dev]")
    stamp.write_text(want)


def demo() -> None:
    """The main job on the shipped defaults."""
    setup()
    cli = BIN / "icnet-deploy"
    run(cli, "info")


def test() -> None:
    """The whole suite (fast unit tests plus the marked full-resolution end-to-end tests)."""
    setup()
    run(PYTHON, "-m", "pytest", "-q", *sys.argv[2:])


if __name__ == "__main__":
    tasks = {"setup": setup, "demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}} [pytest args]")
    tasks[sys.argv[1]]()
