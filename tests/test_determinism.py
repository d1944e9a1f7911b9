"""Same config and seed, same weights and scores (CPU, same machine and stack).

`nengoseg.determinism.seed_everything` seeds Python, NumPy and TensorFlow and turns
on TensorFlow's deterministic ops; the ANN stage and co-training call it first.
Training twice, in one process and in a fresh one, must give bit-identical weights,
histories and scores. Co-training runs NengoDL and the engine with deterministic
ops on, so these tests also show that none of their ops refuses determinism on CPU.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from nengoseg import convert as nsconvert
from nengoseg.config import resolve
from nengoseg.determinism import seed_everything
from nengoseg.experiment_data import load_experiment_data
from nengoseg.train import train_ann

ROOT = Path(__file__).resolve().parents[1]
TINY = """
name: tiny_determinism
seed: 4
data:
  root: sample:hippocampus
  size: [24, 24]
  max_subjects: 6
  test_fraction: 0.34
  val_fraction: 0.17
model:
  kind: unet
  options: {filters: 4, depth: 2, dropout: 0.1}
train:
  loss: dice
  learning_rate: 0.01
  epochs: 2
  batch_size: 8
"""


def ann_weights(run):
    model = tf.keras.models.load_model(run / "ann" / "model.h5", compile=False)
    return model.get_weights()


def assert_same_arrays(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_seed_everything_repeats_a_keras_fit():
    """Initialisation, dropout and shuffling all follow the seed."""

    def fit(seed):
        seed_everything(seed)
        x = np.random.default_rng(0).random((64, 8, 8, 1)).astype(np.float32)
        y = (x > 0.5).astype(np.float32)
        inp = tf.keras.Input((8, 8, 1))
        h = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
        h = tf.keras.layers.Dropout(0.3)(h)
        model = tf.keras.Model(inp, tf.keras.layers.Conv2D(1, 1, activation="sigmoid")(h))
        model.compile(tf.keras.optimizers.Adam(0.01), "binary_crossentropy")
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0).history
        return model.get_weights(), history["loss"]

    weights, loss = fit(7)
    again, loss_again = fit(7)
    assert_same_arrays(weights, again)
    assert loss == loss_again
    other, _ = fit(8)
    assert not np.array_equal(weights[0], other[0])


def test_same_config_and_seed_give_the_same_ann_weights_and_scores(tmp_path):
    cfg = resolve(yaml.safe_load(TINY))
    data = load_experiment_data(cfg)
    first = train_ann(cfg, tmp_path / "a", data, verbose=False)
    second = train_ann(cfg, tmp_path / "b", data, verbose=False)
    # and in a fresh process (nothing left over from this one's TensorFlow state)
    (tmp_path / "tiny.yaml").write_text(TINY)
    script = (
        "import sys, yaml; from nengoseg.config import resolve; "
        "from nengoseg.experiment_data import load_experiment_data; "
        "from nengoseg.train import train_ann; "
        "cfg = resolve(yaml.safe_load(open(sys.argv[1]).read())); "
        "train_ann(cfg, sys.argv[2], load_experiment_data(cfg), verbose=False)"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "tiny.yaml"),
                           str(tmp_path / "c")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    third = json.loads((tmp_path / "c" / "results.json").read_text())["stages"]["ann"]

    weights = ann_weights(tmp_path / "a")
    histories = [json.loads((tmp_path / run / "ann" / "history.json").read_text())
                 for run in "abc"]
    for run, results in (("b", second), ("c", third)):
        assert_same_arrays(weights, ann_weights(tmp_path / run))
        assert histories[0] == histories["abc".index(run)]
        for part in ("test", "val"):
            assert results[part] == first[part], (run, part)
        assert results["best_epoch"] == first["best_epoch"]
    assert first["test"]["dice_2d_mean"] > 0  # a real, trained network


@pytest.mark.parametrize("engine", ["engine", "nengo-dl"])
def test_same_seed_gives_the_same_cotrained_snn_and_scores(tmp_path, engine):
    """Poisson input spikes and rate regularisation, two epochs, twice."""
    from test_cotrain import tiny_config, tiny_data, tiny_segmenter, write_ann

    from nengoseg.train.cotrain import cotrain_stage

    cfg = tiny_config({"engine": engine, "epochs": 2, "rate_target_hz": 50.0,
                       "monitor": "loss"},
                      {"input_coding": "poisson", "scale_firing_rates": 100})
    cfg["evaluate"]["engine"] = "engine"
    data = tiny_data()
    stages, runs = [], [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        write_ann(run, tiny_segmenter(), cfg, data)
        stages.append(cotrain_stage(cfg, run, data, verbose=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [nsconvert.load_conversion(run / "hybrid")[0] for run in runs]
    assert_same_arrays(models[0].get_weights(), models[1].get_weights())
    assert not np.array_equal(models[0].get_layer("c1").get_weights()[0],
                              tiny_segmenter().get_layer("c1").get_weights()[0])  # it trained
    for key in ("scores", "firing_rates_hz", "history_last", "best_epoch"):
        assert stages[0][key] == stages[1][key], key
    outputs = [np.load(run / "hybrid" / "predictions" / "hybrid_snn.npz")["outputs"] for run in runs]
    np.testing.assert_array_equal(*outputs)
