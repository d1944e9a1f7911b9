"""Hybrid co-training (nengoseg.train.cotrain) on tiny networks and data made by hand."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from nengoseg.config import load_config, resolve
from nengoseg.convert import ConversionSettings, convert, load_conversion, run_snn
from nengoseg.convert.layers import SoftLIF
from nengoseg.errors import ConfigError
from nengoseg.experiment_data import ExperimentData, Part, load_experiment_data
from nengoseg.neurons import HybridRectifiedLinear, HybridSoftLIF
from nengoseg.train.ann import adopt_model
from nengoseg.train.cotrain import (
    Batches,
    compile_cotraining,
    cotrain_stage,
    _engine_factory,
    export_model,
    hybrid_network,
    task_metric,
)
from nengoseg.train.cotrain_nengo_dl import NengoDLTrainable, keras_bias_for
from nengoseg.train.snn_losses import RateRegularisation, ReadoutLoss

L = tf.keras.layers
ROOT = Path(__file__).resolve().parents[1]


def part(n, seed, shape=(8, 8, 1)):
    """Images and a mask the network can learn (bright pixels), two slices per subject."""
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + shape).astype(np.float32)
    y = (x > 0.6).astype(np.uint8)
    return Part(x, y, np.array([f"s{seed}_{i // 2}" for i in range(n)]), np.zeros(n, int))


def tiny_data(n_train=16):
    return ExperimentData("segmentation", part(n_train, 0), part(4, 1), part(4, 2), {})


def tiny_segmenter(seed=0):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    return tf.keras.Model(inp, L.Conv2D(1, 1, activation="sigmoid", name="out")(x))


def tiny_config(cotrain=None, convert_=None):
    return resolve({
        "seed": 3,
        "train": {"loss": "bce"},
        "convert": {"scale_firing_rates": 20, "synapse": 0.005, "n_steps": 8, **(convert_ or {})},
        "cotrain": {"engine": "nengo-dl", "epochs": 3, "learning_rate": 0.01, "batch_size": 4,
                    **(cotrain or {})},
        "evaluate": {"minibatch_size": 4, "engine": "nengo-dl"},
    })


def write_ann(run, model, cfg, data):
    """The run's ANN stage: ``model``, recorded as trained with ``cfg`` on ``data``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adopt_model(cfg, run, data, model)


def results(run):
    return json.loads((run / "results.json").read_text())["stages"]


# ---------------------------------------------------------------- the stage


def test_cotraining_lowers_the_spiking_loss_and_the_saved_folder_rebuilds_it(tmp_path, capfd):
    run = tmp_path / "run"
    cfg = tiny_config({"epochs": 4, "learning_rate": 0.03}, {"scale_firing_rates": 100})
    data = tiny_data()
    write_ann(run, tiny_segmenter(), cfg, data)
    stage = cotrain_stage(cfg, run, data)

    history = json.loads((run / "hybrid" / "history.json").read_text())
    assert len(history["loss"]) == stage["epochs_run"] == 4
    # losses of the spiking forward passes (training and validation)
    assert history["loss"][-1] < history["loss"][0]
    assert min(history["val_loss"]) < history["val_loss"][0]
    assert stage["engine"] == stage["cotrain_engine"] == "nengo-dl"
    assert stage["seconds_per_epoch"] > 0
    assert stage["mean_firing_rate_hz"] > 0 and set(stage["firing_rates_hz"]) == {"c1", "c2"}
    out = capfd.readouterr().out
    assert "epoch 4/4" in out and "dice=" in out and "rate_hz=" in out

    # a normal conversion folder: the co-trained network, rebuilt, gives the same spikes
    assert stage["export_check_max_abs_diff"] == 0.0
    keras_model, settings = load_conversion(run / "hybrid")
    assert keras_model.get_layer("out").get_config()["activation"] == "sigmoid"
    assert settings.spiking and settings.neuron_types == {"c1": "SpikingRectifiedLinear",
                                                          "c2": "SpikingRectifiedLinear"}
    ann = tf.keras.models.load_model(run / "ann" / "model.h5", compile=False)
    assert not np.array_equal(keras_model.get_layer("c1").get_weights()[0],
                              ann.get_layer("c1").get_weights()[0])
    rebuilt = run_snn(convert(keras_model, settings), data.test.x, progress=False)
    np.testing.assert_array_equal(
        rebuilt.outputs, np.load(run / "hybrid" / "predictions" / "hybrid_snn.npz")["outputs"]
    )
    assert results(run)["hybrid_snn"]["scores"]["n_slices"] == 4

    # a finished stage is reused
    assert cotrain_stage(cfg, run, data)["epochs_run"] == 4
    assert "reusing the co-trained SNN" in capfd.readouterr().out


def _mean_rate(converted, x):
    return run_snn(converted, x, progress=False, minibatch_size=4)


@pytest.mark.parametrize("engine", ["nengo-dl", "engine"])
@pytest.mark.parametrize("target", [200.0, 10.0], ids=["up", "down"])
def test_rate_regularisation_moves_rates_toward_the_target(tmp_path, target, engine):
    """Both co-training engines; the rates after are scored by NengoDL, the reference."""
    run = tmp_path / "run"
    model = tiny_segmenter()
    cfg = tiny_config(
        {"epochs": 3, "rate_target_hz": target, "rate_weight_output": 1.0,
         "rate_weight_hidden": 1.0, "learning_rate": 0.02, "engine": engine},
        {"scale_firing_rates": {"c1": 500, "c2": 2000}, "n_steps": 10},
    )
    data = tiny_data()
    write_ann(run, model, cfg, data)
    before = run_snn(convert(model, ConversionSettings(**cfg["convert"], seed=3)), data.test.x,
                     progress=False).firing_rates_hz
    stage = cotrain_stage(cfg, run, data, verbose=False)
    after = stage["firing_rates_hz"]
    assert stage["cotrain_engine"] == engine and stage["engine"] == "nengo-dl"
    for layer in ("c1", "c2"):
        assert 20 < before[layer] < 120  # starts near 50 Hz
        assert abs(after[layer] - target) < 0.8 * abs(before[layer] - target), (layer, before, after)


# ---------------------------------------------------------------- resume after a kill

CLI_CONFIG = """
name: tiny_cotrain
seed: 2
data:
  root: sample:hippocampus
  size: [8, 8]
  max_subjects: 6
  test_fraction: 0.34
  val_fraction: 0.0
train:
  loss: bce
convert:
  scale_firing_rates: 100
  synapse: 0.005
  n_steps: 8
cotrain:
  engine: engine
  epochs: 4
  learning_rate: 0.01
  batch_size: 4
  max_train_examples: 24
  early_stopping_patience: null
  monitor: loss
evaluate:
  engine: nengo-dl
  max_subjects: 1
  minibatch_size: 8
"""


def nengoseg(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "nengoseg.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_interrupted_nengoseg_cotrain_resumes_from_its_last_checkpoint(tmp_path):
    run, cfg = tmp_path / "run", tmp_path / "tiny.yaml"
    cfg.write_text(CLI_CONFIG)
    args = ("cotrain", "--config", str(cfg), "--run-dir", str(run), "--engine", "nengo-dl")
    resolved = load_config(cfg, ["cotrain.engine=nengo-dl"])
    write_ann(run, tiny_segmenter(), resolved, load_experiment_data(resolved))
    state = run / "work" / "hybrid" / "checkpoint" / "state.json"

    proc = nengoseg(*args)
    deadline = time.time() + 240
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert state.exists(), err
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 4, "the run was not killed mid-training"
    assert not (run / "hybrid" / "conversion.json").exists()

    proc = nengoseg(*args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"resuming after epoch {done}" in out
    assert f"epoch {done + 1}/4" in out and f"epoch {done}/4 " not in out
    assert "| hybrid SNN |" in out or "hybrid_snn" in out
    history = json.loads((run / "hybrid" / "history.json").read_text())
    assert len(history["loss"]) == 4
    stage = results(run)["hybrid_snn"]
    assert stage["epochs_run"] == 4 and stage["cotrain_engine"] == "nengo-dl"
    assert "engine: nengo-dl" in (run / "config.yaml").read_text()

    # the result is a conversion folder `nengoseg evaluate` scores like any other
    proc = nengoseg("evaluate", "--config", str(cfg), "--run-dir", str(run), "--engine", "snn",
                    "--checkpoint", str(run / "hybrid"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    again = results(run)["evaluate_snn"]
    assert again["scores"] == stage["scores"]


# ---------------------------------------------------------------- NengoDL -> Keras weights


def every_layer_kind():
    """Conv with and without bias, SoftLIF, frozen BN, Conv2DTranspose, Dense with ReLU
    neurons (ensemble biases, scaled by a scale that is not a power of two), linear Dense."""
    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input((8, 8, 1))
    x = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)  # after an activation: frozen, not trained
    c2 = L.Conv2D(3, 3, strides=2, use_bias=False, name="c2")
    x = SoftLIF(amplitude=0.02, sigma=0.02, name="lif")(c2(x))
    x = L.Conv2DTranspose(2, 3, strides=2, padding="same", activation="relu", name="up")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(6, activation="relu", name="fc")(x)
    model = tf.keras.Model(inp, L.Dense(4, name="box")(x))
    c2.set_weights([c2.get_weights()[0] * 8])  # LIF input currents above threshold
    return model


def test_trained_weights_go_back_to_keras_and_rebuild_the_simulator_exactly():
    model = every_layer_kind()
    # every layer fires within 12 steps; the fc scale is not a power of two
    settings = ConversionSettings(scale_firing_rates={"c1": 500, "lif": 2, "up": 3000, "fc": 2933.3},
                                  synapse=0.001, n_steps=12, readout="regression")
    converted = hybrid_network(model, settings)
    types = {name: type(p.target.ensemble.neuron_type) for name, p in converted.neuron_probes.items()}
    assert types == {"c1": HybridRectifiedLinear, "lif": HybridSoftLIF,
                     "up": HybridRectifiedLinear, "fc": HybridRectifiedLinear}
    assert converted.neuron_probes["lif"].target.ensemble.neuron_type.sigma == 0.02

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 1)).astype(np.float32)
    y = rng.uniform(0, 1, (8, 4)).astype(np.float32)
    snn = NengoDLTrainable(converted, minibatch_size=4)
    try:
        # untrained: the mapping gives back the converted Keras weights exactly
        before = snn.trained_weights()
        assert set(before) == {"c1", "c2", "up", "fc", "box"}
        for name, arrays in before.items():
            for got, expected in zip(arrays, converted.keras_model.get_layer(name).get_weights()):
                np.testing.assert_array_equal(got, expected)

        compile_cotraining(snn, tf.keras.losses.MeanSquaredError(), task_metric("boxes"), 12, 0.05)
        snn.fit(Batches(snn, x, y, 12, True, 0), None, 2, 0, [])
        trained = export_model(converted.keras_model, snn.trained_weights(), "linear")
        coded = np.repeat(x.reshape(8, 1, -1), 12, axis=1)
        outputs = np.concatenate([snn.predict(coded[:4]), snn.predict(coded[4:])])
    finally:
        snn.close()
    assert not np.array_equal(trained.get_layer("fc").get_weights()[1], before["fc"][1])
    np.testing.assert_array_equal(trained.get_layer("bn").get_weights()[0],
                                  model.get_layer("bn").get_weights()[0])
    rebuilt = run_snn(convert(trained, converted.settings), x, minibatch_size=3, progress=False)
    np.testing.assert_array_equal(rebuilt.outputs, outputs[:, -settings.window():].mean(axis=1))


def test_keras_bias_for_reproduces_the_converters_scaling():
    current = np.random.default_rng(1).normal(0, 30, 2000).astype(np.float32)
    for scale in (1.0, 64.0, 73.3, 1000.0):
        bias, rebuilt = keras_bias_for(current, scale)
        assert bias.dtype == np.float32
        scaled = bias.copy()
        scaled *= scale
        np.testing.assert_array_equal(scaled, rebuilt)
        np.testing.assert_allclose(rebuilt, current, rtol=3e-7)
        if scale in (1.0, 64.0):
            np.testing.assert_array_equal(rebuilt, current)


# ---------------------------------------------------------------- losses and errors


def test_readout_loss_and_rate_regularisation_values():
    y_pred = np.zeros((2, 6, 4), np.float32)
    y_pred[:, -2:] = 1.0  # the readout window (2 steps) sees 1, the rest 0
    y_true = np.ones((2, 1, 4), np.float32)
    loss = ReadoutLoss(tf.keras.losses.MeanSquaredError(), window=2, output_shape=(2, 2, 1))
    assert float(loss(y_true, y_pred)) == 0.0
    spikes = np.zeros((1, 10, 3), np.float32)
    spikes[0, ::2] = 0.5  # amplitude 0.001, dt 0.001: spikes of 1, half the steps = 500 Hz
    target = RateRegularisation(target=0.001 * 500)
    assert float(target(np.zeros((1, 1, 1)), spikes / 0.5)) == pytest.approx(0.0)


def test_unknown_or_missing_engine_is_a_config_error(tmp_path, monkeypatch):
    """An engine name that is not allowed, and an ``engine`` that is not importable or
    has no ``trainable_snn``, stop the stage with a ConfigError before any training."""
    import nengoseg.engine

    with pytest.raises(ConfigError, match="cotrain.engine='fast' is not allowed"):
        _engine_factory("fast")
    assert _engine_factory("engine") is nengoseg.engine.trainable_snn

    run = tmp_path / "run"
    data = tiny_data()
    cfg = tiny_config({"engine": "engine"})
    write_ann(run, tiny_segmenter(), cfg, data)
    monkeypatch.delattr(nengoseg.engine, "trainable_snn")
    with pytest.raises(ConfigError, match="use cotrain.engine: nengo-dl.*no trainable_snn"):
        cotrain_stage(cfg, run, data, verbose=False)
    monkeypatch.setitem(sys.modules, "nengoseg.engine", None)  # the package cannot be imported
    with pytest.raises(ConfigError, match="use cotrain.engine: nengo-dl$"):
        cotrain_stage(cfg, run, data, verbose=False)
    assert not (run / "hybrid").exists()


def test_engine_path_cotrains_and_exports(tmp_path):
    """cotrain.engine "engine" (nengoseg.engine.trainable_snn), scored by the engine too."""
    import nengoseg.engine

    if not hasattr(nengoseg.engine, "trainable_snn"):
        pytest.skip("nengoseg.engine.trainable_snn does not exist yet")
    run = tmp_path / "run"
    cfg = tiny_config({"engine": "engine", "epochs": 4, "learning_rate": 0.03},
                      {"scale_firing_rates": 100})
    cfg["evaluate"]["engine"] = "engine"
    data = tiny_data()
    write_ann(run, tiny_segmenter(), cfg, data)
    stage = cotrain_stage(cfg, run, data, verbose=False)
    history = json.loads((run / "hybrid" / "history.json").read_text())
    assert stage["cotrain_engine"] == stage["engine"] == "engine" and stage["epochs_run"] == 4
    assert history["loss"][-1] < history["loss"][0]
    assert stage["mean_firing_rate_hz"] > 0 and set(stage["firing_rates_hz"]) == {"c1", "c2"}
    assert stage["export_check_max_abs_diff"] < 1e-5
    # the saved folder in NengoDL (the reference) agrees with the engine's scores
    keras_model, settings = load_conversion(run / "hybrid")
    reference = run_snn(convert(keras_model, settings), data.test.x, progress=False)
    np.testing.assert_allclose(
        reference.outputs, np.load(run / "hybrid" / "predictions" / "hybrid_snn.npz")["outputs"], atol=1e-4
    )


@pytest.mark.parametrize("engine", ["engine", "nengo-dl"])
def test_a_fine_tuning_that_never_beats_its_start_keeps_the_start(tmp_path, engine):
    """The starting network's validation loss is the best so far (epoch 0): one epoch at
    a destructive learning rate does not replace it."""
    run = tmp_path / "run"
    cfg = tiny_config({"engine": engine, "epochs": 1, "learning_rate": 50.0},
                      {"scale_firing_rates": 100})
    cfg["evaluate"]["engine"] = engine
    data = tiny_data()
    ann = tiny_segmenter()
    write_ann(run, ann, cfg, data)
    stage = cotrain_stage(cfg, run, data, verbose=False)
    history = json.loads((run / "hybrid" / "history.json").read_text())
    assert stage["best_epoch"] == 0, history
    assert history["val_loss"][0] > stage["baseline_val_loss"]
    keras_model, _ = load_conversion(run / "hybrid")
    for name in ("c1", "c2", "out"):
        for kept, start in zip(keras_model.get_layer(name).get_weights(),
                               ann.get_layer(name).get_weights()):
            np.testing.assert_array_equal(kept, start)
