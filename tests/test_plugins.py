"""The UpsampleArgmax op's CPU kernel (C, loaded by ``icnet_deploy.plugins``) gives the reference's labels exactly.

The reference is ``upsample.bilinear_argmax`` (itself checked against ``F.interpolate(...).argmax``
in test_upsample.py). Every comparison here is ``==`` on every pixel: random logits at the sizes
the model meets, the shipped model's own outputs, float16, NaN, odd and shrinking sizes, 1-pixel
inputs, any thread count. The Triton kernel's arithmetic is checked the same way in Triton's
interpreter where triton is installed (on a GPU: tests/backends/test_plugins_gpu.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from icnet_deploy import plugins
from icnet_deploy.cli import app
from icnet_deploy.upsample import bilinear_argmax

HAS_COMPILER = any(shutil.which(cc) for cc in ("cc", "gcc", "clang"))


@pytest.fixture
def kernel():
    lib = plugins.native_library()
    if lib is None:
        reason = plugins.label_path()["reason"]
        if HAS_COMPILER and not os.environ.get(plugins.NO_NATIVE_ENV):
            pytest.fail(f"a C compiler is here but the kernel is not loaded: {reason}")
        pytest.skip(f"no CPU kernel: {reason}")
    return lib


def _reference(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([bilinear_argmax(one, size) for one in logits])


def _blobs(n: int, classes: int, h: int, w: int, seed: int) -> np.ndarray:
    """Smooth per-class noise: regions and boundaries like a segmentation's."""
    rng = np.random.default_rng(seed)
    low = rng.standard_normal((n, classes, max(2, h // 8), max(2, w // 8))).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(low), size=(h, w), mode="bicubic", align_corners=False).numpy()
    return 4 * smooth + 0.1 * rng.standard_normal((n, classes, h, w)).astype(np.float32)


def _noise(n: int, classes: int, h: int, w: int, seed: int) -> np.ndarray:
    """White noise: almost every output pixel is interpolated over all classes (the kernel's slow path)."""
    return np.random.default_rng(seed).standard_normal((n, classes, h, w)).astype(np.float32)


@pytest.mark.parametrize(("batch", "src", "size"), [
    (1, (256, 512), (1024, 2048)),  # the shipped model at its shipped size
    (1, (258, 514), (1025, 2049)),  # odd sizes: not a multiple, scale not an integer
    (1, (180, 320), (720, 1280)),
    (1, (16, 16), (64, 64)),        # the smallest input the model takes
    (3, (64, 128), (256, 512)),     # a batch of three different images
])
def test_kernel_equals_the_reference_on_random_logits(kernel, batch, src, size):
    for make in (_blobs, _noise):
        logits = make(batch, 19, *src, seed=sum(size))
        got = plugins.upsample_argmax(logits, size, threads=2)
        assert got.dtype == np.uint8 and got.shape == (batch, *size)
        assert np.array_equal(got, _reference(logits, size)), make.__name__


def test_kernel_equals_the_model_s_own_upsample_then_argmax(kernel):
    """On smooth logits (no exact ties) the labels are also torch's ``interpolate`` + ``argmax``: what the model computes."""
    logits = _blobs(1, 19, 180, 320, seed=7)
    full = F.interpolate(torch.from_numpy(logits), size=(720, 1280), mode="bilinear", align_corners=False)
    assert np.array_equal(plugins.upsample_argmax(logits, (720, 1280)), full.argmax(1).numpy())


@pytest.mark.parametrize(("src", "size"), [
    ((1, 1), (64, 64)),     # a 1-pixel input: every output pixel is that pixel
    ((1, 7), (4, 30)),      # one source row
    ((9, 1), (40, 3)),      # one source column
    ((33, 65), (131, 259)),  # odd, not a multiple
    ((64, 128), (50, 70)),  # shrinking: still two taps per axis
    ((40, 60), (40, 60)),   # same size: the plain argmax
    ((5, 5), (1, 1)),       # a 1-pixel output
])
def test_kernel_edge_sizes(kernel, src, size):
    for classes in (1, 2, 19):
        logits = _noise(2, classes, *src, seed=classes)
        assert np.array_equal(plugins.upsample_argmax(logits, size), _reference(logits, size)), classes


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf − inf
def test_kernel_float16_equals_the_reference_on_float16(kernel):
    logits = _blobs(2, 19, 33, 47, seed=3).astype(np.float16)
    logits[0, :, 0, 0] = np.float16(6e-8)  # subnormals and an infinity convert exactly too
    logits[1, 4, 3, 3] = np.inf
    got = plugins.upsample_argmax(logits, (130, 190))
    assert np.array_equal(got, _reference(logits, (130, 190)))
    assert np.array_equal(got, plugins.upsample_argmax(logits.astype(np.float32), (130, 190)))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_kernel_ties_and_nan_follow_the_reference(kernel):
    logits = _noise(1, 6, 12, 16, seed=11)
    logits[0, 2] = logits[0, 4] = 9.0  # an exact tie everywhere: the lower class wins
    logits[0, 1, 5, 5] = np.nan        # numpy's rules for a NaN, in the coarse argmax and the interpolation
    logits[0, :, 8, 9] = np.nan
    got = plugins.upsample_argmax(logits, (48, 64))
    assert np.array_equal(got, _reference(logits, (48, 64)))
    assert (got[0, :16, :16] == 2).mean() > 0.5


@pytest.mark.parametrize("threads", [1, 2, 3, 7, 64])
def test_any_thread_count_gives_the_same_labels(kernel, threads):
    logits = _blobs(2, 19, 40, 70, seed=5)
    assert np.array_equal(plugins.upsample_argmax(logits, (161, 283), threads=threads), _reference(logits, (161, 283)))


def test_more_than_255_classes_go_to_the_reference():
    logits = _noise(1, 256, 3, 4, seed=0)
    assert np.array_equal(plugins.upsample_argmax(logits[0], (9, 13)), bilinear_argmax(logits[0], (9, 13)))


@pytest.fixture(scope="module")
def shipped_model():
    from icnet_deploy.model.weights import load_model, shipped_checkpoint

    if shipped_checkpoint() is None:
        pytest.skip("no shipped checkpoint in this checkout")
    return load_model(None).eval()


def _model_logits(model, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """The shipped model's 1/4-resolution logits (what every runner's label path starts from) on the
    real photographs and a generated scene at ``size``."""
    from icnet_deploy.assets import real_photos
    from icnet_deploy.data.folders import read_rgb
    from icnet_deploy.data.synthetic import generate_scene
    from icnet_deploy.data.transforms import preprocess, resize_image

    images = [("scene", generate_scene(960_000, *size)[0])] + [(p.name, read_rgb(p)) for p in real_photos()]
    x = np.concatenate([preprocess(np.ascontiguousarray(resize_image(im, size)), model.config.mean, model.config.std)
                        for _, im in images])
    with torch.inference_mode():
        return [n for n, _ in images], model.forward_coarse(torch.from_numpy(x)).numpy()


def test_kernel_equals_the_reference_on_the_shipped_model_s_outputs(kernel, shipped_model):
    names, coarse = _model_logits(shipped_model, (256, 512))
    for size in ((256, 512), (250, 700)):  # the model's own ×4, and an image of another size
        got = plugins.upsample_argmax(coarse, size)
        for name, one, labels in zip(names, coarse, got):
            assert np.array_equal(labels, bilinear_argmax(one, size)), name


@pytest.mark.slow
def test_kernel_equals_the_reference_on_the_shipped_model_at_full_size(kernel, shipped_model):
    names, coarse = _model_logits(shipped_model, (1024, 2048))
    assert coarse.shape[1:] == (19, 256, 512)
    got = plugins.upsample_argmax(coarse, (1024, 2048))
    for name, one, labels in zip(names, coarse, got):
        assert np.array_equal(labels, bilinear_argmax(one, (1024, 2048))), name


# --------------------------------------------------------------------------------------------
# which implementation serves, and saying so
# --------------------------------------------------------------------------------------------
def test_label_path_reports_the_kernel(kernel):
    info = plugins.label_path()
    assert info["implementation"] == "C kernel" and info["source_sha256"] == plugins._sha256_of("upsample_argmax.c")
    assert info["threads"] >= 1 and info["isa"] and kernel.path.is_file()
    assert plugins.label_path_text(info).startswith("UpsampleArgmax C kernel v1")


def test_disabled_kernel_falls_back_to_the_reference_and_says_why(monkeypatch):
    monkeypatch.setenv(plugins.NO_NATIVE_ENV, "1")
    plugins._load_native.cache_clear()
    try:
        assert plugins.native_library() is None
        info = plugins.label_path()
        assert info == {"op": "UpsampleArgmax", "implementation": "numpy reference",
                        "reason": f"{plugins.NO_NATIVE_ENV} is set"}
        logits = _blobs(2, 19, 20, 30, seed=1)
        assert np.array_equal(plugins.upsample_argmax(logits, (80, 120)), _reference(logits, (80, 120)))
        result = CliRunner().invoke(app, ["info", "--size", "64x64", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["label_path"]["cpu"]["implementation"] == "numpy reference"
    finally:
        monkeypatch.delenv(plugins.NO_NATIVE_ENV)
        plugins._load_native.cache_clear()


def test_a_library_built_from_another_source_is_refused(kernel, monkeypatch):
    monkeypatch.setattr(plugins, "_sha256_of", lambda *names: "0" * 64)
    plugins._load_native.cache_clear()
    try:
        assert plugins.native_library() is None
        assert "built from another source" in plugins.label_path()["reason"]
    finally:
        monkeypatch.undo()
        plugins._load_native.cache_clear()


def test_info_names_the_label_path(kernel):
    result = CliRunner().invoke(app, ["info", "--size", "64x64", "--json"])
    assert result.exit_code == 0, result.output
    paths = json.loads(result.stdout)["label_path"]
    assert paths["cpu"]["implementation"] == "C kernel" and "cuda" in paths
    text = CliRunner().invoke(app, ["info", "--size", "64x64"])
    assert "label path (CPU)" in text.output and "C kernel" in text.output


def test_op_record_names_the_plugin_sources():
    record = plugins.op_record()
    assert (record["name"], record["domain"], record["version"]) == ("UpsampleArgmax", "icnet_deploy", "1")
    assert len(record["source_sha256"]) == 64 and all(s.startswith("plugins/upsample_argmax/") for s in record["sources"])


# --------------------------------------------------------------------------------------------
# the Triton kernel's arithmetic, in Triton's interpreter (CPU tensors)
# --------------------------------------------------------------------------------------------
_INTERPRETED = """
import numpy as np, torch
from icnet_deploy.kernels.upsample_argmax.triton_kernel import upsample_argmax
from icnet_deploy.upsample import bilinear_argmax
rng = np.random.default_rng(0)
cases = [((2, 19, 9, 17), (37, 70), np.float32), ((1, 5, 1, 1), (4, 6), np.float32),
         ((1, 7, 13, 11), (5, 4), np.float16), ((1, 3, 8, 8), (8, 8), np.float32)]
for shape, size, dtype in cases:
    logits = rng.standard_normal(shape).astype(dtype)
    logits[0, 1, 0, :2] = np.nan
    ref = np.stack([bilinear_argmax(one, size) for one in logits])
    for out_dtype in (torch.uint8, torch.int32):
        out = torch.empty((shape[0], *size), dtype=out_dtype)
        got = upsample_argmax(torch.from_numpy(logits), size, out=out).numpy()
        assert np.array_equal(got, ref), (shape, size, dtype, out_dtype)
print("ok")
"""


def test_triton_kernel_in_the_interpreter():
    pytest.importorskip("triton", reason="triton is not installed (it ships with CUDA builds of torch)")
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", _INTERPRETED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
