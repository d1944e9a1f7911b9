"""Spiking-UNet's conversion methods: multi-threshold IF neurons (eq. 4-6), added through
the registry alone, and connection-wise vs layer-wise normalisation (section 3.3).

Hand computations of the spikes and voltage, the same spikes in Nengo, NengoDL and the
engine, conversion with configured thresholds recorded in the network description,
a converted network that approaches its ANN with T (and faster than single-threshold
IF neurons), BPTT's forward pass (tests/test_bptt.py), hybrid co-training, and the
normalisation factors of a skip concatenation against a hand computation.
"""

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg import description as nsdescription
from nengoseg import neuron_kinds
from nengoseg.engine import dynamics
from nengoseg.engine.plan import NeuronLayer
from nengoseg.engine.run import run_engine
from nengoseg.errors import ConfigError, ConversionError, DataError
from nengoseg.neuron_kinds.multi_threshold import (
    PAPER_THRESHOLDS,
    HybridMultiThresholdIF,
    MultiThresholdIF,
)
from nengoseg.train.cotrain import hybrid_network, make_trainable
from test_neuron_kinds import nengo_spikes

DT = 0.001
L = tf.keras.layers


def engine_outputs(J, thresholds=PAPER_THRESHOLDS):
    """The engine's output per step, in thresholds (out * dt / amplitude)."""
    spec = NeuronLayer(name="mt", kind="multi_threshold", spiking=True, shape=(J.shape[1],),
                       gain=1.0, amplitude=1.0, min_voltage=-np.inf, thresholds=thresholds,
                       initial_state={"voltage": np.zeros(J.shape[1], np.float32)})
    outputs, _ = dynamics.simulate(spec, dynamics.constants(spec, DT), tf.constant(J[:, None]),
                                   len(J), static=False)
    return outputs["raw"].numpy()[:, 0] * DT


def test_spikes_and_voltage_follow_equations_4_to_6_by_hand():
    # input per step (J dt), in thresholds
    inputs = [3.1, 0.3, 0.3, 0.0, 0.6, -0.4]
    # by hand, thresholds 2, 1, 0.5, 0.25 in turn, each subtracted where passed:
    # 3.1 -> 2 and 1 fire, 0.1 left; 0.4 -> 0.25 fires, 0.15; 0.45 -> 0.25, 0.2;
    # 0.2 -> none; 0.8 -> 0.5 and 0.25 fire, 0.05; -0.35 (signed, no floor) -> none
    expected_out = [3.0, 0.25, 0.25, 0.0, 0.75, 0.0]
    expected_voltage = [0.1, 0.15, 0.2, 0.2, 0.05, -0.35]
    neuron = MultiThresholdIF()
    voltage, output = np.zeros(1), np.zeros(1)
    for x, out, v in zip(inputs, expected_out, expected_voltage):
        neuron.step(DT, np.array([x / DT]), output, voltage)
        assert output[0] * DT == pytest.approx(out)
        assert voltage[0] == pytest.approx(v, abs=1e-9)
    J = np.array(inputs, np.float32)[:, None] / DT
    np.testing.assert_allclose(engine_outputs(J)[:, 0], expected_out, atol=1e-6)
    # one threshold alone is IF with subtraction, one spike a step: 3.1 -> 2.1 left,
    # 2.4 -> 1.4, 1.7 -> 0.7, 0.7 (none), 1.3 -> 0.3, -0.1 (none)
    assert engine_outputs(J, thresholds=(1.0,))[:, 0].tolist() == [1, 1, 1, 0, 1, 0]


def test_same_spikes_in_nengo_nengo_dl_and_the_engine():
    rng = np.random.default_rng(0)
    J = rng.normal(600.0, 1500.0, (40, 64)).astype(np.float32)  # up to ~4 thresholds a step
    neuron = MultiThresholdIF(thresholds=(2.0, 1.0, 0.5, 0.25))
    reference = nengo_spikes(neuron, J, nengo.Simulator)
    in_nengo_dl = nengo_spikes(neuron, J, nengo_dl.Simulator)
    in_engine = engine_outputs(J)
    np.testing.assert_allclose(in_engine, in_nengo_dl, atol=1e-6)
    # float64 (NumPy) against float32: the same output per neuron over the run
    np.testing.assert_allclose(reference.sum(axis=0), in_nengo_dl.sum(axis=0), atol=1e-4)
    # several spikes in one step: more than one threshold's worth at once
    assert in_nengo_dl.max() == pytest.approx(3.75)
    hybrid = nengo_spikes(HybridMultiThresholdIF(), J, nengo_dl.Simulator)
    np.testing.assert_allclose(hybrid, in_nengo_dl, atol=1e-6)
    # the rate neuron: what a constant input gives on average
    assert neuron.rates(np.array([5000.0]), 1.0, 0.0)[0] == pytest.approx(3750.0)


def two_layer_net(seed=0):
    tf.keras.utils.set_random_seed(seed)
    inp = L.Input((8, 8, 1))
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(h)
    return tf.keras.Model(inp, L.Conv2D(1, 1, name="logits")(h))


def test_conversion_with_configured_thresholds_is_recorded_and_refused_on_chip(tmp_path):
    from nengoseg.loihi.rewrite import from_conversion

    settings = nsconvert.ConversionSettings(neuron_model="multi_threshold",
                                            thresholds=[4, 2, 1], scale_firing_rates=50.0)
    converted = nsconvert.convert(two_layer_net(), settings)
    neuron = converted.neuron_probes["conv1"].target.ensemble.neuron_type
    assert type(neuron) is MultiThresholdIF and neuron.thresholds == (4.0, 2.0, 1.0)
    assert neuron.amplitude == pytest.approx(1 / 50.0)
    description = converted.description
    assert description.run.thresholds == (4.0, 2.0, 1.0)
    assert {n.thresholds for n in description.neuron_layers.values()} == {(4.0, 2.0, 1.0)}
    nsdescription.save(description, tmp_path)
    loaded = nsdescription.load(tmp_path)
    assert loaded.neuron_layers["conv2"].thresholds == (4.0, 2.0, 1.0)
    # a saved conversion rebuilds with its thresholds
    nsconvert.save_conversion(tmp_path / "snn", converted.keras_model, converted.settings)
    rebuilt = nsconvert.convert(*nsconvert.load_conversion(tmp_path / "snn"))
    assert rebuilt.neuron_probes["conv2"].target.ensemble.neuron_type.thresholds == (4, 2, 1)
    with pytest.raises(ConversionError, match="layer 'conv1' has multi_threshold neurons, which "
                                              "cannot run on Loihi: a Loihi 1 compartment.*"
                                              "one compartment per threshold cannot "
                                              "reproduce that exactly"):
        from_conversion(converted)


def test_bad_thresholds_are_named():
    with pytest.raises(ConfigError, match=r"thresholds=\[1, 2\] is not allowed.*strictly"):
        nsconvert.ConversionSettings(neuron_model="multi_threshold", thresholds=[1, 2])
    with pytest.raises(ConfigError, match="thresholds=.*neuron_model='loihi', whose neurons "
                                          "have one threshold.*'multi_threshold'"):
        nsconvert.ConversionSettings(neuron_model="loihi", thresholds=[2, 1])
    with pytest.raises(ValueError, match="strictly decreasing"):
        MultiThresholdIF(thresholds=(1.0, 1.0))
    record, arrays = nsconvert.convert(
        two_layer_net(), nsconvert.ConversionSettings(neuron_model="multi_threshold",
                                                      scale_firing_rates=50.0)
    ).description.to_dict()
    record["layers"][1]["neurons"]["thresholds"] = [0.5, 1.0]
    with pytest.raises(DataError, match="layer 'conv1'.neurons.thresholds"):
        nsdescription.from_dict(record, arrays)


def conversion_error(model, x, neuron_model, n_steps):
    """Mean absolute error of the converted network's output against the ANN's."""
    settings = nsconvert.ConversionSettings(
        neuron_model=neuron_model, normalise="percentile", percentile=99.9, synapse=None,
        n_steps=n_steps, readout_steps=n_steps, initial_voltage=0.0)
    converted = nsconvert.convert(model, settings, calibration_data=x)
    result = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=len(x),
                        progress=False)
    ann = model.predict(x, verbose=0)
    return float(np.abs(result.outputs.reshape(ann.shape) - ann).mean() / np.abs(ann).mean())


def test_converted_network_approaches_the_ann_with_steps_and_beats_one_threshold():
    model = two_layer_net()
    x = np.random.default_rng(1).random((8, 8, 8, 1)).astype(np.float32)
    errors = {t: conversion_error(model, x, "multi_threshold", t) for t in (2, 8, 32)}
    assert errors[32] < errors[8] < errors[2], errors
    # at few steps, several thresholds pass more of the input than one
    single = conversion_error(model, x, "if_subtract", 8)
    assert errors[8] < 0.7 * single, (errors, single)


@pytest.mark.parametrize("engine", ["engine", "nengo-dl"])
def test_multi_threshold_cotrains(engine):
    settings = nsconvert.ConversionSettings(neuron_model="multi_threshold",
                                            scale_firing_rates=200.0, n_steps=8, synapse=0.005)
    hybrid = hybrid_network(two_layer_net(), settings)
    assert type(hybrid.neuron_probes["conv1"].target.ensemble.neuron_type) is \
        HybridMultiThresholdIF
    batch = 2
    snn = make_trainable(engine, hybrid, batch)
    x = np.random.default_rng(0).random((batch, 8, 8, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32).reshape(batch, 1, -1)
    snn.keras_model.compile(tf.keras.optimizers.Adam(0.05),
                            {snn.output_name: tf.keras.losses.MeanSquaredError()})
    inputs = snn.model_inputs(nsconvert.encode_inputs(x, 8))
    losses = [snn.keras_model.train_on_batch(inputs, {snn.output_name: y}) for _ in range(6)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_the_registry_offers_it():
    kind = neuron_kinds.named("multi_threshold")
    assert neuron_kinds.converted_kind("relu", "multi_threshold") is kind
    assert neuron_kinds.has_thresholds("multi_threshold")
    assert not neuron_kinds.has_thresholds("if_subtract")
    assert "multi_threshold" in neuron_kinds.surrogate_kinds()


# ------------------------------------------------------------ connection-wise normalisation


def skip_net():
    """Two parts of very different scale concatenated, as a U-Net's skip and up paths."""
    tf.keras.utils.set_random_seed(4)
    inp = L.Input((8, 8, 1))
    small = L.Conv2D(3, 3, padding="same", activation="relu", name="small",
                     kernel_initializer=tf.keras.initializers.Constant(0.05))(inp)
    big = L.Conv2D(3, 3, padding="same", activation="relu", name="big",
                   kernel_initializer=tf.keras.initializers.Constant(2.0))(small)
    pooled = L.AveragePooling2D(name="pool")(big)
    up = L.UpSampling2D(name="up")(pooled)
    joined = L.Concatenate(name="skip")([small, up])
    h = L.Conv2D(2, 3, padding="same", activation="relu", name="after")(joined)
    return tf.keras.Model(inp, L.Conv2D(1, 1, name="logits")(h))


@pytest.mark.parametrize("scope", ["connection", "layer"])
def test_skip_normalisation_factors_equal_a_hand_computation(scope):
    model = skip_net()
    x = np.random.default_rng(2).random((6, 8, 8, 1)).astype(np.float32)
    by_hand = {}
    for name in ("small", "big", "after"):
        act = tf.keras.Model(model.input, model.get_layer(name).output)(x).numpy()
        by_hand[name] = float(np.percentile(act[act > 0], 99.9))
    assert by_hand["big"] > 10 * by_hand["small"]
    if scope == "layer":  # the concatenation's two parts (through pool and up) share one
        by_hand["small"] = by_hand["big"]
    settings = nsconvert.ConversionSettings(neuron_model="multi_threshold", normalise="percentile",
                                            skip_normalisation=scope)
    converted = nsconvert.convert(model, settings, calibration_data=x)
    assert converted.settings.normalisation_factors == pytest.approx(by_hand, rel=1e-5)
    # a rebuild from the recorded factors keeps them
    again = nsconvert.convert(converted.keras_model, converted.settings)
    assert again.settings.normalisation_factors == pytest.approx(by_hand, rel=1e-5)


def test_layer_wise_needs_normalisation():
    with pytest.raises(ConfigError, match="skip_normalisation='layer'.*normalise='percentile'"):
        nsconvert.ConversionSettings(skip_normalisation="layer", scale_firing_rates=100.0)
    with pytest.raises(ConfigError, match="skip_normalisation='channel' is not allowed"):
        nsconvert.ConversionSettings(skip_normalisation="channel")


# ------------------------------------------------------------ spiking-flow fine-tuning


@pytest.mark.parametrize("options", [
    dict(neuron_model="multi_threshold", synapse=None),
    dict(neuron_model="loihi", synapse=0.005),
], ids=["multi-threshold-nosyn", "loihi-synapse"])
def test_spiking_flow_forward_pass_is_the_spiking_run(options):
    from nengoseg.train import cotrain

    settings = nsconvert.ConversionSettings(scale_firing_rates=400.0, n_steps=12, **options)
    hybrid = cotrain.hybrid_network(skip_net(), settings)
    batch = 3
    snn = cotrain.make_trainable("engine", hybrid, batch, method="spiking_flow")
    x = np.random.default_rng(5).random((batch, 8, 8, 1)).astype(np.float32)
    coded = nsconvert.encode_inputs(x, 12)
    out = snn.keras_model(snn.model_inputs(coded), training=True)
    rebuilt = nsconvert.convert(hybrid.keras_model, hybrid.settings)
    spiking = run_engine(rebuilt.keras_model, converted=rebuilt, x=x, minibatch_size=batch,
                         progress=False)
    np.testing.assert_allclose(np.asarray(out[snn.output_name]).reshape(batch, -1),
                               spiking.outputs.reshape(batch, -1), atol=1e-5)
    for layer, key in snn.rate_names.items():  # the measured rates (times the amplitude)
        amplitude = hybrid.neuron_probes[layer].target.ensemble.neuron_type.amplitude
        np.testing.assert_allclose(np.asarray(out[key]).mean() / amplitude,
                                   spiking.firing_rates_hz[layer], rtol=1e-4)


def test_spiking_flow_fine_tuning_lowers_the_spiking_loss():
    """Multi-threshold conversion at 6 steps, then spiking-flow fine-tuning: the spiking
    network's own loss falls, with one gradient pass per batch."""
    from nengoseg.train import cotrain

    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 1)).astype(np.float32)
    y = (x > 0.6).astype(np.float32)
    steps = 6
    settings = nsconvert.ConversionSettings(neuron_model="multi_threshold",
                                            scale_firing_rates=300.0, synapse=None,
                                            n_steps=steps, readout_steps=steps)
    model = two_layer_net()

    def spiking_loss(converted):
        result = run_engine(converted.keras_model, converted=converted, x=x,
                            minibatch_size=len(x), progress=False)
        return float(tf.reduce_mean(tf.keras.losses.binary_crossentropy(
            y, result.outputs.reshape(y.shape), from_logits=True)))

    hybrid = cotrain.hybrid_network(model, settings)
    before = spiking_loss(nsconvert.convert(model, settings))
    snn = cotrain.make_trainable("engine", hybrid, len(x), method="spiking_flow")
    cotrain.compile_cotraining(snn, tf.keras.losses.BinaryCrossentropy(from_logits=True),
                               cotrain.task_metric("segmentation"), steps, 1e-2)
    targets = {snn.output_name: y.reshape(len(x), 1, -1)}
    targets.update({k: np.zeros((len(x), 1, 1), np.float32) for k in snn.rate_names.values()})
    inputs = snn.model_inputs(nsconvert.encode_inputs(x, steps))
    for _ in range(30):
        snn.keras_model.train_on_batch(inputs, targets)
    exported = cotrain.export_model(hybrid.keras_model, snn.trained_weights(),
                                    hybrid.settings.output_activation)
    after = spiking_loss(nsconvert.convert(exported, settings))
    assert after < 0.8 * before, (before, after)
    with pytest.raises(ConfigError, match="bptt and spiking_flow run in the time-batched engine"):
        cotrain.make_trainable("nengo-dl", hybrid, 2, method="spiking_flow")


# ------------------------------------------------------------ the ablation, one command


def test_the_ablation_script_fills_the_table(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from nengoseg import cli
    from test_cli_snn import TINY

    path = Path(__file__).resolve().parents[1] / "scripts" / "spiking_unet_ablation.py"
    spec = importlib.util.spec_from_file_location("spiking_unet_ablation", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    cfg, run_dir = tmp_path / "tiny.yaml", tmp_path / "run"
    cfg.write_text(TINY)
    args = ["--config", str(cfg), "--run-dir", str(run_dir), "--steps", "4"]
    with pytest.raises(DataError, match=r"run[/\\]ann[/\\]model.h5: no trained ANN"):
        ablation.main(args)
    assert cli.main(["train-ann", "--config", str(cfg), "--run-dir", str(run_dir)]) == 0
    ablation.main([*args, "--epochs", "1", "--max-examples", "8", "--method", "spiking_flow"])
    result = json.loads((run_dir / "ablation" / "ablation.json").read_text())
    cells = {(row["normalisation"], row["neuron"]) for row in result["rows"]}
    assert cells == {(s, n) for s in ("layer", "connection")
                     for n in ("if_subtract", "multi_threshold")}
    for row in result["rows"]:
        for stage in ("converted", "fine_tuned"):
            assert 0 <= row[stage]["dice_3d_mean"] <= 1
            assert row[stage]["mean_firing_rate_hz"] >= 0
    table = (run_dir / "ablation" / "ablation.md").read_text()
    assert table.count("\n| layer |") == 2 and table.count("\n| connection |") == 2
    assert "spiking_flow" in table and table in capsys.readouterr().out
