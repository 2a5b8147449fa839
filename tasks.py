#!/usr/bin/env python3
"""The README's two commands, with nothing but Python 3.10+ on the machine.

    python3 tasks.py demo    # set up .venv, then run the main job on the shipped defaults
    python3 tasks.py test    # set up .venv, then run the test suite

Set-up creates ``.venv`` and installs torch 2.13.0 (CPU build) *before* the package: on Linux the
default index's torch is the CUDA build (several GB), so torch comes from PyTorch's CPU wheel index
when that answers within a few seconds, else from the default index (machines with a local mirror,
like the CI machine, whose mirror holds the CPU build). It reinstalls only when pyproject.toml,
setup.py or a C kernel in plugins/ changes (the install compiles those).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ICNET_DEPLOY_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 3.0  # the whole probe, name lookup included: an unreachable index costs at most this
DEMO_DIR = ROOT / "demo_out"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url`` answers with success (2xx/3xx) within ``timeout`` seconds, name lookup included
    (an error status — a proxy's 403, a 404 — means the index cannot be used either)."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                answered.append(True)
        except (OSError, ValueError):  # urllib.error.URLError and HTTPError are OSErrors
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


def torch_install_args(index: str = TORCH_CPU_INDEX, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """pip arguments for the pinned torch: the CPU build from ``index`` on Linux when it is reachable;
    otherwise the default index (elsewhere its torch is the CPU build anyway)."""
    if not sys.platform.startswith("linux"):
        return [TORCH]
    if reachable(index.rstrip("/") + "/torch/", timeout):
        return [TORCH, "--index-url", index]
    print(f"note: {index} gave no successful answer within {timeout:g} s: installing {TORCH} from the default index",
          flush=True)
    return [TORCH]


def setup() -> None:
    """Create the venv and install the package with the CPU runtime and dev tools (idempotent)."""
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10+ is needed, this is {sys.version.split()[0]}")
    stamp = VENV / ".icnet-deploy-installed"
    # what the install builds from: a changed C kernel (plugins/) needs its library rebuilt
    built_from = [ROOT / "pyproject.toml", ROOT / "setup.py", *sorted((ROOT / "plugins").rglob("*.c"))]
    want = hashlib.sha256(b"".join(p.read_bytes() for p in built_from) + TORCH.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = (PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    run(*pip, "--upgrade", "pip")
    run(*pip, *torch_install_args())
    run(*pip, "-e", ".[cpu,dev]")
    stamp.write_text(want)


def demo() -> None:
    """The main job on the shipped defaults, outputs under demo_out/:

    export (fp32 ONNX, verified) → fp16/int8 engines (build-engine) → infer on sample images (the
    real photographs + 2 generated scenes) with each engine → check (parity gate: JSON, JUnit and an
    HTML page per engine) → bench: one final table of every engine's latency, speed-up and memory vs
    eager with its parity verdict (and bench.html) → report.html: all the checks and the bench on one page.
    """
    import shutil

    setup()
    cli = BIN / "icnet-deploy"
    out = DEMO_DIR
    out.mkdir(parents=True, exist_ok=True)

    def run_allowing_failure(*cmd: str | Path, stdout: Path | None = None) -> int:
        """Like run(), but a parity failure (exit 1) does not stop the demo: the final table shows it."""
        print("+", " ".join(str(c) for c in cmd) + (f" > {stdout}" if stdout else ""), flush=True)
        with open(stdout, "w") if stdout else open(os.devnull, "w") as sink:
            code = subprocess.run([str(c) for c in cmd], cwd=ROOT, stdout=sink if stdout else None).returncode
        if code not in (0, 1):
            print(f"demo: that step failed (exit {code}); going on", flush=True)
        return code

    run(cli, "info")
    fp32 = out / "icnet_fp32.onnx"
    if not fp32.is_file():
        run(cli, "export", "--output", fp32)
    engines = [fp32]
    for precision in ("fp16", "int8"):
        target = out / f"icnet_{precision}.onnx"
        if not target.is_file():
            run(cli, "build-engine", fp32, f"--{precision}", "--output", target)
        engines.append(target)

    samples = out / "samples"
    if not (samples / "scenes").is_dir():
        run(cli, "synth", "--out", samples / "scenes", "--count", "2", "--seed", "950100", "--images-only")
    (samples / "photos").mkdir(parents=True, exist_ok=True)
    for photo in sorted((ROOT / "src" / "icnet_deploy" / "assets" / "photos").iterdir()):
        if photo.suffix.lower() in (".png", ".jpg", ".jpeg"):
            shutil.copy2(photo, samples / "photos" / photo.name)
    run(cli, "infer", samples, "--output", out / "infer" / "eager")
    for engine in engines:
        run(cli, "infer", samples, "--engine", engine, "--output", out / "infer" / engine.stem)
        run_allowing_failure(cli, "check", "--engine", engine, "--json", "--junit",
                             out / f"check_{engine.stem}.xml", "--html", out / f"check_{engine.stem}.html",
                             stdout=out / f"check_{engine.stem}.json")
    bench = ["bench", *[a for e in engines for a in ("--engine", e)], "--baseline", engines[0],  # fp32: what INT8 buys
             "--iters", "10", "--warmup", "2", "--parity", "--json", "--html", out / "bench.html"]
    run_allowing_failure(cli, *bench, stdout=out / "bench.json")
    results = [out / f"check_{e.stem}.json" for e in engines] + [out / "bench.json"]
    run_allowing_failure(cli, "report", *[r for r in results if r.is_file() and r.stat().st_size], "-o", out / "report.html")
    print(f"demo outputs: {out} (segmentations in infer/, parity reports check_*.json/.xml/.html, bench.json/.html, "
          "report.html: all of them on one page)", flush=True)


def test() -> None:
    """The whole suite (fast unit tests plus the marked full-resolution end-to-end tests)."""
    setup()
    run(PYTHON, "-m", "pytest", "-q", *sys.argv[2:])


if __name__ == "__main__":
    tasks = {"setup": setup, "demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}} [pytest args]")
    tasks[sys.argv[1]]()
