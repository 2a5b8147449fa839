"""Dataset loader and robust image reading: round trip and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icnet_deploy.data.folders import CityscapesDataset, list_images, read_rgb, read_train_ids
from icnet_deploy.labels import train_ids_to_label_ids
from icnet_deploy.data.synthetic import generate_scene, write_dataset
from icnet_deploy.errors import DataError


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    write_dataset(root, 2, 10, size=(64, 128), split="val")
    return root


def _save_pair(root: Path, split: str, city: str, stem: str, image: np.ndarray, label: np.ndarray | None,
               kind: str = "labelTrainIds") -> Path:
    img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    p = img_dir / f"{stem}_leftImg8bit.png"
    Image.fromarray(image).save(p)
    if label is not None:
        Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_{kind}.png")
    return p


# ---------------------------------------------------------------- dataset


def test_round_trip_on_generated_dataset(mini):
    ds = CityscapesDataset(mini, "val")
    assert len(ds) == 2
    assert [p.name for p in ds.image_paths] == ["synth_000000_000010_leftImg8bit.png",
                                               "synth_000000_000011_leftImg8bit.png"]
    for i, seed in enumerate((10, 11)):
        img, lab = ds[i]
        exp_img, exp_lab = generate_scene(seed, 64, 128)
        assert img.dtype == np.uint8 and img.shape == (64, 128, 3) and lab.dtype == np.uint8
        assert np.array_equal(img, exp_img) and np.array_equal(lab, exp_lab)
    assert np.array_equal(ds[-1][1], ds[1][1])
    with pytest.raises(IndexError):
        ds[2]


def test_label_ids_fallback(tmp_path):
    img = np.zeros((8, 16, 3), np.uint8)
    train = np.full((8, 16), 255, np.uint8)
    train[:4] = 0
    train[4:, :8] = 13
    _save_pair(tmp_path, "val", "x", "x_000000_000001", img, train_ids_to_label_ids(train), kind="labelIds")
    ds = CityscapesDataset(tmp_path, "val")
    assert ds.label_paths[0].name.endswith("_gtFine_labelIds.png")
    assert np.array_equal(ds[0][1], train)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        CityscapesDataset(tmp_path / "nope")


def test_missing_split_folder_names_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"no leftImg8bit/val folder; expected the Cityscapes layout"):
        CityscapesDataset(tmp_path, "val")


def test_no_images(tmp_path):
    (tmp_path / "leftImg8bit" / "train" / "city").mkdir(parents=True)
    with pytest.raises(DataError, match="no \\*_leftImg8bit.png images"):
        CityscapesDataset(tmp_path, "train")


def test_image_without_label_is_named(tmp_path):
    _save_pair(tmp_path, "val", "c", "c_000000_000001", np.zeros((8, 8, 3), np.uint8), None)
    with pytest.raises(DataError, match="c_000000_000001_leftImg8bit.png: no label file"):
        CityscapesDataset(tmp_path, "val")


def test_label_with_bad_values_names_file_and_values(tmp_path):
    lab = np.zeros((8, 8), np.uint8)
    lab[0, 0], lab[1, 1] = 19, 200
    _save_pair(tmp_path, "val", "c", "c_000000_000001", np.zeros((8, 8, 3), np.uint8), lab)
    ds = CityscapesDataset(tmp_path, "val")
    with pytest.raises(DataError, match=r"c_000000_000001_gtFine_labelTrainIds.png: .*19, 200"):
        ds[0]


def test_size_mismatch(tmp_path):
    _save_pair(tmp_path, "val", "c", "c_000000_000001", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="does not match image"):
        CityscapesDataset(tmp_path, "val")[0]


# ---------------------------------------------------------------- list_images


def test_list_images_file_folder_glob(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.PNG", "a/b/2.jpg", "a/b/3.TIFF", "a/b/4.webp", "a/notes.txt", "a/.hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path / "a")] == ["1.PNG", "2.jpg", "3.TIFF", "4.webp"]
    assert [p.name for p in list_images(tmp_path / "a", recursive=False)] == ["1.PNG"]
    assert [p.name for p in list_images(str(tmp_path / "a" / "b" / "*.jpg"))] == ["2.jpg"]
    assert list_images(tmp_path / "a" / "1.PNG") == [tmp_path / "a" / "1.PNG"]
    with pytest.raises(DataError, match="no such file or folder"):
        list_images(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="no image files match"):
        list_images(str(tmp_path / "*.gif"))
    with pytest.raises(DataError, match="not an image file"):
        list_images(tmp_path / "a" / "notes.txt")


# ---------------------------------------------------------------- read_rgb


def _rgb_ok(a: np.ndarray, shape: tuple[int, int]) -> None:
    assert a.dtype == np.uint8 and a.shape == (*shape, 3) and a.flags.c_contiguous


def test_read_rgb_grayscale(tmp_path):
    g = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(g).save(tmp_path / "g.png")
    a = read_rgb(tmp_path / "g.png")
    _rgb_ok(a, (6, 8))
    assert np.array_equal(a[..., 0], g) and np.array_equal(a[..., 2], g)


def test_read_rgb_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    Image.fromarray(rgba).save(tmp_path / "a.png")
    a = read_rgb(tmp_path / "a.png")
    _rgb_ok(a, (4, 5))
    assert (a[..., 0] == 200).all() and (a[..., 1:] == 0).all()
    Image.fromarray(rgba[..., [0, 3]]).save(tmp_path / "la.png")  # LA
    _rgb_ok(read_rgb(tmp_path / "la.png"), (4, 5))


def test_read_rgb_16bit(tmp_path):
    v = np.array([[0, 255, 256, 65535]], np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")
    a = read_rgb(tmp_path / "g16.png")
    _rgb_ok(a, (1, 4))
    assert a[0, :, 1].tolist() == [0, 0, 1, 255]
    Image.fromarray(v.astype(np.int32), mode="I").save(tmp_path / "i32.tif")
    assert read_rgb(tmp_path / "i32.tif")[0, :, 0].tolist() == [0, 0, 1, 255]


def test_read_rgb_palette_and_cmyk(tmp_path):
    p = Image.new("P", (3, 2))
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    a = read_rgb(tmp_path / "p.png")
    _rgb_ok(a, (2, 3))
    assert a[0, 1].tolist() == [10, 20, 30] and a[1, 1].tolist() == [0, 0, 0]
    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    c = read_rgb(tmp_path / "c.jpg")
    _rgb_ok(c, (3, 4))
    assert c[0, 0, 0] > 200 and c[0, 0, 1] < 60


def test_read_rgb_exif_rotation(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :10] = 255  # white band on the left
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    r = read_rgb(tmp_path / "r.jpg")
    _rgb_ok(r, (40, 20))
    assert r[:10].mean() > 200 and r[-10:].mean() < 50  # left band is now on top


def test_read_rgb_bad_files(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image\n")
    for name, reason in (("trunc.jpg", "cannot read image: "), ("empty.png", "empty file"),
                         ("text.png", "cannot read image: not an image")):
        with pytest.raises(DataError, match=reason) as info:
            read_rgb(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name))
    with pytest.raises(DataError, match="not found"):
        read_rgb(tmp_path / "missing.png")


def test_read_train_ids_modes_and_checks(tmp_path):
    lab = np.array([[0, 18, 255]], np.uint8)
    Image.fromarray(lab).save(tmp_path / "l.png")
    assert read_train_ids(tmp_path / "l.png").tolist() == lab.tolist()
    p = Image.fromarray(lab).convert("P")
    p.putdata(lab.ravel().tolist())
    p.save(tmp_path / "p.png")
    assert read_train_ids(tmp_path / "p.png").tolist() == lab.tolist()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="mode L or P"):
        read_train_ids(tmp_path / "rgb.png")
    Image.fromarray(np.array([[0, 33]], np.uint8)).save(tmp_path / "bad.png")
    with pytest.raises(DataError, match="bad.png: label has values outside 0..18 and 255: 33"):
        read_train_ids(tmp_path / "bad.png")
