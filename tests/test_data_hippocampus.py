"""Hippocampus loading, normalisation, pad/crop and slicing, on real MSD Task04 files."""

import hashlib
import shutil

import nibabel as nib
import numpy as np
import pytest

from nengoseg.data import (
    find_pairs,
    load_hippocampus,
    normalise_volume,
    pad_or_crop,
    undo_pad_or_crop,
    volumes_to_slices,
)
from nengoseg.errors import ConfigError, DataError

# From ../shared/data/hippocampus_msd_task04/SOURCE.md
MIN_SHAPE, MAX_SHAPE = (31, 40, 24), (43, 59, 47)
FLOAT_LABEL_SUBJECTS = ("hippocampus_003", "hippocampus_243")
BRIGHTEST = "hippocampus_210"  # max intensity about 1.7e6


@pytest.fixture(scope="module")
def sample_volumes(hippocampus_sample):
    return load_hippocampus(hippocampus_sample)


def test_sample_loads_24_labelled_subjects(sample_volumes, hippocampus_sample):
    assert len(sample_volumes) == 24
    subjects = [v.subject for v in sample_volumes]
    assert subjects == sorted(subjects) and subjects[0] == "hippocampus_001"
    for v in sample_volumes:
        assert v.image.dtype == np.float32 and v.image.ndim == 3
        assert v.label.dtype == np.uint8 and v.label.shape == v.image.shape
        assert set(np.unique(v.label)) == {0, 1, 2}
        assert 0.03 < (v.label > 0).mean() < 0.08
        assert v.affine.shape == (4, 4)
        assert v.image_path == hippocampus_sample / "imagesTr" / f"{v.subject}.nii.gz"
        assert v.label_path == hippocampus_sample / "labelsTr" / f"{v.subject}.nii.gz"


def test_sample_files_match_their_checksums_and_attribution(hippocampus_sample):
    sums = (hippocampus_sample / "SHA256SUMS").read_text().split("\n")
    entries = dict(reversed(line.split("  ")) for line in sums if line)
    assert len(entries) == 48
    for relative, digest in entries.items():
        assert hashlib.sha256((hippocampus_sample / relative).read_bytes()).hexdigest() == digest
    attribution = (hippocampus_sample / "ATTRIBUTION.md").read_text()
    assert "CC BY-SA 4.0" in attribution and "1902.09063" in attribution
    assert all(relative.split("/")[1] in attribution for relative in entries)


def test_sample_is_the_start_of_the_shared_set(hippocampus_sample, hippocampus_shared):
    shared = find_pairs(hippocampus_shared)
    sample = find_pairs(hippocampus_sample)
    assert [s for s, _, _ in sample] == [s for s, _, _ in shared[:24]]
    for (_, image, label), (_, shared_image, shared_label) in zip(sample, shared):
        assert image.read_bytes() == shared_image.read_bytes()
        assert label.read_bytes() == shared_label.read_bytes()


def test_shared_set_loads_all_200_subjects(hippocampus_shared):
    volumes = load_hippocampus(hippocampus_shared)
    assert len(volumes) == 200
    shapes = np.array([v.image.shape for v in volumes])
    assert tuple(shapes.min(axis=0)) == MIN_SHAPE and tuple(shapes.max(axis=0)) == MAX_SHAPE
    assert all(set(np.unique(v.label)) == {0, 1, 2} for v in volumes)
    # Mixed intensity scales: 51 uint8 volumes, most in the thousands, 8 above 1e6.
    maxima = np.array([v.image.max() for v in volumes])
    assert (maxima <= 255).sum() == 51 and (maxima > 5000).sum() == 32 and (maxima > 1e6).sum() == 8


def test_float_stored_labels_become_uint8(hippocampus_sample, hippocampus_shared):
    for root in (hippocampus_sample, hippocampus_shared):
        names = [s for s, _, _ in find_pairs(root) if s in FLOAT_LABEL_SUBJECTS]
        for v in load_hippocampus(root, subjects=names):
            stored = np.asanyarray(nib.load(v.label_path).dataobj)
            assert stored.dtype == np.float32
            assert v.label.dtype == np.uint8
            np.testing.assert_array_equal(v.label, stored)
    assert "hippocampus_003" in [s for s, _, _ in find_pairs(hippocampus_sample)]


def test_subjects_filter_keeps_sorted_order(hippocampus_sample):
    volumes = load_hippocampus(hippocampus_sample, subjects=["hippocampus_004", "hippocampus_001"])
    assert [v.subject for v in volumes] == ["hippocampus_001", "hippocampus_004"]
    with pytest.raises(DataError, match="hippocampus_999"):
        load_hippocampus(hippocampus_sample, subjects=["hippocampus_999"])


def test_two_folder_form_ignores_dotfiles(tmp_path, hippocampus_copy):
    images, labels = tmp_path / "scans", tmp_path / "masks"
    shutil.copytree(hippocampus_copy / "imagesTr", images)
    shutil.copytree(hippocampus_copy / "labelsTr", labels)
    (images / "._hippocampus_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (labels / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    separate = load_hippocampus(images_dir=images, labels_dir=labels)
    together = load_hippocampus(hippocampus_copy)
    assert [v.subject for v in separate] == [v.subject for v in together]
    for a, b in zip(separate, together):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
        assert a.image_path.parent == images and a.label_path.parent == labels


def test_root_or_both_folders_are_required(hippocampus_copy):
    with pytest.raises(ConfigError, match="labels_dir"):
        load_hippocampus(images_dir=hippocampus_copy / "imagesTr")
    with pytest.raises(ConfigError, match="not both"):
        load_hippocampus(hippocampus_copy, images_dir=hippocampus_copy / "imagesTr")


def test_unit_normalisation_is_robust_to_scale(sample_volumes):
    for v in sample_volumes:
        unit = normalise_volume(v.image)
        assert unit.dtype == np.float32 and unit.shape == v.image.shape
        assert unit.min() == 0 and unit.max() == 1
        np.testing.assert_allclose(normalise_volume(v.image * 7000.0 + 3.0), unit, atol=1e-4)


def test_zero_mean_normalisation_lies_in_minus_one_one(sample_volumes):
    for v in sample_volumes:
        z = normalise_volume(v.image, "zero_mean")
        assert abs(z.mean()) < 1e-5
        assert np.abs(z).max() == pytest.approx(1.0)
        assert z.min() < 0 < z.max()


def test_normalisation_of_a_volume_with_max_above_1e6(hippocampus_shared):
    (v,) = load_hippocampus(hippocampus_shared, subjects=[BRIGHTEST])
    assert v.image.max() > 1e6
    unit = normalise_volume(v.image)
    assert unit.min() == 0 and unit.max() == 1
    # The percentile clip keeps outliers from squashing the tissue towards 0.
    assert np.median(unit) > 0.4 > np.median(v.image / v.image.max())
    assert (unit == 1).mean() == pytest.approx(0.005, abs=0.002)
    z = normalise_volume(v.image, "zero_mean")
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 1e-5


def test_bad_normalisation_settings_name_the_allowed_values(sample_volumes):
    image = sample_volumes[0].image
    with pytest.raises(ConfigError, match="unit, zero_mean"):
        normalise_volume(image, "zscore")
    with pytest.raises(ConfigError, match="percentiles"):
        normalise_volume(image, percentiles=(99, 1))


def test_pad_or_crop_sizes_and_offsets():
    array = np.arange(5 * 7 * 4).reshape(5, 7, 4)
    out, offsets = pad_or_crop(array, (8, 4), axes=(0, 1))
    assert out.shape == (8, 4, 4)
    assert offsets == [(1, 2), (-1, -2)]
    np.testing.assert_array_equal(out[1:6], array[:, 1:5])
    assert not out[0].any() and not out[6:].any()


def test_undo_pad_or_crop_round_trip_on_a_label(sample_volumes):
    label = sample_volumes[0].label  # (35, 51, 35): axis 1 padded, axis 2 cropped
    out, offsets = pad_or_crop(label, (56, 30), axes=(1, 2))
    assert out.shape == (35, 56, 30) and offsets == [(2, 3), (-2, -3)]
    back = undo_pad_or_crop(out, offsets, axes=(1, 2))
    assert back.shape == label.shape and back.dtype == label.dtype
    np.testing.assert_array_equal(back[:, :, 2:-3], label[:, :, 2:-3])
    assert not back[:, :, :2].any() and not back[:, :, -3:].any()
    padded_only, offsets = pad_or_crop(label, (60, 50), axes=(1, 2))
    np.testing.assert_array_equal(undo_pad_or_crop(padded_only, offsets, (1, 2)), label)


def test_pad_or_crop_rejects_mismatched_size_and_axes():
    with pytest.raises(ConfigError, match="one positive size per axis"):
        pad_or_crop(np.zeros((4, 4)), (4, 4, 4), axes=(0, 1))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_keep_subject_and_index(sample_volumes, axis):
    volumes = sample_volumes[:3]
    slices = volumes_to_slices(volumes, axis=axis, size=(40, 32))
    assert len(slices) == sum(v.image.shape[axis] for v in volumes)
    assert slices.x.shape == (len(slices), 40, 32, 1) and slices.x.dtype == np.float32
    assert slices.y.shape == slices.x.shape and slices.y.dtype == np.uint8
    start = 0
    for v in volumes:
        n = v.image.shape[axis]
        assert list(slices.subjects[start : start + n]) == [v.subject] * n
        np.testing.assert_array_equal(slices.slice_index[start : start + n], np.arange(n))
        k = n // 2  # check one slice against the volume itself
        in_plane = tuple(a for a in range(3) if a != axis)
        label, _ = pad_or_crop(np.take(v.label, [k], axis=axis), (40, 32), in_plane)
        np.testing.assert_array_equal(slices.y[start + k, ..., 0], np.squeeze(label > 0, axis))
        start += n


def test_binary_and_multiclass_targets(sample_volumes):
    volumes = sample_volumes[:2]
    binary = volumes_to_slices(volumes, task="binary")
    multi = volumes_to_slices(volumes, task="multiclass")
    assert set(np.unique(binary.y)) == {0, 1} and set(np.unique(multi.y)) == {0, 1, 2}
    np.testing.assert_array_equal(binary.y, (multi.y > 0).astype(np.uint8))
    # (56, 48) crops no foreground here: every labelled voxel is kept
    assert multi.y.sum() == sum(int(v.label.sum()) for v in volumes)


def test_slices_are_normalised_per_volume_and_padded_with_background(sample_volumes):
    v = sample_volumes[0]  # (35, 51, 35): padded to 56 x 48
    unit = volumes_to_slices([v], size=(56, 48))
    assert unit.x.min() == 0 and unit.x.max() == 1
    assert not unit.x[:, :2].any() and not unit.x[:, :, -6:].any()
    zero = volumes_to_slices([v], size=(56, 48), normalise="zero_mean")
    z = normalise_volume(v.image, "zero_mean")
    assert zero.x.min() == pytest.approx(z.min()) and zero.x.max() <= 1
    np.testing.assert_allclose(zero.x[:, :2], z.min())


def test_select_keeps_the_order_of_slices(sample_volumes):
    slices = volumes_to_slices(sample_volumes[:3])
    picked = slices.select([sample_volumes[2].subject, sample_volumes[0].subject])
    first, third = sample_volumes[0].subject, sample_volumes[2].subject
    assert list(dict.fromkeys(picked.subjects)) == [first, third]
    assert len(picked) == sample_volumes[0].image.shape[0] + sample_volumes[2].image.shape[0]
    np.testing.assert_array_equal(picked.x, slices.x[slices.subjects != sample_volumes[1].subject])


@pytest.mark.parametrize(
    "kwargs, match", [({"task": "regions"}, "binary, multiclass"), ({"axis": 3}, "0, 1, 2")]
)
def test_bad_task_or_axis_is_a_config_error(sample_volumes, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        volumes_to_slices(sample_volumes[:1], **kwargs)
