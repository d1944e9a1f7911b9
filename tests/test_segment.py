"""`nengoseg segment`: whole volumes in, NIfTI masks out with the input's grid."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from nengoseg.data import sample_path
from test_cli_snn import run_ok, trained  # noqa: F401  (module fixture: a tiny trained run)
from test_train_ann import nengoseg

IMAGE = sample_path("hippocampus") / "imagesTr" / "hippocampus_001.nii.gz"


def test_segment_keeps_affine_shape_and_header(trained, tmp_path):
    _, run = trained
    out = tmp_path / "mask.nii.gz"
    run_ok("segment", str(IMAGE), str(out), "--model", str(run))
    source, mask = nib.load(str(IMAGE)), nib.load(str(out))
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine)
    assert mask.get_data_dtype() == np.uint8
    assert mask.header.get_zooms() == source.header.get_zooms()
    values = np.unique(np.asarray(mask.dataobj))
    assert set(values.tolist()) <= {0, 1} and 1 in values  # it found some hippocampus
    label = np.asarray(nib.load(str(IMAGE).replace("imagesTr", "labelsTr")).dataobj) > 0
    pred = np.asarray(mask.dataobj) > 0
    assert (pred & label).sum() > 0.3 * label.sum()  # overlaps the truth: not shifted or flipped


def test_refuses_to_overwrite_and_folder_mode(trained, tmp_path):
    _, run = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("hippocampus_001.nii.gz", "hippocampus_003.nii.gz"):
        shutil.copy(sample_path("hippocampus") / "imagesTr" / name, inputs / name)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    out = tmp_path / "out"
    run_ok("segment", str(inputs), str(out), "--model", str(run))
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    first = (out / "hippocampus_001.nii.gz").read_bytes()

    proc = nengoseg("segment", str(inputs), str(out), "--model", str(run))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "exists; pass --overwrite" in err
    assert (out / "hippocampus_001.nii.gz").read_bytes() == first

    run_ok("segment", str(inputs), str(out), "--model", str(run), "--overwrite")
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before  # inputs untouched


@pytest.mark.parametrize(
    "args, expected",
    [
        (["/no/such.nii.gz", "o.nii.gz"], "/no/such.nii.gz does not exist"),
        ([str(IMAGE), "o.png"], "must end in .nii.gz or .nii"),
    ],
)
def test_segment_errors(trained, tmp_path, args, expected):
    _, run = trained
    proc = nengoseg("segment", *args, "--model", str(run), cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and expected in err
