"""`nengoseg.segment` with a stub network: tiling, layouts, run records, and output safety.

The stub returns, for every voxel, logits of "normalised intensity > 0.5", so a
correct pipeline gives exactly the thresholded normalised volume everywhere.
"""

import json
import os
import stat
import tempfile

import nibabel as nib
import numpy as np
import pytest

from nengoseg import segment, tiling
from nengoseg.data import normalise_volume, sample_path
from nengoseg.errors import DataError, NengosegError

AFFINE = np.diag([1.0, 1.5, 2.0, 1.0])


def data_config(**changes):
    cfg = {"dataset": "hippocampus", "root": None, "images_dir": None, "labels_dir": None,
           "normalise": "unit", "task": "binary", "slice_axis": 2, "size": [8, 8],
           "split": "holdout", "max_subjects": None}
    cfg.update(changes)
    return cfg


def fake_run(tmp_path, stage_id="x", **changes):
    """A run folder whose ANN stage record says how the (stub) network was trained."""
    run = tmp_path / "run"
    (run / "ann").mkdir(parents=True, exist_ok=True)
    record = {"format_version": 1, "stage": "ann", "id": stage_id,
              "provenance": {"config": {"data": data_config(**changes)}, "data": None,
                             "inputs": {}},
              "results": {}}
    (run / "ann" / "stage.json").write_text(json.dumps(record))
    return run


@pytest.fixture
def stub(monkeypatch):
    """The ANN replaced by a voxel-wise threshold; records the tiles it was given."""
    calls = []

    def factory(segmenter, run_dir):
        def predict(x):
            calls.append(x.shape)
            return np.where(x > 0.5, 10.0, -10.0).astype(np.float32), 0.5

        return predict

    monkeypatch.setitem(segment._PREDICTORS, "ann", factory)
    return calls


def volume(shape=(40, 50, 6), corner=(30, 3), seed=0):
    """Background noise with a bright off-centre block (several % of the voxels)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 40, shape).astype(np.float32)
    image[corner[0]:corner[0] + 8, corner[1]:corner[1] + 8] = 100
    return image


def expected(image, mode="unit"):
    return (normalise_volume(image, mode) > 0.5).astype(np.uint8)


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    return path


def read(path):
    return np.asarray(nib.load(str(path)).dataobj)


# ----------------------------------------------------------------- tiling


@pytest.mark.parametrize("length, tile, overlap", [(50, 8, 0.5), (9, 8, 0.5), (64, 8, 0.0),
                                                   (33, 7, 0.25), (8, 8, 0.5), (3, 8, 0.5)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == max(length - tile, 0)
    steps = np.diff(starts)
    assert np.all(steps >= 1) and np.all(steps <= tile * (1 - overlap))
    if overlap == 0 and length % tile == 0:
        assert len(starts) == length // tile  # no tile more than needed


@pytest.mark.parametrize("shape", [(3, 40, 50), (2, 5, 30), (1, 8, 8), (2, 3, 4)])
@pytest.mark.parametrize("gaussian", [True, False])
def test_predict_tiled_averages_back_to_the_input(shape, gaussian):
    slices = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    out = tiling.predict_tiled(slices, (8, 8), lambda t: t, gaussian=gaussian,
                               max_tile_bytes=4 * 64 * 5)  # several calls
    assert out.shape == shape + (1,)
    np.testing.assert_allclose(out[..., 0], slices, rtol=1e-5, atol=1e-5)


def test_gaussian_weights_trust_the_centre():
    w = tiling.gaussian_weights((8, 10))
    assert w.shape == (8, 10) and w.max() == pytest.approx(1, abs=0.05) and w.min() > 0
    assert w[4, 5] > w[0, 0]


# ----------------------------------------------------------------- volumes


@pytest.mark.parametrize("shape, axis, block", [
    ((40, 50, 6), 2, np.s_[30:38, 3:11]),  # off-centre, larger than a tile in X and Y
    ((6, 40, 50), 0, np.s_[:, 30:38, 40:48]),  # slices along X
    ((5, 60, 3), 2, np.s_[1:3, 50:58]),  # smaller than a tile in X (padded), larger in Y
])
def test_volume_larger_than_training_size_is_tiled_not_cropped(tmp_path, stub, shape, axis, block):
    run = fake_run(tmp_path, slice_axis=axis)
    image = np.random.default_rng(0).uniform(0, 40, shape).astype(np.float32)
    image[block] = 100
    segmenter = segment.Segmenter(run, "ann")
    mask = segmenter.segment_volume(image)
    assert mask.shape == image.shape and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected(image))
    assert mask.sum() > 0
    assert {s[1:] for s in stub} == {(8, 8, 1)}  # always tiles of the training size


def test_file_mode_writes_mask_with_header_and_mark(tmp_path, stub, folder_state):
    run = fake_run(tmp_path)
    image = volume()
    source = write(tmp_path / "in" / "case.nii.gz", image)
    before = folder_state(tmp_path / "in")
    out = tmp_path / "out" / "case_mask.nii.gz"
    (tmp_path / "out").mkdir()
    assert segment.segment_paths(run, source, out, verbose=False) == [out]
    mask = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(mask.dataobj), expected(image))
    np.testing.assert_allclose(mask.affine, AFFINE)
    assert mask.get_data_dtype() == np.uint8
    assert segment.mark_of(out) == "nengoseg mask engine=ann model=ann:x"
    assert folder_state(tmp_path / "in") == before


def test_trailing_singleton_axis_is_accepted(tmp_path, stub):
    run = fake_run(tmp_path)
    image = volume()
    source = write(tmp_path / "in" / "case.nii.gz", image[..., None])
    out = tmp_path / "case.nii.gz"
    segment.segment_paths(run, source, out, verbose=False)
    mask = read(out)
    assert mask.shape == image.shape + (1,)  # the input's own layout
    np.testing.assert_array_equal(mask[..., 0], expected(image))


@pytest.mark.parametrize("shape", [(40, 50, 6, 2), (40, 50), (4, 5, 6, 1, 2)])
def test_other_layouts_are_one_line_errors(tmp_path, stub, shape):
    run = fake_run(tmp_path)
    source = write(tmp_path / "in" / "bad.nii.gz", np.zeros(shape, np.float32))
    with pytest.raises(DataError) as err:
        segment.segment_paths(run, source, tmp_path / "o.nii.gz", verbose=False)
    assert str(err.value) == (f"{source}: image has shape {shape}; accepted: "
                              "(X, Y, Z) or (X, Y, Z, 1)")
    assert not (tmp_path / "o.nii.gz").exists()


def test_preprocessing_comes_from_the_ann_record_not_config_yaml(tmp_path, stub):
    run = fake_run(tmp_path, normalise="zero_mean", size=[16, 8], slice_axis=1)
    (run / "config.yaml").write_text("data:\n  size: [4, 4]\n  slice_axis: 0\n  normalise: unit\n")
    image = volume((40, 50, 30))
    mask = segment.Segmenter(run, "ann").segment_volume(image)
    assert {s[1:] for s in stub} == {(16, 8, 1)}  # (X, Z) tiles: the record's axis and size
    np.testing.assert_array_equal(mask, expected(image, "zero_mean"))


def test_a_run_without_ann_record_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match="no trained ANN"):
        segment.Segmenter(tmp_path / "run", "ann")


# ----------------------------------------------------------------- folders


def test_folder_tries_every_file_and_lists_failures(tmp_path, stub, folder_state, capsys):
    run = fake_run(tmp_path)
    inputs = tmp_path / "in"
    for name in ("a", "c"):
        write(inputs / f"{name}.nii.gz", volume(seed=ord(name)))
    write(inputs / "b.nii.gz", np.zeros((4, 5, 6, 2), np.float32))
    (inputs / "d.nii.gz").write_bytes(b"not a nifti file")
    (inputs / "notes.txt").write_text("ignored")
    before = folder_state(inputs)
    out = tmp_path / "out"
    with pytest.raises(NengosegError) as err:
        segment.segment_paths(run, inputs, out)
    message = str(err.value)
    assert message.startswith(f"2 of 4 files failed (2 masks written to {out}): {inputs / 'b.nii.gz'}")
    assert "d.nii.gz: cannot read as NIfTI" in message and "\n" not in message
    printed = capsys.readouterr()
    assert f"created output folder {out}" in printed.out
    assert printed.err.count("failed: ") == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "c.nii.gz"]  # successes stay
    np.testing.assert_array_equal(read(out / "c.nii.gz"), expected(volume(seed=ord("c"))))
    assert folder_state(inputs) == before


def test_skip_existing_resumes_and_overwrite_replaces_only_nengoseg_masks(tmp_path, stub):
    run = fake_run(tmp_path)
    inputs, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b", "c"):
        write(inputs / f"{name}.nii.gz", volume(seed=ord(name)))
    segment.segment_paths(run, inputs, out, verbose=False)
    n_calls = len(stub)
    (out / "b.nii.gz").unlink()
    kept = (out / "a.nii.gz").stat().st_mtime_ns
    with pytest.raises(NengosegError, match="a.nii.gz exists; pass --overwrite"):
        segment.segment_paths(run, inputs, out, verbose=False)
    assert segment.segment_paths(run, inputs, out, skip_existing=True, verbose=False) == [
        out / "b.nii.gz"]
    assert len(stub) == n_calls + 1 and (out / "a.nii.gz").stat().st_mtime_ns == kept

    # a mask of another model is not "done"
    other = fake_run(tmp_path / "other", stage_id="y")
    with pytest.raises(NengosegError, match="written by another engine or model"):
        segment.segment_paths(other, inputs, out, skip_existing=True, verbose=False)

    # a file nengoseg did not write is never replaced, even with --overwrite
    foreign = out / "c.nii.gz"
    write(foreign, np.ones((3, 3, 3), np.uint8))
    data = foreign.read_bytes()
    for flags in ({"overwrite": True}, {"skip_existing": True}, {}):
        with pytest.raises(NengosegError) as err:
            segment.segment_paths(run, inputs, out, verbose=False, **flags)
        assert str(err.value) == (
            f"{foreign} exists and was not written by nengoseg (its NIfTI descrip does not "
            "start with 'nengoseg mask'); nengoseg never replaces it: move it away or choose "
            "another output" + ("" if flags else " (2 more outputs are in the way)"))
    assert foreign.read_bytes() == data
    foreign.unlink()
    segment.segment_paths(run, inputs, out, overwrite=True, verbose=False)
    assert (out / "a.nii.gz").stat().st_mtime_ns != kept


def test_output_inside_data_folders_is_refused(tmp_path, stub, folder_state):
    root = tmp_path / "train_data"
    (root / "imagesTr").mkdir(parents=True)
    run = fake_run(tmp_path, root=str(root))
    inputs = tmp_path / "in"
    source = write(inputs / "a.nii.gz", volume())
    before = folder_state(inputs)
    cases = [
        (inputs / "masks", inputs, "the folder of the input"),
        (source, source, "would replace the input"),
        (inputs / "a_mask.nii.gz", source, "the folder of the input"),
        (root / "imagesTr" / "masks", inputs, f"data.root {root} of the run"),
    ]
    for output, given, words in cases:
        with pytest.raises(NengosegError) as err:
            segment.segment_paths(run, given, output, verbose=False)
        assert words in str(err.value)
    assert str(err.value) == (
        f"{root / 'imagesTr' / 'masks'} is inside {root} (data.root {root} of the run); masks "
        "are never written into data folders: give an output path outside them")
    # the shipped sample and images_dir / labels_dir, as recorded
    sample = fake_run(tmp_path / "s", root="sample:hippocampus")
    with pytest.raises(NengosegError, match="is inside .*data.root sample:hippocampus"):
        segment.segment_paths(sample, source, sample_path("hippocampus") / "new" / "a.nii.gz")
    dirs = fake_run(tmp_path / "d", images_dir=str(tmp_path / "im"), labels_dir=str(tmp_path / "lb"))
    with pytest.raises(NengosegError, match="data.labels_dir of the run"):
        segment.segment_paths(dirs, inputs, tmp_path / "lb" / "sub", verbose=False)
    assert not stub and folder_state(inputs) == before
    assert not (root / "imagesTr" / "masks").exists()


def test_missing_output_parent_and_folder(tmp_path, stub, capsys):
    run = fake_run(tmp_path)
    source = write(tmp_path / "in" / "a.nii.gz", volume())
    with pytest.raises(NengosegError) as err:
        segment.segment_paths(run, source, tmp_path / "nope" / "a.nii.gz")
    assert str(err.value) == (f"{tmp_path / 'nope'} does not exist or is not a folder (the "
                              "folder of the output a.nii.gz); create it first")
    assert not (tmp_path / "nope").exists() and not stub
    out = tmp_path / "new" / "masks"
    segment.segment_paths(run, tmp_path / "in", out)
    assert f"created output folder {out}" in capsys.readouterr().out
    assert (out / "a.nii.gz").is_file()
    # an existing folder as the output of one file: the mask goes inside, same name
    segment.segment_paths(run, source, out, overwrite=True, verbose=False)


def test_unwritable_output_folder_fails_before_predicting(tmp_path, stub, monkeypatch):
    run = fake_run(tmp_path)
    write(tmp_path / "in" / "a.nii.gz", volume())
    out = tmp_path / "out"
    out.mkdir()
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and os.path.samefile(dir, out):
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(NengosegError) as err:
        segment.segment_paths(run, tmp_path / "in", out, verbose=False)
    assert str(err.value) == (f"cannot write in the output folder {out}: Permission denied; "
                              "give a writable output folder")
    assert not stub  # nothing was predicted


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_output_folder(tmp_path, stub):
    run = fake_run(tmp_path)
    write(tmp_path / "in" / "a.nii.gz", volume())
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(NengosegError, match="cannot write in the output folder"):
            segment.segment_paths(run, tmp_path / "in", out, verbose=False)
    finally:
        out.chmod(stat.S_IRWXU)
    assert not stub
