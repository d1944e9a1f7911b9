"""`nengoseg segment` for runs trained on 2D images (DRIVE, ISBI 2012): PNG masks out.

A tiny run is trained in this process on three synthetic DRIVE training images laid
out as a DRIVE half (bright pixels are "vessels", so it learns them in a few seconds);
new images of other sizes are segmented through the CLI and checked against the Keras
model's probabilities computed here, tile by tile. The file-safety rules and the other
data set are checked with the stub network of test_segment_folder.py (the "ANN" says
"normalised intensity > 0.5" for every pixel, so every mask pixel is known).
"""

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from nengoseg import cli, segment, tiling
from nengoseg.data import normalise_volume
from nengoseg.errors import ConfigError, DataError, NengosegError
from nengoseg.mask_files import mark_of
from test_segment_folder import fake_run, stub  # noqa: F401  (stub: a fixture)

GRAY = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as the DRIVE loader (written out here)
TRAIN_H, TRAIN_W = 20, 24


def circle(h, w, radius):
    rows, cols = np.mgrid[:h, :w]
    return (rows - h / 2) ** 2 + (cols - w / 2) ** 2 < radius**2


def fundus(h, w, seed, fov=None, p=0.2):
    """Dark RGB noise with bright "vessel" pixels (inside ``fov`` only, when given)."""
    rng = np.random.default_rng(seed)
    vessel = rng.random((h, w)) < p
    if fov is not None:
        vessel &= fov
    rgb = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    rgb[vessel] += np.uint8(150)
    return rgb, vessel


def save_gif(mask, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(path)


def save_rgb(rgb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)
    return path


def gray_of(rgb):
    return (rgb.astype(np.float64) @ GRAY) / 255


def read_png(path):
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "L"
        return np.asarray(img)


@pytest.fixture(scope="module")
def drive_run(tmp_path_factory):
    """A run trained (30 short epochs, in this process) on a synthetic DRIVE training half."""
    tmp = tmp_path_factory.mktemp("drive")
    root = tmp / "training"
    fov = circle(TRAIN_H, TRAIN_W, 9)
    for name in ("21", "22", "23"):
        rgb, vessel = fundus(TRAIN_H, TRAIN_W, int(name), fov)
        save_rgb(rgb, root / "images" / f"{name}_training.tif")
        save_gif(vessel, root / "1st_manual" / f"{name}_manual1.gif")
        save_gif(fov, root / "mask" / f"{name}_training_mask.gif")
    cfg, run = tmp / "tiny.yaml", tmp / "run"
    cfg.write_text(f"""
name: tiny_drive
seed: 3
data:
  dataset: drive
  root: {root}
  size: [8, 8]
  test_fraction: 0.34
  val_fraction: 0.0
model:
  kind: unet
  options: {{filters: 4, depth: 2, dropout: 0.0}}
train:
  learning_rate: 0.01
  epochs: 30
  batch_size: 8
  monitor: loss
""")
    assert cli.main(["train-ann", "--config", str(cfg), "--run-dir", str(run)]) == 0
    return run


def keras_probabilities(run, gray, overlap):
    """Vessel probabilities of a gray image, computed here: the run's Keras model on 8x8
    tiles, sigmoid, averaged with nnU-Net's Gaussian (sigma = tile / 8, floor 1e-4)."""
    import tensorflow as tf

    model = tf.keras.models.load_model(run / "ann" / "model.h5", compile=False)
    h, w = gray.shape
    starts = [(y, x) for y in tiling.tile_starts(h, 8, overlap)
              for x in tiling.tile_starts(w, 8, overlap)]
    tiles = np.stack([gray[y:y + 8, x:x + 8] for y, x in starts])[..., None].astype(np.float32)
    logits = model.predict(tiles, verbose=0)[..., 0].astype(np.float64)
    centre = np.exp(-((np.arange(8) - 3.5) ** 2) / (2 * 1.0**2))
    weight = np.maximum(np.outer(centre, centre) / centre.max() ** 2, 1e-4)
    total, weights = np.zeros((h, w)), np.zeros((h, w))
    for (y, x), logit in zip(starts, logits):
        total[y:y + 8, x:x + 8] += weight / (1 + np.exp(-logit))
        weights[y:y + 8, x:x + 8] += weight
    return total / weights


# ----------------------------------------------------------------- a trained DRIVE run


def test_drive_test_half_to_png_masks_with_field_of_view(drive_run, tmp_path, capsys,
                                                         folder_state):
    half = tmp_path / "test"
    shapes = {"01": (29, 37), "02": (16, 40), "03": (31, 22)}  # none a multiple of the tile
    truth = {}
    for name, (h, w) in shapes.items():
        rgb, truth[name] = fundus(h, w, int(name), p=0.15)  # vessels outside the FOV too
        save_rgb(rgb, half / "images" / f"{name}_test.tif")
        if name != "03":  # 03 has no field-of-view mask
            save_gif(circle(h, w, min(h, w) / 2 - 1), half / "mask" / f"{name}_test_mask.gif")
    before = folder_state(half)
    out = tmp_path / "masks"
    assert cli.main(["segment", str(half / "images"), str(out), "--model", str(drive_run)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["01_test.png", "02_test.png", "03_test.png"]
    mark = segment.model_mark(drive_run, "ann")
    assert mark.startswith("nengoseg mask engine=ann model=ann:")
    for name, (h, w) in shapes.items():
        png = out / f"{name}_test.png"
        mask = read_png(png)
        assert mask.shape == (h, w) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert mark_of(png) == mark
        found, vessels = mask > 0, truth[name]
        fov = circle(h, w, min(h, w) / 2 - 1)
        scored = np.ones_like(fov) if name == "03" else fov
        jaccard = (found & vessels & scored).sum() / ((found | vessels) & scored).sum()
        assert jaccard > 0.7  # it found the bright "vessels": not shifted, flipped or resized
        if name == "03":
            assert "no field-of-view mask found" in printed
            assert (found & ~fov).any()  # nothing cleared
        else:
            assert (vessels & ~fov).sum() > 5 and not found[~fov].any()  # cleared outside
            assert f"cleared outside the field of view {half / 'mask' / f'{name}_test_mask.gif'}" \
                in printed
    assert "vessel pixels = 255, engine ann" in printed
    assert folder_state(half) == before  # inputs and the FOV masks only read


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_ann_mask_is_the_thresholded_tiled_keras_model(drive_run, tmp_path, overlap):
    rgb, _ = fundus(24, 32, 7, p=0.3)
    source = save_rgb(rgb, tmp_path / "in" / "fundus.tiff")  # not a DRIVE layout: no FOV
    out = tmp_path / "fundus_mask.png"
    assert segment.segment_paths(drive_run, source, out, overlap=overlap, verbose=False) == [out]
    probs = keras_probabilities(drive_run, gray_of(rgb), overlap)
    mask = read_png(out)
    clear = np.abs(probs - 0.5) > 1e-4  # float32 against float64 rounding
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(mask[clear], np.where(probs > 0.5, 255, 0)[clear])
    assert 0.1 < (mask > 0).mean() < 0.6  # both classes: the check is not trivial


def test_cli_refuses_foreign_png_and_skips_its_own(drive_run, tmp_path, capsys):
    rgb, _ = fundus(20, 24, 5)
    source = save_rgb(rgb, tmp_path / "in" / "a.tif")
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / "a.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", "drawn by hand")
    Image.fromarray(np.full((20, 24), 255, np.uint8), "L").save(foreign, pnginfo=info)
    data = foreign.read_bytes()
    for flags in ([], ["--overwrite"], ["--skip-existing"]):
        assert cli.main(["segment", str(source), str(out), "--model", str(drive_run),
                         *flags]) == 2
        assert foreign.read_bytes() == data
    assert f"{foreign} exists and was not written by nengoseg (its PNG Description text does " \
           "not start with 'nengoseg mask')" in capsys.readouterr().err
    foreign.unlink()
    assert cli.main(["segment", str(source), str(out), "--model", str(drive_run)]) == 0
    ours = foreign.read_bytes()
    capsys.readouterr()
    assert cli.main(["segment", str(source), str(out), "--model", str(drive_run),
                     "--skip-existing"]) == 0
    assert "skipping 1 of 1 files: their masks exist" in capsys.readouterr().out
    assert foreign.read_bytes() == ours


# ----------------------------------------------------------------- the stub network


def test_unit_is_the_loaders_values_and_zero_mean_normalises(tmp_path, stub):
    rgb = np.random.default_rng(0).integers(0, 150, (21, 30, 3)).astype(np.uint8)  # gray < 0.6
    source = save_rgb(rgb, tmp_path / "in" / "x.tif")
    gray = gray_of(rgb)
    for normalise, prepared in (("unit", gray), ("zero_mean", normalise_volume(gray, "zero_mean"))):
        run = fake_run(tmp_path / normalise, dataset="drive", normalise=normalise)
        out = tmp_path / f"{normalise}.png"
        segment.segment_paths(run, source, out, verbose=False)
        clear = np.abs(prepared - 0.5) > 1e-4  # float32 against float64 rounding
        expected = np.where(prepared > 0.5, 255, 0)
        np.testing.assert_array_equal(read_png(out)[clear], expected[clear])
        assert clear.mean() > 0.99 and 0.02 < (expected > 0).mean() < 0.98
    # "unit" keeps the loader's values: percentile scaling would have moved the threshold
    assert ((gray > 0.5) != (normalise_volume(gray, "unit") > 0.5)).mean() > 0.05
    assert {s[1:] for s in stub} == {(8, 8, 1)}


def test_isbi_gray_images_and_the_foreground_in_the_message(tmp_path, stub, capsys):
    run = fake_run(tmp_path, dataset="isbi2012", foreground="cell")
    inputs = tmp_path / "in"
    inputs.mkdir()
    gray = np.random.default_rng(1).integers(0, 256, (19, 27)).astype(np.uint8)
    Image.fromarray(gray, "L").save(inputs / "0.png")
    Image.fromarray(gray, "L").save(inputs / "1.tif")
    Image.fromarray(np.stack([gray] * 3, -1), "RGB").save(inputs / "2.png")  # the loader refuses
    (inputs / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    with pytest.raises(NengosegError) as err:
        segment.segment_paths(run, inputs, out)
    assert str(err.value) == (
        f"1 of 3 files failed (2 masks written to {out}): {inputs / '2.png'}: image has Pillow "
        "mode RGB; expected a PNG of mode L")
    printed = capsys.readouterr().out
    assert "cell pixels = 255" in printed and "field" not in printed
    assert "ignoring 1 entries" in printed and "(first: notes.txt)" in printed
    for name in ("0.png", "1.png"):
        np.testing.assert_array_equal(read_png(out / name), np.where(gray / 255 > 0.5, 255, 0))


def test_drive_field_of_view_clears_exactly_and_bad_files_are_listed(tmp_path, stub, capsys):
    run = fake_run(tmp_path, dataset="drive")
    images = tmp_path / "half" / "images"
    rgb = np.full((18, 26, 3), 40, np.uint8)
    rgb[:, ::3] = 250  # bright columns everywhere, inside and outside the field of view
    fov = circle(18, 26, 8)
    for name in ("21", "22", "24"):
        save_rgb(rgb, images / f"{name}_test.tif")
        save_gif(fov, images.parent / "mask" / f"{name}_test_mask.gif")
    (images / "23_test.tif").write_bytes(b"II*\x00 this is no TIFF")
    Image.fromarray(np.where(fov, 128, 0).astype(np.uint8), "L").save(
        images.parent / "mask" / "24_test_mask.gif")  # not 0 / 255: refused as the loader does
    out = tmp_path / "out"
    with pytest.raises(NengosegError) as err:
        segment.segment_paths(run, images, out)
    message = str(err.value)
    assert message.startswith(f"2 of 4 files failed (2 masks written to {out}): "
                              f"{images / '23_test.tif'}: cannot read as an image")
    assert f"{images.parent / 'mask' / '24_test_mask.gif'}: mask values [128]" in message
    assert "\n" not in message and capsys.readouterr().err.count("failed: ") == 2
    assert sorted(p.name for p in out.iterdir()) == ["21_test.png", "22_test.png"]
    expected = np.where((gray_of(rgb) > 0.5) & fov, 255, 0)
    assert expected.any() and (gray_of(rgb)[~fov] > 0.5).any()
    np.testing.assert_array_equal(read_png(out / "21_test.png"), expected)
    # the folder's masks are kept and redone only with --overwrite
    done = (out / "21_test.png").read_bytes()
    (images / "23_test.tif").unlink()
    (images / "24_test.tif").unlink()
    assert segment.segment_paths(run, images, out, skip_existing=True, verbose=False) == []
    assert (out / "21_test.png").read_bytes() == done
    with pytest.raises(NengosegError, match="21_test.png exists; pass --overwrite"):
        segment.segment_paths(run, images, out, verbose=False)
    other = fake_run(tmp_path / "other", stage_id="y", dataset="drive")
    with pytest.raises(NengosegError, match="written by another engine or model"):
        segment.segment_paths(other, images, out, skip_existing=True, verbose=False)
    assert segment.segment_paths(other, images, out, overwrite=True, verbose=False) == [
        out / "21_test.png", out / "22_test.png"]
    assert mark_of(out / "21_test.png") == "nengoseg mask engine=ann model=ann:y"


@pytest.mark.parametrize("case", ["nifti output", "nifti input", "into mask/", "into images/",
                                  "same stem", "stack", "no images"])
def test_paths_are_checked_before_predicting(tmp_path, stub, case, folder_state):
    run = fake_run(tmp_path, dataset="drive")
    images = tmp_path / "half" / "images"
    source = save_rgb(np.zeros((10, 12, 3), np.uint8), images / "01_test.tif")
    given, output = source, tmp_path / "o.png"
    if case == "nifti output":
        output, words = tmp_path / "o.nii.gz", "the output must end in .png"
    elif case == "nifti input":
        given = tmp_path / "v.nii.gz"
        given.write_bytes(b"\x00" * 400)
        words = "v.nii.gz: not an input this run segments; expected a 2D image file (.png/.tif/"
    elif case == "into mask/":
        output, words = images.parent / "mask" / "01.png", "the DRIVE mask/ folder next to"
    elif case == "into images/":
        given, output, words = images, images, "the folder of the input"
    elif case == "same stem":
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(images / "01_test.png")
        given, output = images, tmp_path / "out"
        words = f"{images / '01_test.png'} and {source} would both be written to"
    elif case == "stack":
        frame = Image.fromarray(np.zeros((10, 12, 3), np.uint8), "RGB")
        frame.save(source, save_all=True, append_images=[frame])
        words = f"{source}: the TIFF file holds 2 images (a stack?)"
    else:
        (tmp_path / "empty").mkdir()
        given, output = tmp_path / "empty", tmp_path / "out"
        words = "no .png/.tif/.tiff/.gif/.jpg/.jpeg image files in this folder"
    before = folder_state(tmp_path / "half")
    with pytest.raises((NengosegError, DataError)) as err:
        segment.segment_paths(run, given, output, verbose=False)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not stub and not output.is_file() and folder_state(tmp_path / "half") == before


def test_file_input_into_an_existing_folder_and_other_datasets(tmp_path, stub):
    run = fake_run(tmp_path, dataset="drive")
    source = save_rgb(np.full((6, 5, 3), 200, np.uint8), tmp_path / "in" / "scan.v2.jpeg")
    (tmp_path / "out").mkdir()
    assert segment.segment_paths(run, source, tmp_path / "out", verbose=False) == [
        tmp_path / "out" / "scan.v2.png"]  # smaller than a tile: padded, not cropped
    assert read_png(tmp_path / "out" / "scan.v2.png").shape == (6, 5)
    airplanes = fake_run(tmp_path / "a", dataset="airplanes")
    with pytest.raises(ConfigError, match="this run was trained on 'airplanes'"):
        segment.Segmenter(airplanes, "ann")
    with pytest.raises(ConfigError, match="this run was trained on 'airplanes'"):
        segment.segment_paths(airplanes, source, tmp_path / "x.png", verbose=False)
    assert not stub[1:]  # one image, one call
