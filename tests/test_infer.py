"""`icnet-deploy infer` and ``infer_images``: good and bad files, sizes, mirrored tree, no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from icnet_deploy.backends import load
from icnet_deploy.cli import app
from icnet_deploy.labels import train_ids_to_label_ids
from icnet_deploy.errors import IcnetDeployError
from icnet_deploy.data.transforms import to_labels
from icnet_deploy.infer import SUFFIXES, infer_images

cli = CliRunner()
BAD = ("corrupt.png", "truncated.jpg", "empty.jpg", "text.png")
# displayed (height, width) of every good file; exif.jpg is stored 60×100 with orientation 6 (rotate 90°)
GOOD = {
    "good.jpg": (96, 160), "sub/odd.png": (65, 131), "gray.png": (70, 90), "rgba.png": (80, 100),
    "sub/deep16.png": (72, 100), "b.bmp": (64, 64), "w.webp": (64, 80), "t.tiff": (66, 70), "sub/exif.jpg": (60, 100),
}


def make_inputs(root: Path) -> Path:
    """A folder of good images in every format and mode, and four bad files."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def rgb(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    Image.fromarray(rgb(96, 160)).save(root / "good.jpg")
    Image.fromarray(rgb(65, 131)).save(root / "sub" / "odd.png")
    Image.fromarray(rgb(70, 90)[:, :, 0]).save(root / "gray.png")
    Image.fromarray(np.dstack([rgb(80, 100), np.full((80, 100), 128, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (72, 100)).astype(np.uint16)).save(root / "sub" / "deep16.png")
    Image.fromarray(rgb(64, 64)).save(root / "b.bmp")
    Image.fromarray(rgb(64, 80)).save(root / "w.webp")
    Image.fromarray(rgb(66, 70)).save(root / "t.tiff")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise on display
    Image.fromarray(rgb(100, 60)).save(root / "sub" / "exif.jpg", exif=exif)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    good = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not an image\n")
    (root / "notes.txt").write_text("not an image suffix: ignored\n")
    return root


def outputs_of(out: Path, rel: str) -> dict[str, Path]:
    stem = Path(rel).with_suffix("")
    return {k: out / f"{stem}{s}" for k, s in SUFFIXES.items()}


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture()
def inputs(tmp_path) -> Path:
    return make_inputs(tmp_path / "in")


def test_cli_folder_with_good_and_bad_files(inputs, tmp_path, small_onnx):
    out = tmp_path / "out"
    before = _all_files(inputs)
    result = cli.invoke(app, ["infer", str(inputs), "--engine", str(small_onnx), "-o", str(out), "--threads", "1"])
    assert result.exit_code == 2, result.output
    assert "4 of 13 input files could not be read" in result.output
    for name in BAD:
        assert name in result.output
        assert not any(p.name.startswith(Path(name).stem + "_") for p in out.rglob("*")), name
    for rel, (h, w) in GOOD.items():
        files = outputs_of(out, rel)
        train = np.asarray(Image.open(files["train_ids"]))
        assert train.shape == (h, w) and train.dtype == np.uint8, rel
        assert train.max() < 19
        assert (np.asarray(Image.open(files["label_ids"])) == train_ids_to_label_ids(train)).all()
        assert Image.open(files["color"]).size == (w, h) and Image.open(files["color"]).mode == "RGB"
        assert Image.open(files["overlay"]).size == (w, h)
    assert len(_all_files(out)) == 4 * len(GOOD)  # nothing else: no temp files, nothing for the bad ones
    assert _all_files(inputs) == before  # the input folder is untouched


def test_library_report_and_dynamic_engine_at_native_size(inputs, tmp_path, small_checkpoint):
    out = tmp_path / "out"
    with load(small_checkpoint, threads=1) as runner:
        report = infer_images(runner, inputs, out, batch=2, overlay=False, readers=2, writers=2)
    assert not report.passed and report.total == 13 and report.written == len(GOOD)
    assert sorted(Path(f["path"]).name for f in report.failures) == sorted(BAD)
    assert all(f["error"] for f in report.failures)
    # eager is dynamic: each image ran at its own size, except exif.jpg (60 high: raised to the minimum 64)
    assert report.resize == {"none": len(GOOD) - 1, "logits-bilinear": 1}
    assert [65, 131] in report.engine_sizes
    assert not list(out.rglob("*_overlay.jpg"))
    data = report.to_dict()
    assert data["images_per_s"] > 0 and 0 <= data["engine_busy_pct"] <= 100


def test_static_engine_maps_back_bilinearly(inputs, tmp_path, small_onnx):
    with load(small_onnx, threads=1) as runner:
        report = infer_images(runner, inputs / "sub", tmp_path / "out")
    assert report.passed and report.engine_sizes == [[128, 256]]
    assert report.resize == {"logits-bilinear": 3}


def test_onnxruntime_threads_do_not_spin_during_infer(inputs, tmp_path, small_onnx):
    """infer's decode/encode threads share the cores with the engine: ORT must not busy-wait."""
    runner = load(small_onnx, threads=1)
    assert runner.spinning  # ONNX Runtime's own default elsewhere
    report = infer_images(runner, inputs / "sub", tmp_path / "out")
    assert report.passed and runner.spinning is False and not runner.is_active


def test_to_labels_methods():
    import torch

    logits = np.random.default_rng(0).standard_normal((19, 32, 64)).astype(np.float32)
    labels, method = to_labels(logits, "logits", (32, 64))
    assert method == "none" and (labels == logits.argmax(0)).all() and labels.dtype == np.uint8
    labels, method = to_labels(logits, "logits", (50, 70))
    up = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=(50, 70), mode="bilinear",
                                         align_corners=False)[0].argmax(0).numpy()
    assert method == "logits-bilinear" and (labels == up).all()
    # 1/4-resolution logits from an engine that ran at the image's size: same labels, method "none"
    labels, method = to_labels(logits, "logits", (128, 256), ran_at=(128, 256))
    assert method == "none" and labels.shape == (128, 256)
    ids = logits.argmax(0).astype(np.uint8)
    labels, method = to_labels(ids, "labels", (64, 128))
    assert method == "labels-nearest" and (labels[::2, ::2] == ids).all()


def test_output_inside_input_is_refused_unless_allowed(inputs, small_checkpoint):
    result = cli.invoke(app, ["infer", str(inputs / "sub"), "--engine", str(small_checkpoint), "-o", str(inputs / "sub" / "out")])
    assert result.exit_code == 2 and "inside the input folder" in result.output
    result = cli.invoke(app, ["infer", str(inputs / "sub"), "--engine", str(small_checkpoint), "-o", str(inputs / "sub"),
                              "--threads", "1"])
    assert result.exit_code == 2
    with load(small_checkpoint, threads=1) as runner:
        first = infer_images(runner, inputs / "sub", inputs / "sub" / "seg", allow_inside=True)
        second = infer_images(runner, inputs / "sub", inputs / "sub" / "seg", allow_inside=True)
    assert first.total == second.total == 3  # its own outputs are never read back as inputs


def test_glob_single_file_and_duplicate_stems(tmp_path, small_checkpoint):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(src / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)).save(src / "b.png")
    out = tmp_path / "out"
    result = cli.invoke(app, ["infer", str(src / "*.png"), "--engine", str(small_checkpoint), "-o", str(out / "glob"),
                              "--no-overlay", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert _all_files(out / "glob") == ["b_color.png", "b_labelIds.png", "b_labelTrainIds.png"]
    result = cli.invoke(app, ["infer", str(src / "b.jpg"), "--engine", str(small_checkpoint), "-o", str(out / "one"),
                              "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert Image.open(out / "one" / "b_labelTrainIds.png").size == (96, 64)
    with load(small_checkpoint, threads=1) as runner:
        infer_images(runner, src, out / "both", overlay=False)
    assert Image.open(out / "both" / "b_jpg_labelTrainIds.png").size == (96, 64)
    assert Image.open(out / "both" / "b_png_labelTrainIds.png").size == (64, 70)


def test_a_failed_write_leaves_no_partial_output(tmp_path, small_checkpoint):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(src / "a.png")
    out = tmp_path / "out"
    (out / "a_color.png").mkdir(parents=True)  # the third file cannot be renamed into place
    with load(small_checkpoint, threads=1) as runner:
        report = infer_images(runner, src, out)
    assert report.written == 0 and len(report.failures) == 1
    assert _all_files(out) == []


def test_bad_arguments(tmp_path, small_checkpoint):
    with load(small_checkpoint) as runner:
        with pytest.raises(IcnetDeployError, match="no such file"):
            infer_images(runner, tmp_path / "nope", tmp_path / "out")
        with pytest.raises(IcnetDeployError, match="batch"):
            infer_images(runner, tmp_path, tmp_path / "out", batch=0)


def test_dynamic_labels_engine(inputs, tmp_path, small_labels_onnx):
    """A dynamic ONNX engine with ArgMax in the graph: native sizes, labels out, no logits to resize."""
    with load(small_labels_onnx, threads=1) as runner:
        assert runner.output_kind == "labels" and runner.input_height is None and runner.batch_size is None
        report = infer_images(runner, inputs / "sub", tmp_path / "out", batch=2)
    assert report.passed and report.written == 3
    assert report.resize == {"none": 2, "labels-nearest": 1}  # exif.jpg (60 high) ran at the minimum 64
    assert Image.open(tmp_path / "out" / "exif_labelTrainIds.png").size == (100, 60)
