"""ISBI 2012 membranes, Caltech airplanes boxes and the denoising test sets, on real files."""

import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from nengoseg.data import load_airplanes, load_denoising, load_isbi2012
from nengoseg.errors import ConfigError, DataError


def _copy_files(source_root, target_root, relatives):
    for relative in relatives:
        (target_root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_root / relative, target_root / relative)
    return target_root


# ISBI 2012


@pytest.fixture(scope="module")
def isbi(isbi_shared):
    return load_isbi2012(isbi_shared)


def test_isbi_shapes_and_ranges(isbi):
    x, y, names = isbi
    assert x.shape == y.shape == (30, 512, 512, 1)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.uint8 and set(np.unique(y)) == {0, 1}
    assert names[:3] == ["0", "1", "2"] and names[-1] == "29"


def test_isbi_labels_are_inverted_so_membrane_is_one(isbi, isbi_shared):
    x, y, _ = isbi
    assert y.mean() == pytest.approx(0.22, abs=0.01)
    assert x[y == 1].mean() < x[y == 0].mean()  # membranes are dark
    on_disk = np.asarray(Image.open(isbi_shared / "train" / "label" / "7.png"))
    np.testing.assert_array_equal(y[7, ..., 0], on_disk == 0)


def test_isbi_cell_foreground_keeps_the_disk_convention(tmp_path, isbi_shared):
    root = _copy_files(isbi_shared, tmp_path, ["train/image/3.png", "train/label/3.png"])
    _, cell, _ = load_isbi2012(root, foreground="cell")
    on_disk = np.asarray(Image.open(root / "train" / "label" / "3.png"))
    np.testing.assert_array_equal(cell[0, ..., 0], on_disk == 255)
    with pytest.raises(ConfigError, match="membrane, cell"):
        load_isbi2012(root, foreground="nucleus")


def test_isbi_bad_label_value_is_named(tmp_path, isbi_shared, folder_state):
    relatives = [f"train/{kind}/{n}.png" for n in (0, 1) for kind in ("image", "label")]
    root = _copy_files(isbi_shared, tmp_path, relatives)
    label_path = root / "train" / "label" / "1.png"
    label = np.asarray(Image.open(label_path)).copy()
    label[:10, :10] = 128
    Image.fromarray(label).save(label_path)
    before = folder_state(root)
    with pytest.raises(DataError, match=r"values \[128\] are not allowed") as err:
        load_isbi2012(root)
    assert str(label_path) in str(err.value) and "(0, 255)" in str(err.value)
    assert folder_state(root) == before


def test_isbi_image_without_label_is_named(tmp_path, isbi_shared):
    root = _copy_files(isbi_shared, tmp_path, ["train/image/5.png", "train/label/6.png"])
    with pytest.raises(DataError, match="image has no label") as err:
        load_isbi2012(root)
    assert str(root / "train" / "image" / "5.png") in str(err.value)


# Caltech-101 airplanes


@pytest.fixture(scope="module")
def airplanes(airplanes_shared):
    return load_airplanes(airplanes_shared, size=(64, 96))


def test_airplanes_skip_the_degenerate_box(airplanes):
    x, boxes, names = airplanes
    assert x.shape == (799, 64, 96, 3) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    assert boxes.shape == (799, 4) and boxes.dtype == np.float32
    assert len(names) == 799 and "image_0118" not in names
    assert boxes.min() >= 0 and boxes.max() <= 1
    assert np.all(boxes[:, 0] < boxes[:, 2]) and np.all(boxes[:, 1] < boxes[:, 3])


def test_airplane_boxes_agree_with_the_csv(airplanes, airplanes_shared):
    _, boxes, names = airplanes
    with open(airplanes_shared / "airplanes.csv", newline="") as f:
        rows = {row[4]: [int(v) for v in row[:4]] for row in csv.reader(f)}
    for name in ("image_0001", "image_0117", "image_0500", "image_0800"):
        width, height = Image.open(airplanes_shared / "images" / f"{name}.jpg").size
        x1, y1, x2, y2 = boxes[names.index(name)] * [width, height, width, height]
        recovered = [round(x1) + 1, round(y1) + 1, round(x2), round(y2)]
        assert recovered == rows[f"{name}.jpg"]


def test_airplanes_degenerate_box_kept_on_request(tmp_path, airplanes_shared):
    relatives = [
        f"{folder}/{prefix}_{n:04d}.{ext}"
        for n in (117, 118)
        for folder, prefix, ext in (
            ("images", "image", "jpg"),
            ("Airplanes_Side_2", "annotation", "mat"),
        )
    ]
    root = _copy_files(airplanes_shared, tmp_path, relatives)
    assert load_airplanes(root)[2] == ["image_0117"]
    x, boxes, names = load_airplanes(root, size=(32, 48), skip_degenerate=False)
    assert names == ["image_0117", "image_0118"] and x.shape == (2, 32, 48, 3)
    assert boxes[1, 3] - boxes[1, 1] == pytest.approx(1 / 165, rel=1e-5)  # one row of 165


def test_airplanes_missing_annotation_is_named(tmp_path, airplanes_shared):
    root = _copy_files(
        airplanes_shared,
        tmp_path,
        ["images/image_0001.jpg", "images/image_0002.jpg", "Airplanes_Side_2/annotation_0001.mat"],
    )
    with pytest.raises(DataError, match="annotation not found") as err:
        load_airplanes(root)
    assert str(root / "Airplanes_Side_2" / "annotation_0002.mat") in str(err.value)


# Denoising test sets


@pytest.fixture(scope="module")
def set12(denoising_shared):
    return load_denoising(denoising_shared, "Set12", sigma=25, seed=0)


def test_set12_shapes_and_noise_level(set12):
    noisy, clean, names = set12
    assert noisy.shape == clean.shape == (12, 256, 256, 1)
    assert noisy.dtype == clean.dtype == np.float32
    assert names[0] == "01.png" and len(names) == 12
    assert 0 <= clean.min() and clean.max() <= 1
    assert noisy.min() < 0 and noisy.max() > 1  # not clipped
    assert np.std(noisy - clean) == pytest.approx(25 / 255, rel=0.01)


@pytest.mark.parametrize("sigma", [15, 50])
def test_noise_std_follows_sigma(denoising_shared, sigma):
    noisy, clean, _ = load_denoising(denoising_shared, "Set12", sigma=sigma, crop=(64, 64))
    assert np.std(noisy - clean) == pytest.approx(sigma / 255, rel=0.03)


def test_noise_is_seeded(set12, denoising_shared):
    again, clean, _ = load_denoising(denoising_shared, "Set12", sigma=25, seed=0)
    np.testing.assert_array_equal(again, set12[0])
    other, _, _ = load_denoising(denoising_shared, "Set12", sigma=25, seed=1)
    assert not np.array_equal(other, set12[0])
    np.testing.assert_array_equal(clean, set12[1])


def test_colour_set_and_crop(tmp_path, denoising_shared):
    root = _copy_files(denoising_shared, tmp_path, ["CBSD68/101085.png", "CBSD68/101087.png"])
    noisy, clean, names = load_denoising(root, "CBSD68", sigma=15, crop=(128, 96))
    assert noisy.shape == clean.shape == (2, 128, 96, 3)
    assert names == ["101085.png", "101087.png"]
    with pytest.raises(DataError, match="smaller than the crop") as err:
        load_denoising(root, "CBSD68", crop=(500, 500))
    assert "101085.png" in str(err.value)


def test_different_sizes_crop_to_the_smallest_common_size(tmp_path, denoising_shared):
    root = _copy_files(denoising_shared, tmp_path, ["Set12/01.png", "Set12/08.png"])
    noisy, clean, _ = load_denoising(root, "Set12")
    assert clean.shape == (2, 256, 256, 1)
    full = np.asarray(Image.open(root / "Set12" / "08.png"), dtype=np.float32) / 255
    np.testing.assert_array_equal(clean[1, ..., 0], full[128:384, 128:384])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"sigma": 30}, "15, 25, 50"), ({"set_name": "Kodak24"}, "BSD68, CBSD68, Set12")],
)
def test_bad_denoising_settings_are_config_errors(denoising_shared, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_denoising(denoising_shared, **kwargs)
