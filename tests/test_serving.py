"""Serving: the inference callable, Triton model repositories, and — in a venv without torch, made
here with the package's cpu and serve extras — `infer`, `bench` and a real `icnet-deploy serve`
answering tritonclient over HTTP and gRPC with `infer`'s labels, byte for byte.

PyTriton 0.7 needs numpy < 2 and the dev environment has numpy 2, so the server always runs from
that runtime venv (which is also the proof that the runtime needs no torch). Building it takes
pip (PyPI, or the machine's wheel cache) about a minute; without pip access the venv tests skip
(in CI they fail).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icnet_deploy.errors import DataError, IcnetDeployError

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "src" / "icnet_deploy" / "assets" / "photos"
SCENE_SIZE = (96, 160)


# --------------------------------------------------------------------------------------------
# inputs and infer's reference labels
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images_dir(tmp_path_factory) -> Path:
    """Three photographs of different sizes (one JPEG), three generated scenes of one size, one broken file."""
    from icnet_deploy.data.synthetic import generate_scene

    folder = tmp_path_factory.mktemp("serve_inputs")
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(PHOTOS / name, folder / name)
    for k in range(3):
        Image.fromarray(generate_scene(980_000 + k, *SCENE_SIZE)[0]).save(folder / f"scene_{k}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def read(folder: Path, name: str) -> np.ndarray:
    from icnet_deploy.data.folders import read_rgb

    return read_rgb(folder / name)


def reference_labels(engine, images_dir: Path, out: Path) -> dict[str, np.ndarray]:
    """`infer`'s train ids per input stem (the single-process pipeline, this environment)."""
    from icnet_deploy import load
    from icnet_deploy.infer import infer_images

    report = infer_images(load(engine), images_dir, out, overlay=False)
    assert [Path(f["path"]).name for f in report.failures] == ["broken.png"]
    return {p.name[: -len("_labelTrainIds.png")]: np.asarray(Image.open(p)) for p in out.glob("*_labelTrainIds.png")}


def free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --------------------------------------------------------------------------------------------
# the inference callable and the model repository, in this environment
# --------------------------------------------------------------------------------------------
class FakeRequest(dict):
    """What PyTriton hands the callable: inputs by name, and the outputs the client asked for."""

    def __init__(self, image: np.ndarray, wanted=None):
        super().__init__(image=image)
        self.requested_output_names = wanted


def test_label_model_gives_infer_labels_for_eager_and_a_dynamic_labels_engine(images_dir, tmp_path, small_labels_onnx):
    from icnet_deploy import load
    from icnet_deploy.serve.triton import LabelModel

    scenes = np.stack([read(images_dir, f"scene_{k}.png") for k in range(3)])
    for engine in (None, small_labels_onnx):  # the shipped checkpoint eager; a dynamic-size engine with ArgMax inside
        want = reference_labels(engine, images_dir, tmp_path / f"ref_{engine is None}")
        with load(engine) as runner:
            model = LabelModel(runner, max_batch=2)
            responses = model([FakeRequest(scenes), FakeRequest(read(images_dir, "rocket.jpg")[None])])
        assert [r["labels"].shape for r in responses] == [(3, *SCENE_SIZE), (1, *read(images_dir, "rocket.jpg").shape[:2])]
        for k in range(3):
            np.testing.assert_array_equal(responses[0]["labels"][k], want[f"scene_{k}"])
        np.testing.assert_array_equal(responses[1]["labels"][0], want["rocket"])


def test_label_model_logits_only_when_asked_and_bad_requests(shipped_onnx_small, small_labels_onnx):
    from icnet_deploy import load
    from icnet_deploy.serve.triton import LabelModel

    image = np.zeros((1, 40, 50, 3), np.uint8)
    with load(shipped_onnx_small) as runner:
        model = LabelModel(runner, logits=True, max_pixels=10_000, min_side=16)
        both, labels_only = model([FakeRequest(image), FakeRequest(image, wanted=["labels"])])
        assert both["logits"].shape == (1, 19, 128, 256) and both["logits"].dtype == np.float32
        assert "logits" not in labels_only and labels_only["labels"].shape == (1, 40, 50)
        for bad, match in ((np.zeros((1, 8, 50, 3), np.uint8), "below the minimum 16×16"),
                           (np.zeros((1, 200, 200, 3), np.uint8), "over the limit of 10000"),
                           (np.zeros((1, 40, 50, 3), np.float32), "must be uint8"),
                           (np.zeros((40, 50, 3), np.uint8), "must be uint8"),
                           (np.zeros((0, 40, 50, 3), np.uint8), "no image")):
            with pytest.raises(DataError, match=match):
                model([FakeRequest(image), FakeRequest(bad)])
    with load(small_labels_onnx) as runner, pytest.raises(IcnetDeployError, match="cannot serve logits"):
        LabelModel(runner, logits=True)


def _parse_configs(folder: Path) -> dict:
    pytest.importorskip("tritonclient.grpc", reason="tritonclient (dev extra) has Triton's model-config schema")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return {p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
            for p in folder.glob("*/config.pbtxt")}


def kind_name(group) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind)


def test_export_triton_static_engine(shipped_onnx_small, tmp_path):
    import onnxruntime as ort

    from icnet_deploy.manifest import read_manifest
    from icnet_deploy.serve.repository import RepositoryOptions, export_repository

    out = tmp_path / "repo"
    result = export_repository(shipped_onnx_small, out, RepositoryOptions(instances=2))
    configs = _parse_configs(out)
    assert set(configs) == {"icnet", "icnet_preprocess", "icnet_engine", "icnet_postprocess"}
    engine, ensemble = configs["icnet_engine"], configs["icnet"]
    assert engine.platform == "onnxruntime_onnx" and engine.max_batch_size == 0  # a static batch of 1: full shapes
    assert list(engine.input[0].dims) == [1, 3, 128, 256] and engine.input[0].name == "image"
    assert list(engine.output[0].dims) == [1, 19, -1, -1] and engine.output[0].label_filename == "labels.txt"
    assert not engine.HasField("dynamic_batching")
    assert [(g.count, kind_name(g)) for g in engine.instance_group] == [(2, "KIND_CPU")]
    assert ensemble.platform == "ensemble" and [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "icnet_preprocess", "icnet_engine", "icnet_postprocess"]
    assert configs["icnet_preprocess"].backend == "python" and list(ensemble.output[0].dims) == [-1, -1]
    assert (out / "icnet_engine" / "labels.txt").read_text().split("\n")[:19] == read_manifest(shipped_onnx_small).class_names
    assert "PreprocessModel as TritonPythonModel" in (out / "icnet_preprocess" / "1" / "model.py").read_text()
    assert result["engine_output"]["coarse_logits"]  # the engine up to the logits before the final upsample
    coarse = ort.InferenceSession(str(out / "icnet_engine" / "1" / "model.onnx"))
    assert coarse.get_outputs()[0].name == engine.output[0].name
    assert coarse.run(None, {"image": np.zeros((1, 3, 128, 256), np.float32)})[0].shape == (1, 19, 32, 64)
    with pytest.raises(IcnetDeployError, match="not empty"):
        export_repository(shipped_onnx_small, out)
    export_repository(shipped_onnx_small, out, overwrite=True)


def test_export_triton_dynamic_engine_batches(small_labels_onnx, tmp_path):
    from icnet_deploy.serve.repository import RepositoryOptions, export_repository

    export_repository(small_labels_onnx, tmp_path / "repo", RepositoryOptions(max_batch=4, queue_delay_us=500, kind="gpu"))
    configs = _parse_configs(tmp_path / "repo")
    engine = configs["icnet_engine"]
    assert engine.max_batch_size == 4 and engine.dynamic_batching.max_queue_delay_microseconds == 500
    assert list(engine.input[0].dims) == [3, -1, -1] and not engine.output[0].label_filename  # labels: no class file
    assert kind_name(engine.instance_group[0]) == "KIND_GPU"  # as asked
    assert all(c.max_batch_size == 4 for c in configs.values())
    assert kind_name(configs["icnet_preprocess"].instance_group[0]) == "KIND_CPU"  # the Python models stay on the CPU


def test_python_models_pre_and_post_processing_give_infer_labels(shipped_int8_small, images_dir, tmp_path):
    """What the repository's Python models compute around the engine, with the engine run as Triton would."""
    from icnet_deploy.backends.onnxruntime import create_session
    from icnet_deploy.serve.python_models import EngineContract, postprocess_request, preprocess_request
    from icnet_deploy.serve.repository import export_repository

    want = reference_labels(shipped_int8_small, images_dir, tmp_path / "ref")
    export_repository(shipped_int8_small, tmp_path / "repo")
    contract = EngineContract.from_file(tmp_path / "repo" / "icnet_preprocess" / "1" / "engine.json")
    session = create_session(tmp_path / "repo" / "icnet_engine" / "1" / "model.onnx")
    for name in ("chelsea.png", "rocket.jpg", "scene_1.png"):
        x, size = preprocess_request(contract, read(images_dir, name), batched=False)
        labels = postprocess_request(contract, session.run(None, {"image": x})[0], size, batched=False)
        np.testing.assert_array_equal(labels, want[Path(name).stem])


# --------------------------------------------------------------------------------------------
# a venv without torch: infer, bench and serve
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    """A fresh venv with `pip install icnet-deploy[cpu,serve]` from this checkout's sources: no torch."""
    folder = tmp_path_factory.mktemp("runtime")
    source = folder / "src_copy"
    for name in ("src", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          f"{source}[cpu,serve]"], capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        message = f"could not install icnet-deploy[cpu,serve] into a fresh venv: {pip.stderr.strip()[-600:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return venv


def run_rt(venv: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "icnet-deploy"), *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_runtime_without_torch_runs_infer_bench_and_load(runtime_venv, shipped_onnx_small, images_dir, tmp_path):
    python = str(runtime_venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    want = reference_labels(shipped_onnx_small, images_dir, tmp_path / "ref")

    done = run_rt(runtime_venv, "infer", images_dir, "-e", shipped_onnx_small, "-o", tmp_path / "rt", "--no-overlay", "--json")
    assert done.returncode == 2, done.stderr  # the broken file, named; the rest written
    assert "broken.png" in done.stderr and json.loads(done.stdout)["written"] == 6
    for stem, labels in want.items():
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "rt" / f"{stem}_labelTrainIds.png")), labels)

    api = subprocess.run([python, "-c", (
        "import sys, numpy as np, icnet_deploy\n"
        "with icnet_deploy.load(sys.argv[1]) as r:\n"
        "    print(r.predict([np.zeros((70, 90, 3), np.uint8)])[0].shape)\n"
        "print('torch' in sys.modules)"), str(shipped_onnx_small)], capture_output=True, text=True)
    assert api.returncode == 0 and api.stdout.split() == ["(70,", "90)", "False"], api.stderr

    bench = run_rt(runtime_venv, "bench", "-e", shipped_onnx_small, "--iters", "2", "--warmup", "1", "--no-memory", "--json")
    assert bench.returncode == 0, bench.stderr
    assert [e["name"] for e in json.loads(bench.stdout)["engines"]] == [shipped_onnx_small.name]  # no eager without torch

    eager = run_rt(runtime_venv, "infer", images_dir, "-o", tmp_path / "eager")
    assert eager.returncode == 2 and "needs PyTorch" in eager.stderr and "icnet-deploy[torch]" in eager.stderr


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_serve_answers_http_and_grpc_with_infer_labels(which, runtime_venv, shipped_onnx_small, shipped_int8_small,
                                                       images_dir, tmp_path):
    from icnet_deploy.serve.client import connect, request_labels, wait_until_ready

    tritonclient_utils = pytest.importorskip("tritonclient.utils", reason="tritonclient (dev extra) is the client")
    engine = shipped_onnx_small if which == "fp32" else shipped_int8_small
    want = reference_labels(engine, images_dir, tmp_path / "ref")
    http, grpc, metrics = free_ports(3)
    server = subprocess.Popen([str(runtime_venv / "bin" / "icnet-deploy"), "serve", str(engine), "--address", "127.0.0.1",
                               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
                               "--max-batch", "4", "--max-pixels", "400000", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_ready(f"127.0.0.1:{http}", process=server, timeout_s=120)
        ready = json.loads(server.stdout.readline())  # the one JSON line, once the model answers
        assert ready["model"] == "icnet" and ready["engine"]["precision"] == which
        clients = {"http": connect(f"127.0.0.1:{http}", "http"), "grpc": connect(f"127.0.0.1:{grpc}", "grpc")}
        scenes = np.stack([read(images_dir, f"scene_{k}.png") for k in range(3)])
        for protocol, client in clients.items():
            for name in ("chelsea.png", "rocket.jpg"):  # single images of their own sizes
                got = request_labels(client, read(images_dir, name), protocol=protocol)["labels"]
                np.testing.assert_array_equal(got[0], want[Path(name).stem])
            batched = request_labels(client, scenes, protocol=protocol)["labels"]  # one request, three images
            for k in range(3):
                np.testing.assert_array_equal(batched[k], want[f"scene_{k}"])

        names = ["chelsea.png", "coffee.png", "rocket.jpg", "scene_0.png", "scene_1.png", "scene_2.png"] * 2

        def one(k: int) -> None:  # four concurrent clients, each its own connection
            protocol = "http" if k % 2 else "grpc"
            client = connect(f"127.0.0.1:{http if protocol == 'http' else grpc}", protocol)
            for name in names[k::4]:
                got = request_labels(client, read(images_dir, name), protocol=protocol)["labels"][0]
                np.testing.assert_array_equal(got, want[Path(name).stem])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(4)))

        http_module = pytest.importorskip("tritonclient.http")
        bad_requests = [(np.zeros((1, 4, 4, 3), np.uint8), "below the minimum"),
                        (np.zeros((1, 700, 700, 3), np.uint8), "over the limit"),
                        (np.zeros((1, 40, 40, 3), np.float32), "UINT8"),
                        (np.zeros((1, 40, 40), np.uint8), "shape")]
        for array, match in bad_requests:
            tensor = http_module.InferInput("image", list(array.shape), tritonclient_utils.np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            with pytest.raises(tritonclient_utils.InferenceServerException, match=match):
                clients["http"].infer("icnet", [tensor])
        assert server.poll() is None  # still serving after the bad requests
        np.testing.assert_array_equal(request_labels(clients["grpc"], read(images_dir, "coffee.png"),
                                                     protocol="grpc")["labels"][0], want["coffee"])
        assert clients["http"].is_server_live() and clients["http"].is_model_ready("icnet")

        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=10)
        assert code == 0 and time.monotonic() - start < 10
        assert "refused: request 0: a 4×4 image is below the minimum" in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_exported_python_models_run_in_a_real_tritonserver(runtime_venv, shipped_int8_small, images_dir, tmp_path):
    """The repository's pre/post-processing models, loaded by the `tritonserver` binary PyTriton ships
    (its build has the Python backend but no ONNX Runtime backend, so the engine step runs here, on
    the repository's model.onnx, between the two requests): labels equal `infer`'s."""
    import sysconfig

    from icnet_deploy.backends.onnxruntime import create_session
    from icnet_deploy.serve.client import connect, wait_until_ready
    from icnet_deploy.serve.repository import export_repository

    http_module = pytest.importorskip("tritonclient.http", reason="tritonclient (dev extra) is the client")
    want = reference_labels(shipped_int8_small, images_dir, tmp_path / "ref")
    export_repository(shipped_int8_small, tmp_path / "repo")
    site = next((runtime_venv / "lib").glob("python3*/site-packages"))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    server_dir = tmp_path / "tritonserver"  # as PyTriton lays it out: the binaries, and the stub for this Python
    shutil.copytree(site / "pytriton" / "tritonserver", server_dir, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(site / "pytriton" / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
                server_dir / "backends" / "python")
    http, grpc, metrics = free_ports(3)
    env = {**os.environ, "PATH": f"{runtime_venv / 'bin'}:{os.environ['PATH']}",
           "LD_LIBRARY_PATH": f"{sysconfig.get_config_var('LIBDIR')}:{site / 'nvidia_pytriton.libs'}"}
    server = subprocess.Popen([str(server_dir / "bin" / "tritonserver"), "--model-repository", str(tmp_path / "repo"),
                               "--backend-directory", str(server_dir / "backends"), "--model-control-mode", "explicit",
                               "--load-model", "icnet_preprocess", "--load-model", "icnet_postprocess",
                               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
                               "--exit-timeout-secs", "5"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"127.0.0.1:{http}", model="icnet_postprocess", process=server, timeout_s=120)
        client = connect(f"127.0.0.1:{http}", "http")
        assert client.is_model_ready("icnet_preprocess")
        session = create_session(tmp_path / "repo" / "icnet_engine" / "1" / "model.onnx")

        def call(model: str, **arrays: np.ndarray):
            tensors = []
            for name, array in arrays.items():
                dtype = {np.uint8: "UINT8", np.float32: "FP32", np.int32: "INT32"}[array.dtype.type]
                tensors.append(http_module.InferInput(name, list(array.shape), dtype))
                tensors[-1].set_data_from_numpy(array)
            return client.infer(model, tensors)

        for name in ("chelsea.png", "rocket.jpg", "scene_2.png"):
            pre = call("icnet_preprocess", image=read(images_dir, name))
            x, size = pre.as_numpy("input"), pre.as_numpy("image_size")
            assert x.shape == (1, 3, 128, 256) and list(size) == list(read(images_dir, name).shape[:2])
            post = call("icnet_postprocess", engine_output=session.run(None, {"image": x})[0], image_size=size)
            np.testing.assert_array_equal(post.as_numpy("labels"), want[Path(name).stem])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
