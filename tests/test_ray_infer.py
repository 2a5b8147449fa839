"""`infer --ray` on a local Ray cluster (2 CPUs): the same files, byte for byte, as the single-process
`infer`, the broken inputs named and exit 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("ray.data", reason="infer --ray needs the ray extra (ray[data]); the dev extra installs it")

from icnet_deploy import load  # noqa: E402
from icnet_deploy.infer import infer_images  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[1] / "src" / "icnet_deploy" / "assets" / "photos"


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_infer_ray_equals_single_process_file_for_file(shipped_onnx_small, tmp_path):
    import subprocess

    from icnet_deploy.data.synthetic import generate_scene

    inputs = tmp_path / "in"
    (inputs / "street").mkdir(parents=True)
    for name in ("chelsea.png", "rocket.jpg"):
        shutil.copy(PHOTOS / name, inputs / name)
    Image.fromarray(generate_scene(990_000, 100, 180)[0]).save(inputs / "street" / "scene.png")
    (inputs / "street" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (inputs / "empty.png").write_bytes(b"")

    single = infer_images(load(shipped_onnx_small), inputs, tmp_path / "single")
    cli = [str(Path(sys.executable).parent / "icnet-deploy"), "infer", str(inputs), "-e", str(shipped_onnx_small),
           "-o", str(tmp_path / "ray"), "--json", "--ray"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                               "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 2, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["written"] == single.written == 3 and report["total"] == 5
    assert sorted(Path(f["path"]).name for f in report["failures"]) == ["broken.jpg", "empty.png"]
    assert [f["error"] for f in report["failures"]] == [f["error"] for f in single.failures]
    assert "broken.jpg" in done.stderr and "2 of 5 input files could not be read" in done.stderr
    assert report["engine"]["ray"]["address"] == "local" and report["engine"]["provider"] == "CPUExecutionProvider"
    assert report["resize"] == single.resize
    ray_files, single_files = files_of(tmp_path / "ray"), files_of(tmp_path / "single")
    assert sorted(ray_files) == sorted(single_files) and len(ray_files) == 12  # four outputs per good image
    assert ray_files == single_files  # byte for byte, overlays included
