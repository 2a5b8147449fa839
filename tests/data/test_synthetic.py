"""Procedural scenes: deterministic, valid labels, enough classes, Cityscapes layout on disk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from icnet_deploy.labels import IGNORE_ID, NUM_CLASSES, label_ids_to_train_ids
from icnet_deploy.data.synthetic import generate_scene, write_dataset

VALID = set(range(NUM_CLASSES)) | {IGNORE_ID}


def test_same_seed_same_scene_other_seed_other_scene():
    a_img, a_lab = generate_scene(7, 128, 256)
    b_img, b_lab = generate_scene(7, 128, 256)
    c_img, c_lab = generate_scene(8, 128, 256)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize("size", [(128, 256), (64, 64), (96, 300)])
def test_shapes_dtypes_and_label_values(size):
    for seed in range(4):
        img, lab = generate_scene(seed, *size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
        assert lab.shape == size and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) <= VALID


def test_too_small_is_refused():
    with pytest.raises(ValueError):
        generate_scene(0, 32, 64)


def test_class_coverage_and_common_classes():
    counts = np.zeros(256, np.int64)
    per_scene = []
    for seed in range(20):
        _, lab = generate_scene(100 + seed, 256, 512)
        c = np.bincount(lab.ravel(), minlength=256)
        counts += c
        per_scene.append(c[:NUM_CLASSES] > 0)
    present = np.flatnonzero(counts[:NUM_CLASSES])
    assert len(present) >= 15, f"only classes {present.tolist()} appear"
    common = np.mean(per_scene, axis=0)
    for cls in (0, 1, 2, 5, 8, 13):  # road, sidewalk, building, pole, vegetation, car: in most scenes
        assert common[cls] >= 0.7, (cls, common[cls])
    assert (counts[0] / counts.sum()) > 0.15  # road is the largest surface, as in Cityscapes


def test_image_varies_inside_regions_but_labels_are_flat():
    """Texture and noise are on the image only: labels stay exact class ids, images are not flat."""
    img, lab = generate_scene(3, 256, 512)
    road = lab == 0
    assert road.sum() > 1000
    assert img[road].std() > 2.0


def test_write_dataset_layout_and_label_files_agree(tmp_path):
    calls = []
    paths = write_dataset(tmp_path, 2, 41, size=(64, 128), split="val", city="synth", progress=calls.append)
    assert calls == [1, 1]
    assert [p.name for p in paths] == ["synth_000000_000041_leftImg8bit.png", "synth_000000_000042_leftImg8bit.png"]
    for p, seed in zip(paths, (41, 42)):
        assert p.parent == tmp_path / "leftImg8bit" / "val" / "synth"
        gt = tmp_path / "gtFine" / "val" / "synth"
        stem = f"synth_000000_{seed:06d}"
        train = np.asarray(Image.open(gt / f"{stem}_gtFine_labelTrainIds.png"))
        ids = np.asarray(Image.open(gt / f"{stem}_gtFine_labelIds.png"))
        img = np.asarray(Image.open(p))
        exp_img, exp_lab = generate_scene(seed, 64, 128)
        assert np.array_equal(img, exp_img) and np.array_equal(train, exp_lab)
        assert np.array_equal(label_ids_to_train_ids(ids), train)
    leftovers = [q for q in tmp_path.rglob("*") if q.is_file() and not q.name.endswith(".png")]
    assert leftovers == []  # atomic writes leave no temp files


def _class_counts(mix, seeds=range(40), size=(96, 192)):
    """(pixels per class, scenes holding each class) over small scenes."""
    pixels, scenes = np.zeros(256, dtype=np.int64), np.zeros(256, dtype=np.int64)
    for s in seeds:
        _, lab = generate_scene(s, *size, mix=mix)
        assert set(np.unique(lab).tolist()) <= VALID
        b = np.bincount(lab.ravel(), minlength=256)
        pixels += b
        scenes += b > 0
    return pixels, scenes


def test_scene_mix_default_is_the_held_out_generator_and_knobs_add_rare_objects():
    from icnet_deploy.labels import CLASS_NAMES
    from icnet_deploy.data.synthetic import SceneMix

    cid = {n: i for i, n in enumerate(CLASS_NAMES)}
    # the default mix (also when spelled out) is the same scene for the same seed: held-out sets unchanged
    for s in (3, 900000):
        a = generate_scene(s, 96, 192)
        b = generate_scene(s, 96, 192, mix=SceneMix(train=0.1, heavy=1.0, two_wheelers=1.0, trucks=1.0))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    base_px, base_sc = _class_counts(SceneMix())
    train_px, _ = _class_counts(SceneMix(train=1.0))
    _, heavy_sc = _class_counts(SceneMix(heavy=2.5))
    two_px, two_sc = _class_counts(SceneMix(two_wheelers=3.0))
    truck_px, _ = _class_counts(SceneMix(trucks=3.0))
    t, tr, bu, mo, bi = (cid[n] for n in ("train", "truck", "bus", "motorcycle", "bicycle"))
    assert train_px[t] > 2 * base_px[t]
    # 40 scenes: trucks/buses in 28 scene-class pairs by default, 36 with heavy=2.5; two-wheelers 30 → 40
    assert heavy_sc[tr] + heavy_sc[bu] >= base_sc[tr] + base_sc[bu] + 5
    assert two_sc[mo] + two_sc[bi] >= base_sc[mo] + base_sc[bi] + 5
    assert two_px[mo] + two_px[bi] > 1.5 * (base_px[mo] + base_px[bi])
    assert truck_px[tr] > 1.5 * base_px[tr]
    with pytest.raises(ValueError, match="heavy"):
        SceneMix(heavy=3.0)
    with pytest.raises(ValueError, match="trucks"):
        SceneMix(trucks=-1.0)


def test_scene_mix_is_for_training_data_only(tmp_path):
    from typer.testing import CliRunner

    from icnet_deploy.cli import app
    from icnet_deploy.data.synthetic import SceneMix
    from icnet_deploy.errors import DataError

    with pytest.raises(DataError, match="training data only"):
        write_dataset(tmp_path / "v", count=1, seed=0, size=(64, 128), split="val", mix=SceneMix(heavy=2))
    assert not (tmp_path / "v").exists()
    paths = write_dataset(tmp_path / "t", count=1, seed=0, size=(64, 128), split="train", mix=SceneMix(heavy=2))
    assert paths[0].parent.name == "synthmix"  # never overwrites, or passes for, the default scene of a seed
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "c"), "--count", "1", "--size", "64x128",
                                   "--split", "val", "--two-wheelers", "2"])
    assert res.exit_code == 2 and "training data only" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "c"), "--count", "1", "--size", "64x128",
                                   "--split", "train", "--two-wheelers", "2"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "c" / "gtFine" / "train" / "synthmix").glob("*_labelTrainIds.png"))) == 1


# sha256 prefixes of (image bytes, label bytes): the generator's output pinned for a few seeds, sizes and
# mixes. Held-out sets, calibration sets and every score measured on them are these scenes, so a change
# in any random draw or drawing step must show here. (Pinned with numpy 2.4 and Pillow 13; if only a
# library upgrade moves them, re-pin deliberately and say so.)
PINNED_SCENES = [
    (0, (64, 128), {}, "58a8090d67f9c3a3", "f2d08fd3f064f7e4"),
    (7, (96, 192), {}, "cb1f875c29f68662", "989f430d971e9d53"),
    (900000, (128, 256), {}, "813c50f2d9a4749b", "d36e70f15c59af78"),
    (3, (128, 256), {"train": 1.0, "heavy": 2.5, "two_wheelers": 3.0, "trucks": 3.0},
     "59c87dd083a91b79", "87c8888466025afe"),
]


@pytest.mark.parametrize(("seed", "size", "mix", "image_sha", "label_sha"), PINNED_SCENES)
def test_generated_scenes_are_byte_identical_to_the_pinned_ones(seed, size, mix, image_sha, label_sha):
    import hashlib

    from icnet_deploy.data.synthetic import SceneMix

    image, labels = generate_scene(seed, *size, mix=SceneMix(**mix))
    assert hashlib.sha256(labels.tobytes()).hexdigest()[:16] == label_sha
    assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == image_sha
