"""Hostile inputs: every command as a careless or malicious user would drive it.

One test per defect found that way (``test_defectN_…``): an output that is its own input, output
names that collide, an image that declares 144 MP, errors that ended in a traceback, a poisoned
calibration cache, manifest fields taken on trust, an unwritable output folder, stale outputs of
another run. Then what CI and users rely on around them: JSON errors, ``--debug``, plain progress
lines in logs, and the install's torch index probe.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.errors import DataError
from icnet_deploy.hashing import sha256_file
from icnet_deploy.manifest import ONNX_METADATA_KEY, manifest_path

cli = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _engine_copy(small_onnx: Path, folder: Path, name: str = "engine.onnx") -> Path:
    """A private copy of the fp32 test export and its sidecar (tests edit or overwrite them)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / name
    shutil.copy(small_onnx, copy)
    shutil.copy(manifest_path(small_onnx), manifest_path(copy))
    return copy


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _assert_one_line_error(result, *words: str) -> str:
    """Exit 2, exactly one ``error:`` line naming ``words``, and no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path


def _label_sizes(out: Path) -> list[tuple[int, int]]:
    return sorted(Image.open(p).size[::-1] for p in out.rglob("*_labelTrainIds.png"))


def _edit_sidecar(engine: Path, **fields) -> None:
    data = json.loads(manifest_path(engine).read_text())
    data.update(fields)
    manifest_path(engine).write_text(json.dumps(data))


def _edit_both_copies(engine: Path, **fields) -> None:
    """Edit the sidecar *and* the copy embedded in the ONNX file, and record the new file's sha256:
    an edit that every hash-free check would accept."""
    import onnx

    proto = onnx.load(str(engine))
    for prop in proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            embedded = json.loads(prop.value)
            embedded.update(fields)
            prop.value = json.dumps(embedded)
    onnx.save(proto, str(engine))
    _edit_sidecar(engine, sha256=sha256_file(engine), **fields)


def _infer(engine: Path, tmp_path: Path, *extra: str):
    image = _image(tmp_path / "in" / "street.png", 70, 90)
    return cli.invoke(app, ["infer", str(image), "--engine", str(engine), "--output", str(tmp_path / "out"), *extra])


# --------------------------------------------------------------------------------------------
# 1. an output path equal to (or a link of) an input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
def test_defect1_build_engine_output_that_is_its_input_is_refused_before_work(small_onnx, tmp_path, how):
    """`build-engine a.onnx --fp16 -o a.onnx` used to exit 0 having overwritten its own fp32 parent."""
    engine = _engine_copy(small_onnx, tmp_path)
    before = sha256_file(engine), manifest_path(engine).read_text()
    output = engine
    if how == "symbolic link":
        output = tmp_path / "link.onnx"
        output.symlink_to(engine)
    elif how == "hard link":
        output = tmp_path / "hard.onnx"
        os.link(engine, output)
    start = time.perf_counter()
    result = cli.invoke(app, ["build-engine", str(engine), "--fp16", "-o", str(output)])
    _assert_one_line_error(result, "would destroy that input")
    assert time.perf_counter() - start < 5  # refused before any conversion or parity run
    assert (sha256_file(engine), manifest_path(engine).read_text()) == before
    assert not manifest_path(output).exists() or output == engine


def test_defect1_checkpoint_tools_refuse_writing_over_their_input(small_checkpoint, tmp_path):
    ckpt = tmp_path / "w.safetensors"
    shutil.copy(small_checkpoint, ckpt)
    before = sha256_file(ckpt)
    result = cli.invoke(app, ["average", str(ckpt), str(small_checkpoint), "--out", str(ckpt)])
    _assert_one_line_error(result, "would destroy that input")
    result = cli.invoke(app, ["export", "--checkpoint", str(ckpt), "-o", str(ckpt), "--no-verify"])
    _assert_one_line_error(result, "would destroy that input")
    assert sha256_file(ckpt) == before


# --------------------------------------------------------------------------------------------
# 2. output-name collisions
# --------------------------------------------------------------------------------------------
def test_defect2_colliding_output_names_lose_no_result(small_onnx, tmp_path):
    """a.png/a.PNG, b.jpg/b.png/b_jpg.png: each input gets its own outputs (sizes tell them apart)."""
    folder = tmp_path / "in"
    sizes = {"a.png": (64, 70), "a.PNG": (64, 71), "b.jpg": (64, 72), "b.png": (64, 73), "b_jpg.png": (64, 74),
             "c.png": (64, 75)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        _image(folder / name, h, w, seed=i)
    out = tmp_path / "out"
    result = cli.invoke(app, ["infer", str(folder), "--engine", str(small_onnx), "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] == len(sizes)
    assert _label_sizes(out) == sorted(sizes.values())  # one label file per input, none overwritten
    stems = {Path(r["path"]).name: r["stem"] for r in report["renamed"]}
    assert stems == {"a.PNG": "a_png", "a.png": "a_png_2", "b.jpg": "b_jpg", "b.png": "b_png", "b_jpg.png": "b_jpg_2"}
    assert (out / "c_labelTrainIds.png").is_file()  # a name nobody else wants stays as it is


def test_defect2_same_name_through_a_symlinked_folder_loses_no_result(small_onnx, tmp_path):
    """y.png and sub/y.png where sub is a link to a folder elsewhere: both written, under their own paths."""
    _image(tmp_path / "in" / "y.png", 64, 80, seed=1)
    _image(tmp_path / "elsewhere" / "y.png", 64, 90, seed=2)
    (tmp_path / "in" / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    out = tmp_path / "out"
    result = cli.invoke(app, ["infer", str(tmp_path / "in" / "**" / "*.png"), "--engine", str(small_onnx),
                              "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert _label_sizes(out) == [(64, 80), (64, 90)]
    assert (out / "sub" / "y_labelTrainIds.png").is_file() and (out / "y_labelTrainIds.png").is_file()


def test_defect2_output_that_would_replace_an_input_is_refused(small_onnx, tmp_path):
    """An input that is (a link to) a file where another input's output goes would be overwritten: refused."""
    _image(tmp_path / "in" / "x.png", 64, 64)
    photo = _image(tmp_path / "out" / "x_color.png", 64, 64, seed=1)  # the user's own file, read through a link
    (tmp_path / "in" / "photo.png").symlink_to(photo)
    before = sha256_file(photo)
    result = cli.invoke(app, ["infer", str(tmp_path / "in"), "--engine", str(small_onnx), "--output", str(tmp_path / "out")])
    _assert_one_line_error(result, "would overwrite the input", "photo.png")
    assert sha256_file(photo) == before


# --------------------------------------------------------------------------------------------
# 3. a pixel limit from the header
# --------------------------------------------------------------------------------------------
def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG of width×height zeros, compressed row by row (never held in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.compress(row * (height % 500))
    idat += packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's own, at 89 MP: it only warns
def test_defect3_huge_declared_image_is_refused_from_its_header(tmp_path):
    """A ~140 KB PNG declaring 12000×12000 (144 MP) used to be decoded: 7.7 GB, 38 s, exit 0."""
    from icnet_deploy.data.folders import read_rgb

    bomb = _png_declaring(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 400_000
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.png: image is 12000×12000 \(144,000,000 pixels\), over the pixel limit "
                                        r"of 50,000,000"):
        read_rgb(bomb)
    assert time.perf_counter() - start < 1.0  # the header only: no decoding


def test_defect3_infer_skips_images_over_max_pixels_and_exits_2(small_onnx, tmp_path):
    _image(tmp_path / "in" / "small.png", 64, 100)
    _image(tmp_path / "in" / "large.png", 200, 200, seed=1)
    out = tmp_path / "out"
    result = cli.invoke(app, ["infer", str(tmp_path / "in"), "--engine", str(small_onnx), "--output", str(out),
                              "--max-pixels", "20000"])
    _assert_one_line_error(result, "1 of 2 input files could not be read and were skipped")
    assert re.search(r"skipped: .*large\.png: image is 200×200 \(40,000 pixels\), over the pixel limit of 20,000",
                     result.stderr)
    assert _label_sizes(out) == [(64, 100)]


# --------------------------------------------------------------------------------------------
# 4. every error path: exit 2 and one line, never a traceback
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["infer", "check", "bench"])
def test_defect4_manifest_input_shape_disagreeing_with_the_graph(small_onnx, tmp_path, command):
    """Used to end in ONNX Runtime's InvalidArgument traceback, exit 1 (check documents 1 as 'parity failed')."""
    engine = _engine_copy(small_onnx, tmp_path / "e")
    _edit_sidecar(engine, input_shape=[1, 3, 256, 512])
    args = {"infer": ["infer", str(_image(tmp_path / "x.png", 64, 64)), "-e", str(engine), "-o", str(tmp_path / "o")],
            "check": ["check", "-e", str(engine), "--count", "1", "--no-photos"],
            "bench": ["bench", "-e", str(engine), "--iters", "1", "--warmup", "0", "--no-memory", "--no-e2e"]}[command]
    _assert_one_line_error(cli.invoke(app, args), str(engine), "input_shape")


def test_defect4_junit_naming_a_folder_is_refused_before_the_run(small_onnx, tmp_path):
    start = time.perf_counter()
    result = cli.invoke(app, ["check", "-e", str(small_onnx), "--count", "1", "--junit", str(tmp_path)])
    _assert_one_line_error(result, str(tmp_path), "is a folder")
    assert time.perf_counter() - start < 5  # not after the whole run


def _cache_for(small_onnx: Path, small_quant_setup, folder: Path, edit) -> Path:
    """The test export's real calibration cache (as build-engine keys it), then ``edit``ed."""
    from icnet_deploy import onnx_graph

    _, cache, _ = small_quant_setup
    data = json.loads(cache.to_json())
    data["graph_sha256"] = onnx_graph.graph_sha256(small_onnx)
    edit(data)
    path = folder / "calib_cache.json"
    path.write_text(json.dumps(data))
    return path


def _build_int8(small_onnx: Path, cache: Path, output: Path):
    return cli.invoke(app, ["build-engine", str(small_onnx), "--int8", "--fixed-rule", "--weight-rounding", "nearest",
                            "--no-bias-correction", "--calib-cache", str(cache), "-o", str(output)])


@pytest.mark.parametrize("case, edit, words", [
    ("ranges is a list", lambda d: d.update(ranges=list(d["ranges"].values())), ["'ranges'"]),
    ("version is a string", lambda d: d.update(version="1"), ["'version'"]),
    ("tensors missing", lambda d: d.update(ranges=dict(list(d["ranges"].items())[:10])), ["no range for", "tensor"]),
])
def test_defect4_malformed_calibration_cache(small_onnx, small_quant_setup, tmp_path, case, edit, words):
    cache = _cache_for(small_onnx, small_quant_setup, tmp_path, edit)
    result = _build_int8(small_onnx, cache, tmp_path / "int8.onnx")
    _assert_one_line_error(result, str(cache), "calibration cache refused", *words)
    assert not (tmp_path / "int8.onnx").exists()


@pytest.mark.parametrize("num_classes", ["19", None])
def test_defect4_checkpoint_metadata_of_the_wrong_type(small_checkpoint, tmp_path, num_classes):
    """`info` on a checkpoint whose config says num_classes "19" or null used to raise a TypeError."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(small_checkpoint), framework="pt") as handle:
        metadata = dict(handle.metadata())
    config = json.loads(metadata["icnet_deploy.config"])
    config["num_classes"] = num_classes
    metadata["icnet_deploy.config"] = json.dumps(config)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(small_checkpoint)), str(bad), metadata=metadata)
    _assert_one_line_error(cli.invoke(app, ["info", "--checkpoint", str(bad), "--size", "64x64"]),
                           str(bad), "num_classes must be an integer")


# --------------------------------------------------------------------------------------------
# 5. a poisoned calibration cache
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, value, word", [
    ("every range [0, 0]", [0.0, 0.0], "degenerate"),
    ("every range ±1e38", [-1e38, 1e38], "implausible"),
])
def test_defect5_poisoned_calibration_cache_builds_no_engine(small_onnx, small_quant_setup, tmp_path, case, value, word):
    """Used to build with exit 0: 2.18% / 15.38% agreement with fp32, only a warning printed."""
    cache = _cache_for(small_onnx, small_quant_setup, tmp_path,
                       lambda d: d.update(ranges={k: list(value) for k in d["ranges"]}))
    result = _build_int8(small_onnx, cache, tmp_path / "int8.onnx")
    _assert_one_line_error(result, str(cache), word)
    assert not (tmp_path / "int8.onnx").exists() and not (tmp_path / "int8.onnx.json").exists()


# --------------------------------------------------------------------------------------------
# 6. manifest fields are verified, not trusted
# --------------------------------------------------------------------------------------------
def _one_conv_model(path: Path) -> Path:
    """An ONNX model with the export's input and output names and shapes: one 1×1 conv, no manifest."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((19, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["logits"])], "one_conv",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 128, 256])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 19, 128, 256])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("case", ["std 0", "sha256 null", "another model, sha256 null", "another model, its sha256",
                                  "false precision int8", "sidecar differs from the embedded copy"])
def test_defect6_manifest_fields_are_verified(small_onnx, tmp_path, case):
    """Each used to run (exit 0): garbage labels, any model as ICNet, int8's looser gate on an fp32 graph."""
    engine = _engine_copy(small_onnx, tmp_path / "e")
    if case == "std 0":
        _edit_sidecar(engine, std=[0, 57.12, 57.375])
        field = "'std'"
    elif case == "sha256 null":
        _edit_sidecar(engine, sha256=None)
        field = "'sha256'"
    elif case.startswith("another model"):
        _one_conv_model(engine)
        _edit_sidecar(engine, sha256=None if case.endswith("null") else sha256_file(engine))
        field = "'sha256'" if case.endswith("null") else "no embedded manifest"
    elif case == "false precision int8":
        _edit_both_copies(engine, precision="int8")
        field = "'precision'"
    else:
        data = json.loads(manifest_path(engine).read_text())
        _edit_sidecar(engine, class_names=["sky"] + data["class_names"][1:])
        field = "'class_names'"
    result = _infer(engine, tmp_path)
    _assert_one_line_error(result, str(engine), field)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_defect6_copied_onnx_without_its_sidecar_is_checked_by_its_graph_hash(small_onnx, tmp_path):
    """The embedded manifest carries the graph's hash: a copy keeps its identity, an edited copy is refused."""
    import onnx
    from onnx import numpy_helper

    from icnet_deploy.manifest import read_manifest

    copy = tmp_path / "copy.onnx"
    shutil.copy(small_onnx, copy)
    assert read_manifest(copy).to_dict() | {"sha256": None} == read_manifest(small_onnx).to_dict() | {"sha256": None}
    proto = onnx.load(str(copy))
    weight = proto.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 2, weight.name))
    onnx.save(proto, str(copy))
    _assert_one_line_error(_infer(copy, tmp_path), str(copy), "'graph_sha256'")


# --------------------------------------------------------------------------------------------
# 7. an unwritable output folder
# --------------------------------------------------------------------------------------------
def test_defect7_unwritable_output_folder_is_found_before_the_first_image(small_onnx, tmp_path):
    """Used to run the engine on every image, then report the inputs as files that 'could not be read'."""
    if os.geteuid() == 0:  # root writes through permission bits: procfs takes no new files from anyone
        output = Path("/proc")
        if not output.is_dir():
            pytest.skip("running as root without /proc: no folder here refuses new files")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        output = locked / "out"
    _image(tmp_path / "in" / "a.png", 64, 64)
    result = cli.invoke(app, ["infer", str(tmp_path / "in"), "--engine", str(small_onnx), "--output", str(output)])
    _assert_one_line_error(result, str(output), "not writable")
    assert "could not be read" not in result.output and "skipped:" not in result.output


# --------------------------------------------------------------------------------------------
# 8. stale outputs of another run
# --------------------------------------------------------------------------------------------
def test_defect8_rerun_without_overlay_leaves_no_stale_overlay(small_onnx, small_checkpoint, tmp_path):
    """Re-running `infer --no-overlay` into a folder used to leave the previous engine's overlays beside the new labels."""
    image = _image(tmp_path / "in" / "street.png", 70, 90)
    out = tmp_path / "out"
    first = cli.invoke(app, ["infer", str(image), "--engine", str(small_checkpoint), "--output", str(out)])
    assert first.exit_code == 0 and (out / "street_overlay.jpg").is_file()
    second = cli.invoke(app, ["infer", str(image), "--engine", str(small_onnx), "--output", str(out), "--no-overlay"])
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in out.iterdir()) == ["street_color.png", "street_labelIds.png", "street_labelTrainIds.png"]


# --------------------------------------------------------------------------------------------
# around them: JSON errors, --debug, progress in logs, the install
# --------------------------------------------------------------------------------------------
def test_json_errors_are_printed_on_stdout(tmp_path):
    result = cli.invoke(app, ["infer", str(tmp_path / "missing"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": f"{tmp_path / 'missing'}: no such file or folder.", "exit_code": 2}


def test_debug_adds_the_traceback_and_still_exits_2(tmp_path):
    result = cli.invoke(app, ["--debug", "infer", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "Traceback" in result.stderr and len(_error_lines(result)) == 1


def test_global_flags_may_follow_the_command():
    from icnet_deploy.cli.app import _hoist_global_flags

    assert _hoist_global_flags(["infer", "x", "--quiet", "--", "--debug"]) == ["--quiet", "infer", "x", "--", "--debug"]


def test_plain_progress_lines_are_throttled():
    from rich.console import Console

    from icnet_deploy.progress import Progress

    console = Console(record=True, width=200, force_terminal=False)
    now = [0.0]
    with Progress(console, "build-engine", live=False, clock=lambda: now[0]) as progress:
        task = progress.add_task("calibrating", total=30)
        for i in range(31):
            now[0] = float(i)
            task.update(i)
    lines = console.export_text().splitlines()
    assert lines == [
        "build-engine: calibrating 0/30 (0%) · elapsed 0:00",
        "build-engine: calibrating 10/30 (33%) · elapsed 0:10 · ETA 0:20",
        "build-engine: calibrating 20/30 (67%) · elapsed 0:20 · ETA 0:10",
        "build-engine: calibrating 30/30 (100%) · elapsed 0:30",
    ]


def test_quiet_prints_no_progress():
    from rich.console import Console

    from icnet_deploy.progress import Progress, set_level

    console = Console(record=True, width=200, force_terminal=False)
    set_level("quiet")
    try:
        with Progress(console, "infer", live=False) as progress:
            progress.add_task("images", total=3).update(3)
    finally:
        set_level("normal")
    assert console.export_text() == ""


def test_build_engine_int8_prints_progress_lines_in_a_log(small_onnx, calib_dir, tmp_path):
    """What a CI log of `build-engine --int8` shows: stderr is a pipe, not a terminal."""
    out = tmp_path / "int8.onnx"
    cmd = [sys.executable, "-m", "icnet_deploy.cli", "build-engine", str(small_onnx), "--int8", "--fixed-rule",
           "--weight-rounding", "nearest", "--no-bias-correction", "--calib", str(calib_dir),
           "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    steps = re.findall(r"^build-engine: (.+?) \d+/\d+ \(\d+%\) · elapsed \d+:\d\d", done.stderr, re.MULTILINE)
    assert "calibrating" in steps and "parity on held-out images" in steps, done.stderr
    assert "\x1b[" not in done.stderr and "\r" not in done.stderr  # no live bar drawn into the log


def _tasks_module():
    spec = importlib.util.spec_from_file_location("icnet_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_probe_falls_back_to_the_default_index_quickly():
    """tasks.py takes torch from PyTorch's CPU index only when it answers; else the default index, in seconds."""
    tasks = _tasks_module()
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    try:
        for index in (f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu",
                      f"http://127.0.0.1:{dead.getsockname()[1]}/whl/cpu", "http://icnet-deploy-probe.invalid/whl/cpu"):
            start = time.perf_counter()
            assert tasks.torch_install_args(index, timeout=1.0) == [tasks.TORCH], index
            assert time.perf_counter() - start < 2.0, index
    finally:
        silent.close()
        dead.close()


def test_install_probe_uses_the_cpu_index_when_it_answers():
    tasks = _tasks_module()
    if not sys.platform.startswith("linux"):
        pytest.skip("the CPU index is used on Linux only (elsewhere the default index's torch is the CPU build)")

    class Index(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the http.server API
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        index = f"http://127.0.0.1:{server.server_port}/whl/cpu"
        assert tasks.torch_install_args(index, timeout=2.0) == [tasks.TORCH, "--index-url", index]
    finally:
        server.shutdown()


def test_installed_onnxruntime_is_within_the_supported_range():
    """pyproject bounds onnxruntime to the release the tests run on: this run must be inside it."""
    from importlib import metadata

    low, high = re.search(r'^cpu = \["onnxruntime>=([\d.]+),<([\d.]+)"\]', (ROOT / "pyproject.toml").read_text(),
                          re.MULTILINE).groups()
    version = tuple(int(v) for v in metadata.version("onnxruntime").split(".")[:2])
    assert tuple(int(v) for v in low.split(".")[:2]) <= version < tuple(int(v) for v in high.split(".")[:2])
