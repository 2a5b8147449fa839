"""The runtime without torch, checked in this environment by hiding torch from a fresh interpreter
(``sys.modules["torch"] = None``: imports fail, ``find_spec`` says absent); `test_serving.py` checks a
real venv without it. Also the optional-value command line (`--ray`) and the extras' messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from icnet_deploy.cli.app import prepare_argv
from icnet_deploy.errors import BackendUnavailable, IcnetDeployError
from icnet_deploy.optional import missing_extra_message, require

HIDE_TORCH = "import sys\nsys.modules['torch'] = None\n"


def without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE_TORCH + code, *args], capture_output=True, text=True, timeout=300)


def cli_without_torch(*args: str) -> subprocess.CompletedProcess:
    return without_torch("from icnet_deploy.cli import main\nsys.argv = ['icnet-deploy', *sys.argv[1:]]\nmain()", *args)


def test_load_predict_and_bench_without_torch(small_onnx):
    done = without_torch("import numpy as np, icnet_deploy\n"
                         "with icnet_deploy.load(sys.argv[1]) as r:\n"
                         "    print(r.predict([np.zeros((50, 70, 3), np.uint8)])[0].shape)\n", str(small_onnx))
    assert done.returncode == 0 and done.stdout.strip() == "(50, 70)", done.stderr
    bench = cli_without_torch("bench", "-e", str(small_onnx), "--iters", "1", "--warmup", "0", "--no-memory", "--json")
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert [e["name"] for e in report["engines"]] == [small_onnx.name] and "vs_eager" not in report["engines"][0]


def test_torch_commands_say_which_extra_without_torch(tmp_path):
    done = cli_without_torch("export", "-o", str(tmp_path / "x.onnx"), "--json")
    assert done.returncode == 2 and not (tmp_path / "x.onnx").exists()
    assert "`export` needs PyTorch, which is not installed here: pip install 'icnet-deploy[torch]'" in done.stderr
    assert json.loads(done.stdout)["exit_code"] == 2


def test_bench_without_the_eager_baseline(small_onnx):
    from icnet_deploy.bench import bench

    with pytest.raises(IcnetDeployError, match="eager baseline is not benched"):
        bench([small_onnx], eager=False, baseline="eager")
    with pytest.raises(IcnetDeployError, match="nothing to bench"):
        bench([], eager=False)


def test_optional_value_of_ray_and_extras_messages():
    assert prepare_argv(["infer", "a/", "--ray"]) == ["infer", "a/", "--ray=local"]
    assert prepare_argv(["infer", "a/", "--ray", "--json"]) == ["infer", "a/", "--ray=local", "--json"]
    assert prepare_argv(["infer", "a/", "--ray", "auto", "--quiet"]) == ["--quiet", "infer", "a/", "--ray", "auto"]
    assert missing_extra_message("ray.data", "`infer --ray`") == \
        "`infer --ray` needs Ray (ray[data]), which is not installed here: pip install 'icnet-deploy[ray]'"
    with pytest.raises(BackendUnavailable, match="pip install no_such_framework_here"):
        require("no_such_framework_here.sub", "this test")
