"""Gaussian denoising (Spiking-UNet, section 3.1 and Table 2): training patches, test
tiles, PSNR / SSIM against independent computations, the experiment loader, bad configs,
and a tiny `nengoseg run` through ANN, conversion and spiking-flow fine-tuning."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.ndimage import correlate1d

from nengoseg import cli, evaluate, metrics
from nengoseg.config import resolve
from nengoseg.data import denoising
from nengoseg.errors import ConfigError
from nengoseg.experiment_data import Part, load_experiment_data


def _write_pngs(folder, shapes, mode="L", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, shape in enumerate(shapes):
        channels = (3,) if mode == "RGB" else ()
        # smooth images in [50, 200]: no clipping at 0 or 255 after small changes
        base = rng.uniform(50, 200, (shape[0] // 4 + 1, shape[1] // 4 + 1) + channels)
        image = np.kron(base, np.ones((4, 4) + (1,) * len(channels)))[: shape[0], : shape[1]]
        Image.fromarray(image.astype(np.uint8), mode).save(folder / f"{i:03d}.png")


@pytest.fixture
def folders(tmp_path):
    _write_pngs(tmp_path / "train", [(40, 40)] * 6)
    _write_pngs(tmp_path / "tests" / "Set12", [(20, 28), (24, 16)], seed=1)
    return tmp_path


def _config(folders, **data):
    return resolve({"data": {"dataset": "denoising", "root": str(folders / "train"),
                             "test_root": str(folders / "tests"), "test_set": "Set12",
                             "size": [8, 8], "patches_per_image": 3, "val_fraction": 0.34,
                             "test_sigmas": [15, 50], **data}})


# ---- data ---------------------------------------------------------------------------


def test_training_patches_are_seeded_noisy_crops(folders):
    images, _ = denoising.load_clean(folders / "train")
    noisy, noise, index, sigmas = denoising.training_patches(images, (8, 8), 5, (10, 30), seed=3)
    assert noisy.shape == noise.shape == (30, 8, 8, 1) and index.tolist() == sorted(index)
    assert np.all((10 <= sigmas) & (sigmas <= 30))
    clean = noisy - noise
    for patch, i in zip(clean, index):  # each clean patch is a crop of its own image
        image = images[i][..., 0]
        found = any(np.allclose(image[r:r + 8, c:c + 8], patch[..., 0], atol=1e-6)
                    for r in range(33) for c in range(33))
        assert found
    again = denoising.training_patches(images, (8, 8), 5, (10, 30), seed=3)
    np.testing.assert_array_equal(again[0], noisy)
    # the noise of a patch has the std of its sigma (8x8 values: loosely)
    big, big_noise, _, big_sigmas = denoising.training_patches(images, (40, 40), 1, (25, 25))
    assert np.std(big_noise) == pytest.approx(25 / 255, rel=0.05)


def test_noisy_tiles_cover_the_image_and_untile_inverts(folders):
    image = denoising.load_clean(folders / "tests" / "Set12")[0][0]  # 20 x 28
    noisy, noise, inside = denoising.noisy_tiles(image, 25, (8, 8), seed=0)
    assert noisy.shape == (3 * 4, 8, 8, 1) and inside.shape == (12, 8, 8)
    np.testing.assert_allclose(denoising.untile(noisy - noise, (20, 28)), image, atol=1e-6)
    assert denoising.untile(inside, (24, 32)).sum() == 20 * 28  # the padding is outside
    again = denoising.noisy_tiles(image, 25, (8, 8), seed=0)[0]
    np.testing.assert_array_equal(again, noisy)


# ---- PSNR and SSIM ------------------------------------------------------------------


def _ssim_reference(a, b, max_val=1.0, size=11, sigma=1.5):
    """SSIM of Wang et al. (2004) by hand: Gaussian window, 'valid' region, mean map."""
    x = np.arange(size) - (size - 1) / 2
    window = np.exp(-(x**2) / (2 * sigma**2))
    window /= window.sum()

    def blur(image):
        out = correlate1d(correlate1d(image, window, axis=0, mode="constant"), window, axis=1,
                          mode="constant")
        half = size // 2
        return out[half:-half, half:-half]

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def test_tf_image_ssim_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    clean = rng.random((40, 36))
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    assert metrics.ssim(noisy, clean) == pytest.approx(_ssim_reference(noisy, clean), abs=1e-4)
    mse = np.mean((noisy - clean) ** 2)
    assert metrics.psnr(noisy, clean) == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)


def test_denoising_scores_put_tiles_back_and_score_whole_images(folders):
    data = load_experiment_data(_config(folders))
    test = data.test
    assert data.task == "denoising" and sorted(test.layout) == [
        "000.png@15", "000.png@50", "001.png@15", "001.png@50"]
    # a prediction off the noise by 0.02 everywhere: every image at 20 log10(1 / 0.02) dB
    # (the clean images lie in [50, 200] / 255, so clipping never acts)
    scores = evaluate.score("denoising", test.y + 0.02, test)
    assert scores["n_images"] == 4 and set(scores["psnr_by_sigma"]) == {"15", "50"}
    assert scores["psnr_mean"] == pytest.approx(20 * np.log10(1 / 0.02), abs=1e-3)
    assert scores["psnr_std"] == pytest.approx(0, abs=1e-3)
    # a wrong tile counts in its own image only, scored over the whole image
    off = test.y.copy()
    first = np.nonzero(test.groups == "001.png@50")[0][0]
    off[first] += 0.1
    scores = evaluate.score("denoising", off, test)
    clean = test.x - test.y
    mse = np.sum(0.1**2 * test.roi[first]) / (24 * 16)
    assert scores["psnr_per_image"]["001.png@50"] == pytest.approx(10 * np.log10(1 / mse),
                                                                  abs=1e-2)
    assert np.isinf(scores["psnr_per_image"]["000.png@15"])
    assert clean.min() > 0.15  # the check above relies on no clipping


def test_experiment_split_and_shapes(folders):
    data = load_experiment_data(_config(folders))
    assert data.input_shape == (8, 8, 1) and data.n_outputs == 1
    assert len(data.split["val"]) == 2 and len(data.split["train"]) == 4
    assert not set(data.train.groups) & set(data.val.groups)  # split by image
    assert data.test.x.shape == (2 * (3 * 4 + 3 * 2), 8, 8, 1)  # 20x28 and 24x16, two sigmas


def test_colour_test_set_needs_three_channels(folders):
    with pytest.raises(ConfigError, match="CBSD68 is colour.*data.channels: 3"):
        load_experiment_data(_config(folders, test_set="CBSD68"))
    _write_pngs(folders / "train_rgb", [(40, 40)] * 4, mode="RGB")
    _write_pngs(folders / "tests" / "CBSD68", [(16, 16)], mode="RGB")
    data = load_experiment_data(_config(folders, test_set="CBSD68", channels=3,
                                        root=str(folders / "train_rgb")))
    assert data.input_shape == (8, 8, 3) and data.test.x.shape[-1] == 3


@pytest.mark.parametrize("key, value, message", [
    ("test_sigmas", [25, 25], "distinct integers"),
    ("sigma_range", [30, 10], r"\[low, high\]"),
    ("test_set", "BSD500", "one of"),
])
def test_bad_denoising_settings_are_named(folders, key, value, message):
    with pytest.raises(ConfigError, match=f"data.{key}.*{message}"):
        _config(folders, **{key: value})


def test_missing_test_root_is_named(folders):
    with pytest.raises(ConfigError, match="data.test_root is missing"):
        load_experiment_data(_config(folders, test_root=None))


# ---- the pipeline ---------------------------------------------------------------------


def test_tiny_denoising_run_reports_psnr_and_ssim(folders, tmp_path):
    cfg = {
        "name": "tiny_denoising", "seed": 0,
        "data": {"dataset": "denoising", "root": str(folders / "train"),
                 "test_root": str(folders / "tests"), "test_set": "Set12", "size": [8, 8],
                 "patches_per_image": 8, "val_fraction": 0.34, "test_sigmas": [25]},
        "model": {"kind": "unet", "options": {"filters": 4, "depth": 2}},
        "train": {"loss": "mae", "epochs": 3, "batch_size": 8},
        "convert": {"neuron_model": "multi_threshold", "n_steps": 4, "readout_steps": 4,
                    "synapse": None},
        "cotrain": {"method": "spiking_flow", "epochs": 1, "batch_size": 8,
                    "max_train_examples": 16},
        "loihi": {"enabled": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    assert cli.main(["run", "--config", str(path), "--run-dir", str(run_dir)]) == 0
    stages = json.loads((run_dir / "results.json").read_text())["stages"]
    for scores in (stages["ann"]["test"], stages["converted_snn"]["scores"],
                   stages["hybrid_snn"]["scores"]):
        assert scores["n_images"] == 2 and set(scores["psnr_by_sigma"]) == {"25"}
        assert np.isfinite(scores["psnr_mean"]) and 0 < scores["ssim_mean"] <= 1
    assert stages["converted_snn"]["settings"]["readout"] == "noise_map"
    report = (run_dir / "report.md").read_text()
    assert "PSNR σ25 (dB)" in report and "SSIM σ25" in report
    assert (run_dir / "figures" / "denoised.png").exists()

    # the paper's energy table (Table 5) on this run, against a count by hand
    from nengoseg import paper_energy
    from nengoseg.loihi import limits

    table = paper_energy.table5(run_dir)
    ann, converted, tuned = table["rows"]
    assert ann.flops == ann.synops and ann.joules_paper == pytest.approx(ann.flops * 4.6e-12)
    payload = stages["hybrid_snn"]
    steps = payload["settings"]["n_steps"] * payload["settings"]["dt"]
    spikes = sum(payload["firing_rates_hz"][k] * steps * n
                 for k, n in payload["neurons_per_layer"].items())
    first = table["first_layer_macs"]
    assert tuned.flops == pytest.approx(spikes + first * 4)
    assert tuned.joules_paper == pytest.approx(spikes * limits.ENERGY_PER_AC_45NM
                                               + first * 4 * limits.ANN_ENERGY_PER_MAC)
    assert tuned.synops >= spikes  # every spike drives at least one synapse
    assert tuned.metric == stages["hybrid_snn"]["scores"]["psnr_mean"]
    assert "FLOPs (paper, eq. 13)" in paper_energy.markdown(table)

    # the latency report reads PSNR and SSIM against T
    assert cli.main(["latency", "--config", str(path), "--run-dir", str(run_dir),
                     "--steps", "2", "4"]) == 0
    rows = json.loads((run_dir / "latency.json").read_text())["rows"]
    assert [r["n_steps"] for r in rows] == [None, 2, 4, 2, 4]
    assert all(np.isfinite(r["scores"]["psnr_mean"]) for r in rows)
    assert "| PSNR (dB) | SSIM |" in (run_dir / "latency.md").read_text()
