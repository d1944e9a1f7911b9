"""Bad hippocampus data gives a DataError naming the file; loading never writes.

Every bad file is made in ``tmp_path`` from a copy of real sample files.
"""

import nibabel as nib
import numpy as np
import pytest

from nengoseg.data import find_pairs, load_hippocampus, load_volume
from nengoseg.errors import DataError

SUBJECT = "hippocampus_003"  # stored with a float32 label
NAME = f"{SUBJECT}.nii.gz"


def _rewrite(path, image=None, affine=None):
    """Save ``path`` again with new data and/or affine (same header otherwise)."""
    nii = nib.load(path)
    data = np.asanyarray(nii.dataobj) if image is None else image
    header = nii.header.copy()
    header.set_data_dtype(data.dtype)
    new = nib.Nifti1Image(data, nii.affine if affine is None else affine, header)
    nib.save(new, path)


def _load_error(root, match):
    with pytest.raises(DataError, match=match) as err:
        load_hippocampus(root)
    return str(err.value)


def test_truncated_gzip_is_named(hippocampus_copy):
    path = hippocampus_copy / "imagesTr" / NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = _load_error(hippocampus_copy, NAME)
    assert str(path) in message and "expected a complete .nii" in message


def test_garbage_bytes_are_named(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    path.write_bytes(b"this is not a NIfTI file at all" * 10)
    assert str(path) in _load_error(hippocampus_copy, "cannot read as NIfTI")


def test_nan_and_inf_voxels_are_named(hippocampus_copy):
    path = hippocampus_copy / "imagesTr" / NAME
    image = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    image[3, 4, 5] = np.nan
    image[6, 7, 8] = np.inf
    _rewrite(path, image)
    message = _load_error(hippocampus_copy, "2 voxels are NaN or infinite")
    assert str(path) in message and "expected finite" in message


def test_shape_mismatch_is_named(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    _rewrite(path, np.asanyarray(nib.load(path).dataobj)[:, :, :-1])
    message = _load_error(hippocampus_copy, "label shape")
    assert str(path) in message and "expected the same shape" in message


def test_affine_mismatch_is_named(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    affine = nib.load(path).affine.copy()
    affine[0, 3] += 1.0
    _rewrite(path, affine=affine)
    message = _load_error(hippocampus_copy, "affine")
    assert str(path) in message and "expected the same affine" in message


def test_affine_difference_within_tolerance_is_accepted(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    affine = nib.load(path).affine.copy()
    affine[0, 3] += 1e-4
    _rewrite(path, affine=affine)
    assert len(load_hippocampus(hippocampus_copy)) == 3


def test_label_value_outside_the_set_is_named(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    label = np.asanyarray(nib.load(path).dataobj).copy()
    label[label == 2] = 5
    _rewrite(path, label)
    message = _load_error(hippocampus_copy, r"label values \[5\] are not allowed")
    assert str(path) in message and "(0, 1, 2)" in message
    volume = load_volume(hippocampus_copy / "imagesTr" / NAME, path, label_values=(0, 1, 5))
    assert set(np.unique(volume.label)) == {0, 1, 5}


def test_non_integral_float_label_is_named(hippocampus_copy):
    path = hippocampus_copy / "labelsTr" / NAME
    label = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    label[label == 2] = 1.5
    _rewrite(path, label)
    assert str(path) in _load_error(hippocampus_copy, "non-integral")


def test_label_without_image_is_named(hippocampus_copy):
    (hippocampus_copy / "imagesTr" / NAME).unlink()
    message = _load_error(hippocampus_copy, "label has no image")
    assert str(hippocampus_copy / "labelsTr" / NAME) in message
    assert str(hippocampus_copy / "imagesTr" / NAME) in message


def test_image_without_label_is_named(hippocampus_copy):
    (hippocampus_copy / "labelsTr" / NAME).unlink()
    message = _load_error(hippocampus_copy, "image has no label")
    assert str(hippocampus_copy / "imagesTr" / NAME) in message


def test_empty_folder_is_named(hippocampus_copy):
    for path in (hippocampus_copy / "imagesTr").iterdir():
        path.unlink()
    (hippocampus_copy / "imagesTr" / "notes.txt").write_text("no volumes here")
    message = _load_error(hippocampus_copy, "no .nii.gz or .nii files")
    assert str(hippocampus_copy / "imagesTr") in message


def test_missing_folder_is_named(tmp_path, hippocampus_copy):
    message = _load_error(tmp_path / "nowhere", "folder not found")
    assert str(tmp_path / "nowhere" / "imagesTr") in message
    masks = tmp_path / "masks"
    with pytest.raises(DataError, match="folder not found") as err:
        find_pairs(images_dir=hippocampus_copy / "imagesTr", labels_dir=masks)
    assert str(masks) in str(err.value)


def test_loading_writes_nothing(hippocampus_copy, hippocampus_sample, folder_state):
    for root in (hippocampus_copy, hippocampus_sample):
        before = folder_state(root)
        load_hippocampus(root)
        assert folder_state(root) == before


def test_same_subject_twice_is_named(hippocampus_copy):
    for folder in ("imagesTr", "labelsTr"):
        gz = hippocampus_copy / folder / NAME
        nib.save(nib.load(gz), gz.with_suffix(""))  # hippocampus_003.nii beside the .nii.gz
    message = _load_error(hippocampus_copy, f"same subject as {SUBJECT}.nii;")
    assert str(hippocampus_copy / "imagesTr" / NAME) in message
