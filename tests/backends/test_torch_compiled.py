"""Compiled torch engines: build, load, cached start, refusals; ``select_engine`` (``--engine auto``).

Fast tests never compile: they write an engine whose archive holds no cache, and every refusal
happens before the compile. The compile path itself (CPU, 64×128) is ``slow``; GPU tests are
``gpu`` and skip without CUDA.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from icnet_deploy.backends.base import Runner
from icnet_deploy.backends.loader import load
from icnet_deploy.backends.torch_compiled import (
    ENGINE_VERSION,
    CompiledTorchRunner,
    device_identity,
    read_engine_file,
    write_engine_file,
)
from icnet_deploy.compile import compile_engine, engine_manifest, engine_candidates, select_engine
from icnet_deploy.data.transforms import preprocess
from icnet_deploy.model.config import DEFAULT_MEAN, DEFAULT_STD
from icnet_deploy.errors import ArtifactError, BackendUnavailable, IcnetDeployError, ModelError
from icnet_deploy.data.samples import verification_images
from icnet_deploy.manifest import manifest_path, read_manifest, write_manifest
from icnet_deploy.model.weights import load_model

H, W = 64, 128
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _inputs(height: int = H, width: int = W, count: int = 2) -> np.ndarray:
    return np.concatenate([preprocess(im, DEFAULT_MEAN, DEFAULT_STD) for _, _, im in verification_images(count, height, width)])


def _eager(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return load_model(checkpoint)(torch.from_numpy(x)).numpy()


def _edit_manifest(engine: Path, **details) -> None:
    """Rewrite the manifest with other details, sealed as the toolkit writes it (a hand edit is refused)."""
    manifest = read_manifest(engine)
    manifest.details.update(details)
    write_manifest(engine, manifest)


# -- fast: an engine without cache artefacts, refused before any compile ----------------------
@pytest.fixture()
def bare_engine(tmp_path, small_checkpoint) -> Path:
    """A valid cpu fp32 engine for 1×3×64×128 whose archive is empty (activating it would compile from scratch)."""
    engine = tmp_path / "bare.torch"
    manifest = engine_manifest(load_model(small_checkpoint), precision="fp32", mode="default", batch=1,
                               height=H, width=W, device="cpu", output=engine)
    write_engine_file(engine, b"", [])
    write_manifest(engine, manifest)
    return engine


def test_manifest_records_what_the_engine_is_tied_to(bare_engine, small_checkpoint):
    m = read_manifest(bare_engine)
    assert (m.format, m.precision, m.input_shape, m.target) == ("torch", "fp32", [1, 3, H, W], "cpu")
    assert not Path(m.checkpoint_path).is_absolute()
    assert (bare_engine.parent / m.checkpoint_path).resolve() == small_checkpoint.resolve()
    assert m.checkpoint_sha256 == load_model(small_checkpoint).checkpoint_info["sha256"]
    d = m.details
    assert d["compile_mode"] == "default" and d["device"] == "cpu" and d["torch"] == torch.__version__
    assert d["device_name"] == device_identity("cpu")["device_name"]
    assert m.size_rule == {"min": 64, "multiple_of": 1, "dynamic": False, "height": H, "width": W}


def test_load_dispatches_torch_format(bare_engine):
    runner = load(bare_engine)
    assert isinstance(runner, CompiledTorchRunner)
    assert (runner.batch_size, runner.input_height, runner.input_width) == (1, H, W)
    assert runner.describe()["provider"] == "torch.compile inductor (default)"


def test_refuses_another_torch_version(bare_engine, tmp_path):
    copy = tmp_path / "copy" / "engine.torch"
    copy.parent.mkdir()
    shutil.copy(bare_engine, copy)
    shutil.copy(manifest_path(bare_engine), manifest_path(copy))
    _edit_manifest(copy, torch="2.11.0+cu130")
    message = r"engine\.torch: compiled with torch 2\.11\.0\+cu130 but this is torch"
    with pytest.raises(ArtifactError, match=message) as err:
        CompiledTorchRunner(copy).activate()
    assert "rebuild it here" in str(err.value)


def test_refuses_another_device(bare_engine):
    _edit_manifest(bare_engine, device_name="AMD EPYC 9654 [avx512]")
    message = r"bare\.torch: compiled for 'AMD EPYC 9654 \[avx512\]' but this machine's cpu is"
    with pytest.raises(ArtifactError, match=message):
        load(bare_engine).activate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the machine without a GPU")
def test_refuses_a_cuda_engine_without_a_gpu(bare_engine):
    _edit_manifest(bare_engine, device="cuda", device_name="NVIDIA H200", cuda="13.0")
    message = r"bare\.torch: compiled for CUDA \(NVIDIA H200\) but torch sees no GPU"
    with pytest.raises(BackendUnavailable, match=message):
        load(bare_engine).activate()


def test_refuses_other_weights(bare_engine, tmp_path):
    from icnet_deploy.model import ICNet
    from icnet_deploy.model.weights import save_checkpoint

    other = tmp_path / "other.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(1)
        save_checkpoint(ICNet().eval(), other)
    with pytest.raises(ArtifactError, match=r"bare\.torch: checkpoint .*other\.safetensors has sha256 .* built from"):
        CompiledTorchRunner(bare_engine, checkpoint=other).activate()


def test_missing_checkpoint_is_named(bare_engine):
    manifest = read_manifest(bare_engine)
    manifest.checkpoint_path = "/nowhere/weights.safetensors"
    write_manifest(bare_engine, manifest)
    with pytest.raises(ArtifactError, match=r"bare\.torch: its checkpoint /nowhere/weights\.safetensors is missing"):
        load(bare_engine).activate()


def test_foreign_or_unsafe_archives_are_refused(bare_engine):
    bare_engine.write_bytes(b"not a zip")
    write_manifest(bare_engine, read_manifest(bare_engine, verify=False))
    with pytest.raises(ArtifactError, match=r"bare\.torch: not a readable compiled torch engine"):
        load(bare_engine).activate()
    with zipfile.ZipFile(bare_engine, "w") as archive:
        archive.writestr("engine.json", json.dumps({"kind": "icnet-deploy torch engine", "version": ENGINE_VERSION}))
        archive.writestr("kernels/../../evil.so", b"\x7fELF")
    with pytest.raises(ArtifactError, match=r"unexpected file 'kernels/\.\./\.\./evil\.so'"):
        read_engine_file(bare_engine)


def test_an_engine_from_an_older_icnet_deploy_is_refused(bare_engine):
    """Version 1 archives cached the whole forward, not forward_coarse: loading one would recompile from scratch."""
    with zipfile.ZipFile(bare_engine, "w") as archive:
        archive.writestr("engine.json", json.dumps({"kind": "icnet-deploy torch engine", "version": 1}))
    with pytest.raises(ArtifactError, match="version 1 is from an older icnet-deploy; rebuild it here"):
        read_engine_file(bare_engine)


def test_edited_archive_fails_the_manifest_hash(bare_engine):
    with zipfile.ZipFile(bare_engine, "a") as archive:
        archive.writestr("cache_artifacts.bin", b"junk")
    with pytest.raises(ArtifactError, match="sha256 differs"):
        load(bare_engine)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8"}, "compiles fp32 or fp16"),
        ({"precision": "fp16", "device": "cpu"}, "fp16 for CUDA only"),
        ({"mode": "fastest"}, "compile mode must be one of"),
        ({"batch": 0}, "batch must be at least 1"),
        ({"height": 32}, "at least 64"),
        ({"device": "tpu"}, "device must be cpu or cuda"),
    ],
)
def test_compile_engine_refuses_bad_arguments(small_checkpoint, tmp_path, kwargs, message):
    with pytest.raises(IcnetDeployError, match=message):
        compile_engine(small_checkpoint, tmp_path / "e.torch", **({"device": "cpu"} | kwargs))
    assert list(tmp_path.iterdir()) == []


def test_compile_engine_needs_a_checkpoint_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ICNET_DEPLOY_MODELS", str(tmp_path / "no-models"))
    with pytest.raises(ModelError, match="reloads its weights from a checkpoint file"):
        compile_engine(None, tmp_path / "e.torch", device="cpu")


# -- fast: select_engine with stand-in runners ---------------------------------------------
class _Fake(Runner):
    """Returns the reference logits (optionally with some pixels flipped) after ``delay_ms``."""

    backend = "fake"

    def __init__(self, name, *, delay_ms=0.0, flip=0.0, precision="fp32", batch=None, fail=None, size=(H, W)):
        super().__init__(name)
        self.delay_ms, self.flip, self.precision, self.fail = delay_ms, flip, precision, fail
        self.batch_size = batch
        self.input_height, self.input_width = size
        self.activations = 0

    def _activate_impl(self):
        if self.fail:
            raise self.fail
        self.activations += 1

    def _infer_impl(self, batch):
        time.sleep(self.delay_ms / 1e3)
        out = np.stack([np.stack([x[0], x[1]]) for x in batch])  # two classes: channel 0 vs channel 1
        if self.flip:
            n = int(self.flip * out.shape[2])
            out[:, :, :n] = out[:, ::-1, :n]
        return out


def test_select_engine_picks_the_fastest_that_meets_parity():
    x = [np.random.default_rng(i).standard_normal((1, 3, H, W)).astype(np.float32) for i in range(2)]
    cands = [
        _Fake("slow-fp32", delay_ms=30),
        _Fake("fast-but-wrong", delay_ms=1, flip=0.5, precision="fp16"),
        _Fake("fast-fp16", delay_ms=6, precision="fp16"),
        _Fake("batched", delay_ms=40, batch=4),  # 10 ms per image
        _Fake("no-gpu", fail=BackendUnavailable("no GPU here")),
        _Fake("other-size", size=(128, 256)),
    ]
    sel = select_engine(cands, inputs=x, reference=_Fake("reference"), runs=3, warmup=1)
    assert sel.winner.name == "fast-fp16"
    assert "fast-fp16" in sel.reason and "faster than batched" in sel.reason and "99.9%" in sel.reason
    by = {c.name: c for c in sel.candidates}
    assert by["fast-but-wrong"].note.startswith("parity: verification: pixel agreement") and not by["fast-but-wrong"].passed
    assert by["no-gpu"].note == "unavailable: no GPU here" and not by["no-gpu"].available
    assert "takes 128×256 inputs" in by["other-size"].note
    assert by["batched"].batch == 4 and 5 < by["batched"].ms_per_image < by["slow-fp32"].ms_per_image
    assert all(not c.is_active for c in cands)
    assert json.loads(json.dumps(sel.to_dict()))["chosen"] == "fast-fp16"


def test_select_engine_says_when_nothing_qualifies():
    x = [np.zeros((1, 3, H, W), np.float32)]
    with pytest.raises(IcnetDeployError, match="no candidate engine can run here: gone: unavailable: missing"):
        select_engine([_Fake("gone", fail=ArtifactError("missing"))], inputs=x, reference=_Fake("ref"))
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((1, 3, H, W)).astype(np.float32)]
    with pytest.raises(IcnetDeployError, match="no candidate engine meets parity here: bad: parity"):
        select_engine([_Fake("bad", flip=0.5)], inputs=x, reference=_Fake("ref"))


def test_engine_candidates_lists_artifacts_with_manifests(bare_engine):
    (bare_engine.parent / "notes.txt").write_text("not an engine")
    assert engine_candidates(bare_engine.parent) == ["eager", str(bare_engine)]
    assert engine_candidates(bare_engine.parent / "missing", device="cuda") == ["eager", "eager-fp16"]


# -- slow: the compile path on CPU ---------------------------------------------------------
@pytest.fixture(scope="session")
def cpu_engine(tmp_path_factory, small_checkpoint) -> Path:
    engine = tmp_path_factory.mktemp("compiled") / "icnet_compiled.torch"
    compile_engine(small_checkpoint, engine, precision="fp32", height=H, width=W, device="cpu", threads=1)
    return engine


@pytest.mark.slow
def test_build_writes_engine_cache_and_manifest(cpu_engine, small_checkpoint):
    m = read_manifest(cpu_engine)
    d = m.details
    assert (m.format, m.precision, m.input_shape, d["compile_mode"]) == ("torch", "fp32", [1, 3, H, W], "default")
    assert d["build_parity"]["passed"] and d["build_parity"]["agreement_pct"] >= 99.99
    assert d["cache_bytes"] > 0 and d["cache_artifacts"].get("inductor", 0) >= 1 and d["kernels"] > 0
    data, kernels = read_engine_file(cpu_engine)
    assert len(data) == d["cache_bytes"] and len(kernels) == d["kernels"]
    assert all(name.endswith(".so") for name in kernels)


@pytest.mark.slow
def test_compiled_runner_matches_eager(cpu_engine, small_checkpoint):
    x = _inputs(count=1)
    with load(cpu_engine, threads=1) as runner:
        out = runner.infer(x)
        assert runner.startup["compile_s"] >= 0 and runner.startup["cache"]["status"] == "loaded"
        with pytest.raises(IcnetDeployError, match="takes 64×128 inputs"):
            runner.infer(_inputs(128, 256, count=1))
    ref = _eager(small_checkpoint, x)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9999
    assert np.abs(out - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max() / 100)


@pytest.mark.slow
def test_labels_path_runs_the_compiled_graph(cpu_engine, small_checkpoint):
    """``infer_for_labels`` gives the compiled 1/4-resolution logits, and ``infer`` is exactly their upsample:
    one compiled graph for both (before, the labels path fell through to the eager model)."""
    from icnet_deploy.model.icnet import upsample_logits
    from icnet_deploy.upsample import labels_of

    x = _inputs(count=1)
    with load(cpu_engine, threads=1) as runner:
        coarse = runner.infer_for_labels(x)
        full = runner.infer(x)
        labels = runner.predict_labels(x)
    assert coarse.shape == (1, 19, H // 4, W // 4) and full.shape == (1, 19, H, W)
    np.testing.assert_array_equal(upsample_logits(torch.from_numpy(coarse), (H, W)).numpy(), full)
    np.testing.assert_array_equal(labels, labels_of(full))
    ref = _eager(small_checkpoint, x)
    assert (labels == labels_of(ref)).mean() >= 0.9999


@pytest.mark.slow
def test_cached_start_in_a_fresh_cache_dir(cpu_engine, tmp_path):
    """A new process with an empty Inductor cache compiles from the engine's artefacts, not from scratch,
    also with another thread count than the build's (the C++ kernels read it at run time)."""
    script = (
        "import json, sys; from icnet_deploy.backends.loader import load\n"
        "r = load(sys.argv[1], threads=2)\n"
        "with r: print(json.dumps(r.startup))\n"
    )
    env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(cpu_engine)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    startup = json.loads(done.stdout.strip().splitlines()[-1])
    assert startup["fx_graph_cache"] == "hit"
    assert startup["cache"]["kernels_installed"] == read_manifest(cpu_engine).details["kernels"]
    assert startup["cache_dir"] == str(tmp_path / "inductor")


@pytest.mark.slow
def test_a_copied_engine_with_edited_manifest_is_refused(cpu_engine, tmp_path):
    for field, value, message in (("torch", "2.11.0", "compiled with torch 2.11.0 but this is torch"),
                                  ("device_name", "NVIDIA H200",
                                   "compiled for 'NVIDIA H200' but this machine's cpu is")):
        copy = tmp_path / field / cpu_engine.name
        copy.parent.mkdir()
        shutil.copy(cpu_engine, copy)
        shutil.copy(manifest_path(cpu_engine), manifest_path(copy))
        _edit_manifest(copy, **{field: value})
        with pytest.raises(ArtifactError, match=message):
            load(copy).activate()


@pytest.mark.slow
def test_select_engine_with_a_compiled_engine(cpu_engine):
    sel = select_engine(["eager", str(cpu_engine)], threads=1, images=1, runs=3, warmup=1)
    names = {c.spec: c for c in sel.candidates}
    assert names[str(cpu_engine)].passed and names["eager"].passed
    assert names["eager"].agreement_pct == 100.0
    assert sel.spec in names and sel.size == [H, W]


# -- GPU -------------------------------------------------------------------------------------
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("batch", [1, 2])
def test_gpu_fp16_reduce_overhead(tmp_path, small_checkpoint, batch):
    # Random weights: fp16 flips ~0.15% of pixels (logits in the hundreds, close runner-ups; measured
    # with CPU half precision), so the 99.9% gate meant for trained checkpoints is relaxed here.
    # benchmarks/gpu_compiled.py reports the agreement on the shipped checkpoint.
    engine = tmp_path / "icnet_fp16.torch"
    m = compile_engine(small_checkpoint, engine, precision="fp16", mode="reduce-overhead", batch=batch,
                       height=128, width=256, device="cuda", min_agreement=99.0)
    d = m.details
    assert (d["device"], d["device_name"], d["cuda"]) == ("cuda", torch.cuda.get_device_name(), torch.version.cuda)
    assert d["build_parity"]["agreement_pct"] >= 99.0
    x = np.concatenate([_inputs(128, 256, count=2)] * batch)[:batch]
    y = np.concatenate([_inputs(128, 256, count=2)[::-1]] * batch)[:batch]
    with load(engine) as runner:  # x, then other images, then x again
        first, second, again = runner.infer(x), runner.infer(y), runner.infer(x)
    # Judged after all three calls against eager on each call's own input: outputs that a later
    # CUDA-graph replay overwrote, or a replay that returned the previous call's outputs, fail here.
    for out, inputs in ((first, x), (second, y)):
        assert (out.argmax(1) == _eager(small_checkpoint, inputs).argmax(1)).mean() >= 0.99
    np.testing.assert_allclose(again, first, atol=1e-3)


@pytest.mark.gpu
@needs_cuda
def test_gpu_engine_refused_on_another_gpu(tmp_path, small_checkpoint):
    engine = tmp_path / "icnet_fp16.torch"
    compile_engine(small_checkpoint, engine, precision="fp16", height=128, width=256, device="cuda", verify=False)
    _edit_manifest(engine, device_name="NVIDIA A100-SXM4-80GB")
    with pytest.raises(ArtifactError, match="compiled for 'NVIDIA A100-SXM4-80GB' but this machine's cuda is"):
        load(engine).activate()


@pytest.mark.slow
def test_cli_infer_engine_auto_says_what_it_picked(cpu_engine, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from icnet_deploy.cli import app

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(verification_images(1, H, W)[0][2]).save(images / "scene.png")
    result = CliRunner().invoke(app, ["infer", str(images), "--engine", "auto", "--engines-dir", str(cpu_engine.parent),
                                      "-o", str(tmp_path / "out"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "--engine auto picked" in result.output and "fastest of 2 engine(s)" in result.output
    assert (tmp_path / "out" / "scene_labelTrainIds.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "torch", "--int8"], "give exactly one of --fp16 or --fp32"),
        (["--backend", "torch"], "give exactly one of --fp16 or --fp32"),
        (["--fp32"], "are for --backend torch"),
        (["--fp16", "--compile", "default"], "are for --backend torch"),
    ],
)
def test_cli_build_engine_torch_usage_errors(small_checkpoint, tmp_path, args, message):
    from typer.testing import CliRunner

    from icnet_deploy.cli import app

    result = CliRunner().invoke(app, ["build-engine", str(small_checkpoint), "-o", str(tmp_path / "e.torch"), *args])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow
def test_cli_build_engine_backend_torch(cpu_engine, small_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from icnet_deploy.cli import app

    out = tmp_path / "cli.torch"
    result = CliRunner().invoke(app, ["build-engine", str(small_checkpoint), "--backend", "torch", "--fp32", "--size",
                                      f"{H}x{W}", "--device", "cpu", "--threads", "1", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    m = read_manifest(out)
    assert (m.format, m.precision, m.input_shape) == ("torch", "fp32", [1, 3, H, W])
    assert m.details["compile_mode"] == "default" and f"wrote {out}" in result.output
