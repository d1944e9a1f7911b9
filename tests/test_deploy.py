"""`deploy_stage` and `nengoseg deploy` on a tiny run folder (untrained weights)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from test_train_ann import nengoseg

TINY = """
name: tiny_loihi
seed: 2
data:
  root: sample:hippocampus
  size: [8, 8]
  max_subjects: 6
  test_fraction: 0.34
  val_fraction: 0.0
convert:
  scale_firing_rates: 200
  synapse: 0.005
  n_steps: 10
evaluate:
  max_subjects: 1
  minibatch_size: 4
loihi:
  n_images: 3
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from nengoseg import rundir
    from nengoseg.config import load_config
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.train.ann import adopt_model

    from nengoseg import convert as nc

    tmp = tmp_path_factory.mktemp("deploy")
    cfg_path, run = tmp / "tiny.yaml", tmp / "run"
    cfg_path.write_text(TINY)
    L = tf.keras.layers
    x = L.Input((8, 8, 1))
    a = L.Conv2D(2, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(a)
    c = L.Conv2DTranspose(2, 3, strides=2, padding="same", activation="relu")(b)
    model = tf.keras.Model(x, L.Conv2D(1, 1)(L.Concatenate()([a, c])))
    settings = nc.ConversionSettings(scale_firing_rates=200.0, synapse=0.005, n_steps=10)
    converted = nc.convert(model, settings)
    # the run's ANN and conversion stages, recorded as made with the tiny config
    cfg = load_config(cfg_path)
    data = load_experiment_data(cfg)
    adopt_model(cfg, run, data, model)
    prov = rundir.provenance(cfg, "convert", rundir.data_fingerprint(data),
                             {"ann": rundir.stage_id(run, "ann")})
    with rundir.writing_stage(run, "convert", prov) as new:
        nc.save_conversion(new.path, model, converted.settings)
    return cfg_path, run


def test_deploy_stage_writes_the_loihi_stage(run_folder):
    from nengoseg.config import load_config
    from nengoseg.deploy import deploy_stage
    from nengoseg.experiment_data import load_experiment_data

    cfg_path, run = run_folder
    cfg = load_config(cfg_path)
    payload = deploy_stage(cfg, run, load_experiment_data(cfg), verbose=False)
    stage = json.loads((run / "results.json").read_text())["stages"]["loihi"]
    assert stage["target"] == "sim" and stage["n_images"] == 3 and stage["n_steps"] == 10
    assert "dice_2d_mean" in stage["scores"] and "dice_2d_mean" in stage["nengo_dl_scores"]
    assert 0 <= stage["agreement_dice"] <= 1 and stage["steps_per_second"] > 0
    assert set(stage["energy"]) == {"ann", "loihi"}
    assert stage["energy"]["loihi"]["joules_per_inference"] > 0 and stage["energy_method"]
    assert stage["resources"]["cores"] >= 3 and stage["resources"]["chips"] == 1
    assert stage["source"].endswith("snn") and stage["firing_rates_hz"]
    assert (run / "loihi" / "resources.md").read_text().count("|") > 10
    assert (run / "loihi" / "predictions" / "loihi.npz").is_file()
    again = deploy_stage(cfg, run, load_experiment_data(cfg), verbose=False)
    assert again == json.loads(json.dumps(payload, default=lambda v: v.tolist()))


def test_cli_deploy_bad_target_is_one_line(run_folder):
    cfg_path, run = run_folder
    for target, words in (("gpu", "'sim'"), ("loihi", "NxSDK")):
        proc = nengoseg("deploy", "--config", str(cfg_path), "--run-dir", str(run),
                        "--target", target)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2
        last = err.strip().splitlines()[-1]  # (TensorFlow may log before it)
        assert last.startswith("nengoseg: error:") and words in last


def test_segment_engine_loihi_predicts_slices(run_folder):
    import shutil

    from nengoseg.segment import Segmenter

    cfg_path, run = run_folder
    shutil.copy(cfg_path, run / "config.yaml")
    segmenter = Segmenter(run, "loihi")
    masks = segmenter.predict_slices(np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)))
    assert masks.shape == (2, 8, 8) and masks.dtype == bool
