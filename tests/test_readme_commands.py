"""Every ``icnet-deploy`` command the README shows, run as written but at test sizes.

The commands are read from README.md's ```bash blocks (a README command that stops working, or a
new one, is a test), run in README order through the CLI in one working folder (later commands read
what earlier ones wrote, as a user's shell session would), and judged by exit code and by what
they write. Substitutions, so the whole README runs in a few minutes on 2 busy cores:

=====================  =========================================================================
command                substitution
=====================  =========================================================================
every command          runs in a fresh folder holding what a user brings: ``images/``,
                       ``my_images/`` (a few generated photos), ``cityscapes/`` and ``data/val``,
                       ``data/synth`` (tiny generated Cityscapes-layout sets), ``a.safetensors`` and
                       ``b.safetensors`` (random weights), ``models/`` (the shipped checkpoint)
``…`` in an argument   a file named after the command's README line (``--junit …`` → a .xml)
``export``             ``--height 128 --width 256`` (the shipped default is 1024×2048)
``build-engine``       INT8: ``--calib-limit 4 --weight-rounding nearest`` (GPTQ is tested in
                       ``test_build_engine.py``); compiled torch: ``--size 64x128`` (``slow``)
``check``              ``--count 2`` held-out scenes; the first ``check`` also ``--json``,
                       saved as ``check.json`` (what ``report check.json`` reads)
``bench``              ``--iters 2 --warmup 1 --no-memory``; the first also ``--json``, saved as
                       ``bench.json``
``synth``              ``--count 2 --size 128x256``
``train``              ``--iters 2 --batch 1 --crop 64x128``
=====================  =========================================================================

Exit codes: 0, except that ``check`` (and ``bench --parity``) may give 1, a gate's verdict: the
gate is meant for 1024×2048 and an INT8 engine of the shipped checkpoint at 128×256 misses it
(``test_e2e.py`` gates the shipped size); they must still write their reports. Commands for a GPU
(``--backend tensorrt``) skip with the reason where TensorRT or a GPU is missing.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.cli.app import prepare_argv
from icnet_deploy.manifest import read_manifest
from icnet_deploy.model.weights import SHIPPED_CHECKPOINT_NAME, shipped_checkpoint

README = Path(__file__).resolve().parents[1] / "README.md"
H, W = 128, 256
GATES = ("check",)  # commands whose exit code 1 is a verdict, not a failure


def readme_commands(text: str) -> list[tuple[int, list[str]]]:
    """(README line, argv after ``icnet-deploy``) of every command line in the README's shell blocks."""
    commands, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip() or "text"
            continue
        if fence in ("bash", "sh", "shell", "console") and re.match(r"(\$ )?icnet-deploy\s", stripped):
            argv = shlex.split(stripped.removeprefix("$ "), comments=True)
            commands.append((number, argv[1:]))
    return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def _option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg in names:
            return argv[i + 1]
    return None


def _needs(argv: list[str]) -> str | None:
    """Why this command cannot run here, or None."""
    if argv[0] == "serve":
        return "a server runs until it is stopped: tests/test_serving.py starts it (in a venv with the serve extra) and stops it"
    if argv[0] == "serve-bench":
        return "measures a running server: tests/test_serving.py runs it against the server it starts"
    if _option(argv, "--ray") not in (None, "local"):
        return f"needs a running Ray cluster at {_option(argv, '--ray')}"
    if _option(argv, "--backend") == "tensorrt":
        try:
            import tensorrt  # noqa: F401
            import torch
        except ImportError:
            return "needs TensorRT (pip install icnet-deploy[tensorrt]) on a machine with an NVIDIA GPU"
        if not torch.cuda.is_available():
            return "needs an NVIDIA GPU for TensorRT"
    return None


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag value``: replaced where the README gives the flag, else added."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[:i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


PLACEHOLDER_SUFFIX = {"--junit": "xml", "--html": "html"}


def _fast(line: int, argv: list[str], saved: set[str]) -> list[str]:
    """The README command with the substitutions of the module docstring."""
    argv = [f"readme_line{line}.{PLACEHOLDER_SUFFIX.get(argv[i - 1], 'out')}" if a == "…" else a
            for i, a in enumerate(argv)]
    command = argv[0]
    if command == "export" and "--height" not in argv:
        argv = _set(_set(argv, "--height", str(H)), "--width", str(W))
    elif command == "build-engine" and "--int8" in argv:
        argv = _set(argv, "--calib-limit", "4")
        if "--weight-rounding" not in argv:  # GPTQ is what the default costs; test_build_engine.py runs it
            argv = _set(argv, "--weight-rounding", "nearest")
    elif command == "build-engine" and _option(argv, "--backend") == "torch":
        argv = _set(_set(argv, "--size", "64x128"), "--threads", "2")
    elif command == "check":
        argv = _set(argv, "--count", "2")
    elif command == "bench":
        argv = [*_set(_set(argv, "--iters", "2"), "--warmup", "1"), "--no-memory"]
    elif command == "synth":
        argv = _set(_set(argv, "--count", "2"), "--size", f"{H}x{W}")
    elif command == "train":
        argv = _set(_set(_set(argv, "--iters", "2"), "--batch", "1"), "--crop", "64x128")
    if command in ("check", "bench") and command not in saved and "--json" not in argv:
        argv = [*argv, "--json"]
    return argv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, small_checkpoint) -> Path:
    """What the README's commands expect a user to have in the current folder."""
    from icnet_deploy.data.synthetic import generate_scene, write_dataset
    from icnet_deploy.model import ICNet
    from icnet_deploy.model.weights import save_checkpoint

    root = tmp_path_factory.mktemp("readme")
    for folder, seeds in (("images", (960_000, 960_001)), ("my_images", range(970_000, 970_004))):
        (root / folder).mkdir()
        for seed in seeds:
            Image.fromarray(generate_scene(seed, H, W)[0]).save(root / folder / f"scene_{seed}.jpg")
    for folder, split, seed in (("cityscapes", "val", 980_000), ("data/val", "val", 990_000),
                                ("data/synth", "train", 100), ("data/synth", "val", 900)):
        write_dataset(root / folder, 2, seed=seed, size=(H, W), split=split)
    shutil.copy(small_checkpoint, root / "a.safetensors")
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(1)
        save_checkpoint(ICNet().eval(), root / "b.safetensors", {"weights": "random", "note": "test fixture"})
    (root / "models").mkdir()
    shipped = shipped_checkpoint()
    if shipped is not None:
        (root / "models" / SHIPPED_CHECKPOINT_NAME).symlink_to(shipped)
    return root


def _check_outputs(argv: list[str], root: Path, stdout: str) -> None:
    """What each command must have written."""
    command = argv[0]
    for flag in ("-o", "--out", "--output", "--junit", "--html"):
        path = _option(argv, flag)
        if path is not None:
            assert (root / path).exists(), f"{flag} {path} was not written"
    if command == "export":
        manifest = read_manifest(root / _option(argv, "-o"))
        assert manifest.output_kind == (_option(argv, "--outputs") or "logits")
        if "--dynamic" not in argv:
            assert manifest.input_shape == [1, 3, H, W]
    elif command == "build-engine" and _option(argv, "-o").endswith(".onnx"):
        assert read_manifest(root / _option(argv, "-o")).precision == ("int8" if "--int8" in argv else "fp16")
    elif command == "infer":
        inputs = sorted((root / argv[1]).glob("*.jpg"))
        for image in inputs:
            labels = root / _option(argv, "--output", "-o") / f"{image.stem}_labelTrainIds.png"
            assert Image.open(labels).size == Image.open(image).size, labels
    elif command == "synth":
        scenes = list((root / _option(argv, "--out")).rglob("*_leftImg8bit.png"))
        assert len(scenes) >= 2
    if "--json" in argv:
        data = json.loads(stdout[stdout.find("{"):])
        if command == "evaluate":
            assert 0.0 <= data["miou"] <= 100.0 and data["images"] == 2
        if command == "check":
            assert isinstance(data["passed"], bool) and data["sets"]


def test_the_readme_shows_the_commands_it_documents():
    shown = {argv[0] for _, argv in COMMANDS}
    assert {"export", "build-engine", "check", "infer", "bench", "report", "evaluate", "info", "synth", "train",
            "average", "adjust-logits"} <= shown


@pytest.fixture(scope="module")
def saved() -> set[str]:
    return set()


@pytest.mark.parametrize(
    "line, argv",
    [pytest.param(line, argv, id=f"L{line}-{argv[0]}",
                  marks=[pytest.mark.slow] if _option(argv, "--backend") == "torch" else [])
     for line, argv in COMMANDS])
def test_readme_command(workspace, saved, monkeypatch, line, argv):
    reason = _needs(argv)
    if reason:
        pytest.skip(f"README line {line}: {reason}")
    if any(Path(a).name == SHIPPED_CHECKPOINT_NAME for a in argv) and shipped_checkpoint() is None:
        pytest.skip(f"README line {line}: models/{SHIPPED_CHECKPOINT_NAME} is not in this checkout")
    command = _fast(line, argv, saved)
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(app, prepare_argv(command))  # as main() hands a shell's command line to typer
    allowed = (0, 1) if command[0] in GATES or (command[0] == "bench" and "--parity" in command) else (0,)
    assert result.exit_code in allowed, f"README line {line}: icnet-deploy {shlex.join(command)}\n{result.output}"
    _check_outputs(command, workspace, result.stdout)
    if command[0] in ("check", "bench") and command[0] not in saved:
        (workspace / f"{command[0]}.json").write_text(result.stdout[result.stdout.find("{"):])
        saved.add(command[0])


def test_readme_parsing_sees_comments_and_placeholders():
    text = "```bash\nicnet-deploy check --engine e.onnx --junit …   # a comment\n```\n```python\nicnet-deploy no\n```\n"
    assert readme_commands(text) == [(2, ["check", "--engine", "e.onnx", "--junit", "…"])]
    assert _fast(9, ["check", "--junit", "…"], {"check"}) == ["check", "--junit", "readme_line9.xml", "--count", "2"]
    assert _fast(9, ["bench", "--iters", "10"], set()) == ["bench", "--iters", "2", "--warmup", "1", "--no-memory", "--json"]
    assert COMMANDS and all(argv and argv[0] != "icnet-deploy" for _, argv in COMMANDS)
