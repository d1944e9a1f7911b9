"""DRIVE retinal vessels: the loader on small synthetic folders, bad input, the shared copy,
and the experiment loader's tiles."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nengoseg.config import resolve
from nengoseg.data import load_drive
from nengoseg.errors import DataError
from nengoseg.experiment_data import load_experiment_data

DRIVE_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "drive_training"
H, W = 20, 24


def _rgb(seed):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _fov():
    rows, cols = np.mgrid[:H, :W]
    return ((rows - H / 2) ** 2 + (cols - W / 2) ** 2 < 9**2).astype(np.uint8) * 255


def _vessels(seed):
    """Vessel labels inside the field of view, and one vessel pixel outside it (as in DRIVE)."""
    label = (np.random.default_rng(100 + seed).random((H, W)) < 0.2).astype(np.uint8) * 255
    label *= _fov() > 0
    label[0, 0] = 255
    return label


def _save_gif(array, path, palette=False):
    """A 0 / 255 array as a GIF: gray (mode L) or a black / white palette image (mode P)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        image = Image.fromarray((array // 255).astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 255, 255, 255])
    else:
        image = Image.fromarray(array.astype(np.uint8), "L")
    image.save(path)


def _write(root, name, half, rgb=None, label=None, fov=None, palette=False):
    """One DRIVE image with its label and mask, under the ``half``'s file names."""
    seed = int(name)
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(seed) if rgb is None else rgb, "RGB").save(
        root / "images" / f"{name}_{half}.tif"
    )
    if label is not False:
        label = _vessels(seed) if label is None else label
        _save_gif(label, root / "1st_manual" / f"{name}_manual1.gif", palette)
    _save_gif(_fov() if fov is None else fov, root / "mask" / f"{name}_{half}_mask.gif", palette)


@pytest.fixture
def training_half(tmp_path):
    """Three training-half images, 22, 9 and 10 (numeric order: 9, 10, 22)."""
    root = tmp_path / "training"
    for name, palette in (("22", False), ("9", True), ("10", False)):
        _write(root, name, "training", palette=palette)
    return root


def test_training_half_values_shapes_and_order(training_half):
    drive = load_drive(training_half)
    assert drive.names == ["9", "10", "22"]
    assert drive.x.shape == (3, H, W, 1) and drive.x.dtype == np.float32
    assert drive.y.shape == drive.fov.shape == (3, H, W, 1)
    assert drive.y.dtype == drive.fov.dtype == np.uint8
    assert 0 <= drive.x.min() and drive.x.max() <= 1
    for i, name in enumerate(drive.names):
        np.testing.assert_array_equal(drive.y[i, ..., 0], _vessels(int(name)) == 255)
        np.testing.assert_array_equal(drive.fov[i, ..., 0], _fov() == 255)
    assert set(np.unique(drive.y)) == {0, 1} and set(np.unique(drive.fov)) == {0, 1}


def test_gray_is_itu_601_luma_and_rgb_is_kept(training_half):
    rgb = _rgb(10).astype(np.float64)
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255
    np.testing.assert_allclose(load_drive(training_half).x[1, ..., 0], expected, atol=1e-6)
    colour = load_drive(training_half, gray=False)
    assert colour.x.shape == (3, H, W, 3)
    np.testing.assert_allclose(colour.x[1], rgb / 255, atol=1e-6)


def test_test_half_names_are_accepted(tmp_path):
    root = tmp_path / "test"
    for name in ("02", "01"):
        _write(root, name, "test")
    drive = load_drive(root)
    assert drive.names == ["01", "02"]
    np.testing.assert_array_equal(drive.y[0, ..., 0], _vessels(1) == 255)


def test_loader_only_reads(training_half, folder_state):
    before = folder_state(training_half)
    load_drive(training_half)
    assert folder_state(training_half) == before


def test_missing_manual_label_is_named(tmp_path):
    root = tmp_path / "test"
    _write(root, "01", "test", label=False)
    with pytest.raises(DataError, match=r"01_test\.tif: image has no label; expected .*"
                                        r"1st_manual/01_manual1\.gif"):
        load_drive(root)


def test_label_of_the_wrong_size_is_named(training_half):
    _save_gif(np.zeros((H, W - 1), np.uint8), training_half / "1st_manual" / "10_manual1.gif")
    with pytest.raises(DataError, match=r"10_manual1\.gif: label shape \(20, 23\) differs"):
        load_drive(training_half)


def test_label_value_128_is_named(training_half):
    label = _vessels(22)
    label[0, 0] = 128
    _save_gif(label, training_half / "1st_manual" / "22_manual1.gif")
    with pytest.raises(DataError, match=r"22_manual1\.gif: label values \[128\] are not allowed"):
        load_drive(training_half)


def test_mask_value_other_than_0_255_is_named(training_half):
    _save_gif(_fov() // 2, training_half / "mask" / "9_training_mask.gif")
    with pytest.raises(DataError, match=r"9_training_mask\.gif: mask values \[127\]"):
        load_drive(training_half)


def test_unreadable_image_is_named(training_half):
    (training_half / "images" / "10_training.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match=r"10_training\.tif: cannot read as an image"):
        load_drive(training_half)


def test_empty_or_missing_folder_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"images: no DRIVE images in this folder; expected "
                                        r"NN_training\.tif or NN_test\.tif"):
        load_drive(tmp_path)
    with pytest.raises(DataError, match=r"nothing/images: folder not found"):
        load_drive(tmp_path / "nothing")


@pytest.mark.skipif(not DRIVE_SHARED.is_dir(), reason=f"{DRIVE_SHARED} is absent")
def test_shared_training_half():
    drive = load_drive(DRIVE_SHARED)
    assert drive.names == [str(n) for n in range(21, 41)]
    assert drive.x.shape == (20, 584, 565, 1)  # rows x columns
    inside = drive.fov.astype(bool)
    fraction = drive.y[inside].mean()
    assert 0.05 < fraction < 0.20
    # the manual labels have a handful of vessel pixels just outside the masks
    outside = drive.y[~inside].sum()
    assert outside < 0.001 * drive.y.sum()
    # ... which the experiment loader removes
    cfg = resolve({"data": {"dataset": "drive", "root": str(DRIVE_SHARED), "size": [64, 64]}})
    data = load_experiment_data(cfg)
    total = sum(int(part.y.sum()) for part in (data.train, data.val, data.test))
    assert total == int(drive.y[inside].sum())


def test_experiment_tiles_cover_the_padded_images(training_half):
    cfg = resolve({"data": {"dataset": "drive", "root": str(training_half), "size": [8, 16]}})
    data = load_experiment_data(cfg)
    assert data.task == "segmentation" and data.input_shape == (8, 16, 1)
    drive = load_drive(training_half)
    rows, cols = 3, 2  # 20 x 24 padded to 24 x 32
    for part in (data.train, data.val, data.test):
        assert len(part) == rows * cols and len(set(part.groups.tolist())) == 1
        i = drive.names.index(part.groups[0])
        assert part.slice_index.tolist() == list(range(rows * cols))
        order = np.argsort(part.slice_index)
        x = _assemble(part.x[order], rows, cols)
        y = _assemble(part.y[order], rows, cols)
        np.testing.assert_array_equal(x[:H, :W], drive.x[i])
        np.testing.assert_array_equal(y[:H, :W], drive.y[i] * drive.fov[i])
        assert drive.y[i, 0, 0, 0] == 1 and y[0, 0, 0] == 0  # outside the field of view
        assert not x[H:].any() and not x[:, W:].any() and not y[H:].any() and not y[:, W:].any()
        roi = _assemble(part.roi[order], rows, cols)  # the field of view travels as the roi
        np.testing.assert_array_equal(roi[:H, :W], drive.fov[i, ..., 0] > 0)
        assert not roi[H:].any() and not roi[:, W:].any()


def test_scores_count_only_the_field_of_view(training_half):
    """F1, JS and ACC of a DRIVE part equal a hand count over the field-of-view pixels:
    a prediction that is wrong everywhere outside the FOV (and in the padding) scores as
    if it were right there, and a wrong pixel inside does count."""
    from nengoseg import evaluate

    cfg = resolve({"data": {"dataset": "drive", "root": str(training_half), "size": [8, 16],
                            "split": "holdout", "test_fraction": 0.5, "val_fraction": 0.0}})
    part = load_experiment_data(cfg).test
    truth = part.y[..., 0] > 0
    pred = truth | ~part.roi  # foreground predicted everywhere outside the FOV
    pred[tuple(np.argwhere(part.roi & ~truth)[0])] = True  # one false positive inside
    logits = np.where(pred, 5.0, -5.0)[..., None]
    scores = evaluate.score("segmentation", logits, part)
    inside_pred, inside_true = pred[part.roi], truth[part.roi]
    tp = np.sum(inside_pred & inside_true)
    fp = np.sum(inside_pred & ~inside_true)
    assert fp == 1 and scores["scored_pixels"] == "field of view"
    assert scores["f1"] == pytest.approx(2 * tp / (2 * tp + fp))
    assert scores["jaccard"] == pytest.approx(tp / (tp + fp))
    assert scores["pixel_accuracy"] == pytest.approx(1 - 1 / part.roi.sum())
    groups = np.broadcast_to(part.groups[:, None, None], part.roi.shape)[part.roi]
    per_image = [np.mean(inside_pred[groups == g] == inside_true[groups == g])
                 for g in dict.fromkeys(part.groups.tolist())]
    assert scores["accuracy_3d_mean"] == pytest.approx(np.mean(per_image))
    everywhere = evaluate.score("segmentation", logits, part.__class__(
        part.x, part.y, part.groups, part.slice_index))  # the same without the FOV
    assert everywhere["pixel_accuracy"] < scores["pixel_accuracy"] - 0.05


def _assemble(tiles, rows, cols):
    return np.concatenate(
        [np.concatenate(list(tiles[r * cols : (r + 1) * cols]), axis=1) for r in range(rows)]
    )
