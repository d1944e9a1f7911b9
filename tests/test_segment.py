"""`nengoseg segment`: whole volumes in, NIfTI masks out with the input's grid.

End to end through the CLI: a trained tiny run, and a fake run whose "ANN" is a real
Keras model that thresholds its input (so every mask voxel is known exactly). The
checks with a stub network are in test_segment_folder.py.
"""

import shutil

import nibabel as nib
import numpy as np
import pytest

from nengoseg.data import sample_path
from test_cli_snn import run_ok, trained  # noqa: F401  (module fixture: a tiny trained run)
from test_segment_folder import AFFINE, expected, fake_run, write
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
    assert "skipping 2 of 2 files" in run_ok("segment", str(inputs), str(out), "--model",
                                             str(run), "--skip-existing")


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


@pytest.fixture(scope="module")
def threshold_run(tmp_path_factory):
    """A fake run whose ANN (a real Keras model.h5 on 8x8 tiles) says "intensity > 0.5"."""
    import tensorflow as tf

    run = fake_run(tmp_path_factory.mktemp("threshold"), stage_id="t")
    x = tf.keras.layers.Input((8, 8, 1))
    conv = tf.keras.layers.Conv2D(1, 1)
    model = tf.keras.Model(x, conv(x))
    conv.set_weights([np.full((1, 1, 1, 1), 40.0), np.full(1, -20.0)])  # logit 40 (x - 0.5)
    model.save(run / "ann" / "model.h5")
    return run


def test_cli_tiles_large_volumes_and_lists_failures(threshold_run, tmp_path, folder_state):
    rng = np.random.default_rng(3)
    big = rng.uniform(0, 40, (41, 50, 4)).astype(np.float32)
    big[31:39, 2:10] = 100  # off-centre: a centre crop to 8x8 would lose it all
    small = rng.uniform(0, 40, (6, 7, 3)).astype(np.float32)
    small[:2, :3] = 100
    inputs, out = tmp_path / "in", tmp_path / "masks"
    write(inputs / "big.nii.gz", big)
    write(inputs / "small4d.nii", small[..., None])
    write(inputs / "bad.nii.gz", np.zeros((4, 5, 6, 2), np.float32))
    before = folder_state(inputs)
    proc = nengoseg("segment", str(inputs), str(out), "--model", str(threshold_run))
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert f"created output folder {out}" in stdout
    assert err.strip().splitlines()[-1] == (
        f"nengoseg: error: 1 of 3 files failed (2 masks written to {out}): "
        f"{inputs / 'bad.nii.gz'}: image has shape (4, 5, 6, 2); accepted: (X, Y, Z) or (X, Y, Z, 1)")
    mask = nib.load(str(out / "big.nii.gz"))
    np.testing.assert_array_equal(np.asarray(mask.dataobj), expected(big))
    assert np.asarray(mask.dataobj)[31:39, 2:10].all()
    np.testing.assert_allclose(mask.affine, AFFINE)
    small_mask = np.asarray(nib.load(str(out / "small4d.nii")).dataobj)
    assert small_mask.shape == (6, 7, 3, 1)
    np.testing.assert_array_equal(small_mask[..., 0], expected(small))
    assert folder_state(inputs) == before

    (inputs / "bad.nii.gz").unlink()  # resume: the two masks are kept, nothing to do
    out_state = folder_state(out)
    assert "skipping 2 of 2 files" in run_ok("segment", str(inputs), str(out), "--model",
                                             str(threshold_run), "--skip-existing")
    assert folder_state(out) == out_state
    proc = nengoseg("segment", str(inputs), str(out), "--model", str(threshold_run),
                    "--skip-existing", "--overwrite")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "not allowed with argument" in err
