"""The time-batched engine (nengoseg.engine) against NengoDL, the reference.

A tiny network with every layer kind the converter handles (Conv2D, strided
Conv2D, Conv2DTranspose, AveragePooling2D, UpSampling2D, Concatenate, Dense,
Flatten, Dropout, biases, a ReLU layer or a SoftLIF layer) is simulated by both:
spike counts per neuron must agree to within one spike over the run, the Dice
of the masks to within 0.005. A network co-trained by the engine must score the
same when rebuilt from its saved conversion and simulated by NengoDL.
"""

import dataclasses

import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg.convert.layers import SoftLIF
from nengoseg.convert.simulate import _pad
from nengoseg.engine import make_plan, run_engine, trainable_snn
from nengoseg.errors import ConversionError
from nengoseg.metrics import dice
from nengoseg.train.cotrain import (
    TrainableSNN,
    compile_cotraining,
    export_model,
    hybrid_network,
    make_trainable,
    task_metric,
)

L = tf.keras.layers
SHAPE = (12, 8, 1)
N_STEPS = 20


def every_layer_net(soft_lif=False, seed=1):
    tf.keras.utils.set_random_seed(seed)
    x = inp = L.Input(SHAPE)
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    b = L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="strided")(a)
    b = L.Dropout(0.2)(b)
    c = L.AveragePooling2D(name="pool")(b)
    c = L.Conv2D(6, 1, use_bias=False, name="conv_nobias")(c)
    if soft_lif:
        c = SoftLIF(amplitude=0.01, sigma=0.02, name="act")(c)
    else:
        c = L.ReLU(name="act")(c)
    u = L.UpSampling2D(name="up")(c)
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="deconv")(u)
    m = L.Concatenate(name="concat")([t, a])
    f = L.Flatten()(L.AveragePooling2D(2, name="pool2")(m))
    d = L.Dense(16, activation="relu", name="dense")(f)
    o = L.Dense(int(np.prod(SHAPE)), name="logits")(d)
    o = L.Reshape(SHAPE, name="output")(o)
    return tf.keras.Model(inp, o)


def images(n, seed=0, signed=False):
    r = np.random.default_rng(seed).random((n,) + SHAPE).astype(np.float32)
    return 2 * r - 1 if signed else r


def labels(x):
    return (np.abs(x) > 0.5).astype(np.float32)


def nengo_dl_counts(converted, x, n_steps, batch):
    """Per-neuron spike counts (output integrated over time, in spikes) of NengoDL's run,
    with the inputs coded exactly as `nengoseg.convert.run_snn` codes them."""
    settings = converted.settings
    rng = np.random.default_rng(settings.seed)
    counts = {name: [] for name in converted.neuron_probes}
    with nengo_dl.Simulator(converted.network, dt=settings.dt, minibatch_size=batch,
                            seed=settings.seed, progress_bar=False) as sim:
        for first in range(0, len(x), batch):
            real = x[first : first + batch]
            coded = nsconvert.encode_inputs(real, n_steps, settings.input_coding, settings.dt,
                                            settings.input_rate_hz, rng)
            data = sim.predict_on_batch({converted.input_node: _pad(coded, batch)})
            for name, probe in converted.neuron_probes.items():
                amplitude = probe.target.ensemble.neuron_type.amplitude
                spikes = data[probe][: len(real)].sum(axis=1) * settings.dt / amplitude
                counts[name].append(spikes)
    return {name: np.concatenate(c) for name, c in counts.items()}


def compare(converted, x, n_steps=N_STEPS, batch=3):
    """Engine vs NengoDL: per-neuron counts within one spike, outputs, Dice within 0.005."""
    reference = nsconvert.run_snn(converted, x, n_steps=n_steps, minibatch_size=batch,
                                  progress=False)
    ref_counts = nengo_dl_counts(converted, x, n_steps, batch)
    engine, counts = run_engine(converted.keras_model, converted=converted, x=x,
                                minibatch_size=batch, n_steps=n_steps, progress=False,
                                return_counts=True, chunk_images=None)
    # inference in chunks of steps (3 steps of 3 images here, and a shorter last chunk)
    # carries the state from chunk to chunk: the same spikes and outputs
    chunked, chunk_counts = run_engine(converted.keras_model, converted=converted, x=x,
                                       minibatch_size=batch, n_steps=n_steps, progress=False,
                                       return_counts=True, chunk_images=3 * batch)
    np.testing.assert_allclose(chunked.outputs, engine.outputs, atol=1e-6)
    for name in counts:
        np.testing.assert_allclose(chunk_counts[name], counts[name], atol=1e-3)
    assert set(counts) == set(ref_counts)
    for name in counts:
        assert counts[name].shape == ref_counts[name].shape, name
        assert np.max(np.abs(counts[name] - ref_counts[name])) <= 1 + 1e-4, name
        assert engine.firing_rates_hz[name] == pytest.approx(reference.firing_rates_hz[name],
                                                             rel=0.02, abs=0.5)
    y = labels(x)
    assert abs(dice(engine.masks, y) - dice(reference.masks, y)) <= 0.005
    np.testing.assert_allclose(engine.outputs, reference.outputs, atol=0.02 * (
        1 + np.abs(reference.outputs).max()))
    return reference, engine, ref_counts


@pytest.mark.parametrize(
    "options",
    [
        dict(synapse=0.005),  # ReLU -> SpikingRectifiedLinear, constant coding
        dict(synapse=0.005, input_coding="poisson", signed=True),  # ternary Poisson spikes
        dict(synapse=None, input_coding="poisson"),  # binary Poisson spikes, no synapse
        dict(synapse=0.005, soft_lif=True),  # SoftLIF -> LIF
        dict(synapse=0.005, spiking=False, soft_lif=True),  # rate neurons
        # nengo-loihi's models of Loihi's neurons start from rest (voltage 0) and
        # discard what is left over a spike: higher rates and a longer run make every
        # layer spike
        dict(synapse=0.005, neuron_model="loihi", scale=2000.0, n_steps=60),  # Loihi ReLU
        # LoihiLIF ("act"); its small outputs leave "deconv" below threshold on Loihi
        dict(synapse=0.005, neuron_model="loihi", soft_lif=True, n_steps=60, scale=1000.0,
             silent=("deconv",)),
        # the three-stage paper's IF neurons (reset by subtraction, signed input)
        dict(synapse=0.005, neuron_model="if_subtract", scale=2000.0, n_steps=60, signed=True),
        # ... started at half the threshold, few steps, no synapse (the low-latency setting)
        dict(synapse=None, neuron_model="if_subtract", scale=1000.0, n_steps=8,
             initial_voltage=0.5),
        # Loihi's neurons from rest with only Loihi's one-step delay per layer (the
        # default's few-step setting)
        dict(synapse="delay", neuron_model="loihi", scale=2000.0, n_steps=32,
             initial_voltage=0.0),
    ],
    ids=["relu-constant", "relu-poisson-ternary", "relu-poisson-binary-nosyn", "lif", "rate",
         "loihi-relu", "loihi-lif", "if-subtract", "if-subtract-half-threshold",
         "loihi-relu-delay"],
)
def test_engine_matches_nengo_dl(options):
    options = dict(options)
    soft_lif = options.pop("soft_lif", False)
    signed = options.pop("signed", False)
    scale = options.pop("scale", 100.0)
    n_steps = options.pop("n_steps", N_STEPS)
    silent = options.pop("silent", ())
    model = every_layer_net(soft_lif)
    settings = nsconvert.ConversionSettings(scale_firing_rates=scale, n_steps=n_steps, **options)
    converted = nsconvert.convert(model, settings)
    x = images(4, signed=signed)
    reference, engine, counts = compare(converted, x, n_steps=n_steps)
    if settings.spiking:
        # the comparison means something: every layer spikes, the output moves
        assert all(c.sum() > 0 for k, c in counts.items() if k not in silent), {
            k: c.sum() for k, c in counts.items()}
    assert np.abs(reference.outputs).max() > 0


@pytest.mark.parametrize("neuron_model", ["nengo", "loihi"])
def test_engine_is_a_trainable_snn_and_cotrained_network_scores_the_same_in_nengo_dl(
        tmp_path, neuron_model):
    model = every_layer_net()
    settings = nsconvert.ConversionSettings(scale_firing_rates=100.0, n_steps=N_STEPS,
                                            synapse=0.005, neuron_model=neuron_model)
    hybrid = hybrid_network(model, settings)
    batch = 3
    snn = make_trainable("engine", hybrid, batch)
    assert isinstance(snn, TrainableSNN) and snn.name == "engine"
    assert set(snn.rate_names) == set(hybrid.neuron_probes)
    before = {k: [w.copy() for w in v] for k, v in snn.trained_weights().items()}

    x = images(3, seed=1)
    y = labels(x)
    loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    compile_cotraining(snn, loss, task_metric("segmentation"), N_STEPS, 1e-2, rate_target_hz=50.0)
    coded = nsconvert.encode_inputs(x, N_STEPS)
    targets = {snn.output_name: y.reshape(batch, 1, -1)}
    targets.update({key: np.zeros((batch, 1, 1), np.float32) for key in snn.rate_names.values()})
    inputs = snn.model_inputs(coded)
    history = [snn.keras_model.train_on_batch(inputs, targets, return_dict=True) for _ in range(3)]
    assert np.isfinite(history[-1]["loss"])

    weights = snn.trained_weights()
    assert set(weights) == set(before)
    assert any(not np.array_equal(a, b) for k in weights for a, b in zip(weights[k], before[k]))
    trained_out = snn.predict(coded)
    assert trained_out.shape == (batch, N_STEPS, int(np.prod(SHAPE)))

    exported = export_model(hybrid.keras_model, weights, settings.output_activation)
    nsconvert.save_conversion(tmp_path, exported, hybrid.settings)
    rebuilt = nsconvert.convert(*nsconvert.load_conversion(tmp_path))
    reference, engine, _ = compare(rebuilt, x, batch=batch)
    # the trained engine's own forward pass is what NengoDL computes for the saved network
    window = rebuilt.settings.window(N_STEPS)
    np.testing.assert_allclose(trained_out[:, -window:].mean(axis=1),
                               reference.outputs.reshape(batch, -1), atol=1e-4)


def test_trainable_snn_factory():
    model = every_layer_net()
    hybrid = hybrid_network(model, nsconvert.ConversionSettings(n_steps=5))
    snn = trainable_snn(hybrid, 2)
    out = snn.predict(nsconvert.encode_inputs(images(2), 5))
    assert out.shape == (2, 5, int(np.prod(SHAPE)))


def test_unsupported_layer_is_named(monkeypatch):
    from nengoseg.engine import plan as plan_module

    model = every_layer_net()
    converted = nsconvert.convert(model, nsconvert.ConversionSettings(n_steps=5))
    supported = tuple(c for c in plan_module.SUPPORTED_LAYERS if c is not L.UpSampling2D)
    monkeypatch.setattr(plan_module, "SUPPORTED_LAYERS", supported)
    with pytest.raises(ConversionError, match="layer 'up' \\(UpSampling2D\\).*runs"):
        make_plan(converted.keras_model, converted=converted)


def test_the_stages_simulate_with_the_engine_or_nengo_dl():
    from nengoseg.backends import simulate
    from nengoseg.errors import ConfigError

    model = every_layer_net()
    converted = nsconvert.convert(model, nsconvert.ConversionSettings(
        scale_firing_rates=100.0, n_steps=8, synapse=0.005))
    x = images(2)
    by_engine = simulate("engine", converted, x, 2, verbose=False)
    by_nengo_dl = simulate("nengo-dl", converted, x, 2, verbose=False)
    np.testing.assert_allclose(by_engine.outputs, by_nengo_dl.outputs, atol=1e-5)
    assert by_engine.firing_rates_hz == pytest.approx(by_nengo_dl.firing_rates_hz)
    assert sorted(by_engine.outputs_by_steps) == sorted(by_nengo_dl.outputs_by_steps)
    for k, early in by_engine.outputs_by_steps.items():
        np.testing.assert_allclose(early, by_nengo_dl.outputs_by_steps[k], atol=1e-5)
    with pytest.raises(ConfigError, match="evaluate.engine='fast' is not allowed"):
        simulate("fast", converted, x, 2, verbose=False)


@pytest.mark.parametrize(
    "options",
    [
        dict(input_coding="poisson", signed=True),  # ReLU, ternary Poisson input spikes
        dict(neuron_model="loihi", soft_lif=True, scale=1000.0),  # LoihiSpikingReLU, LoihiLIF
        dict(neuron_model="if_subtract", scale=1000.0, signed=True),  # IF, reset by subtraction
    ],
    ids=["relu-poisson-ternary", "loihi-lif", "if-subtract"],
)
def test_engine_cotraining_forward_pass_is_the_spiking_run_bit_for_bit(tmp_path, options):
    """The co-training model's forward pass (training mode: hybrid neurons, differentiable
    synapses) is the spiking network: after training steps, its readout equals, bit for
    bit, the inference engine's run of the network rebuilt from the saved conversion (as
    NengoDL's co-training is checked in test_cotrain.py), and its rate outputs (what rate
    regularisation sees) are that run's firing rates."""
    options = dict(options)
    soft_lif = options.pop("soft_lif", False)
    signed = options.pop("signed", False)
    scale = options.pop("scale", 100.0)
    model = every_layer_net(soft_lif)
    settings = nsconvert.ConversionSettings(scale_firing_rates=scale, n_steps=N_STEPS,
                                            synapse=0.005, **options)
    hybrid = hybrid_network(model, settings)
    batch, n = 3, 6
    snn = make_trainable("engine", hybrid, batch)
    compile_cotraining(snn, tf.keras.losses.BinaryCrossentropy(from_logits=True),
                       task_metric("segmentation"), N_STEPS, 1e-2, rate_target_hz=50.0)
    x = images(n, signed=signed)
    s = hybrid.settings
    rng = np.random.default_rng(7)
    before = snn.trained_weights()["conv"][0].copy()
    for _ in range(2):
        coded = nsconvert.encode_inputs(x[:batch], N_STEPS, s.input_coding, s.dt, s.input_rate_hz, rng)
        targets = {snn.output_name: labels(x[:batch]).reshape(batch, 1, -1)}
        targets.update({k: np.zeros((batch, 1, 1), np.float32) for k in snn.rate_names.values()})
        snn.keras_model.train_on_batch(snn.model_inputs(coded), targets)
    assert not np.array_equal(snn.trained_weights()["conv"][0], before)

    # the training model's forward pass, inputs coded as run_engine / run_snn code them
    rng = np.random.default_rng(s.seed)
    readout, rates = [], {name: 0.0 for name in snn.rate_names}
    for first in range(0, n, batch):
        coded = nsconvert.encode_inputs(x[first : first + batch], N_STEPS, s.input_coding, s.dt,
                                        s.input_rate_hz, rng)
        out = snn.keras_model(snn.model_inputs(coded), training=True)
        readout.append(np.asarray(out[snn.output_name]).reshape(batch, -1))
        for name, key in snn.rate_names.items():
            amplitude = hybrid.neuron_probes[name].target.ensemble.neuron_type.amplitude
            rates[name] += float(np.asarray(out[key], np.float64).mean(axis=(1, 2)).sum()) / (
                amplitude * n)
    readout = np.concatenate(readout)

    exported = export_model(hybrid.keras_model, snn.trained_weights(), s.output_activation)
    nsconvert.save_conversion(tmp_path, exported, hybrid.settings)
    rebuilt = nsconvert.convert(*nsconvert.load_conversion(tmp_path))
    spiking = run_engine(rebuilt.keras_model, converted=rebuilt, x=x, minibatch_size=batch,
                         progress=False)
    np.testing.assert_array_equal(readout, spiking.outputs.reshape(n, -1))
    assert rates == pytest.approx(spiking.firing_rates_hz, rel=1e-5)
    assert sum(r > 0 for r in rates.values()) >= 4, rates
    # and it is spiking: the same weights with rate neurons read out something else
    rate_net = nsconvert.convert(exported, dataclasses.replace(hybrid.settings, spiking=False))
    by_rates = run_engine(rate_net.keras_model, converted=rate_net, x=x, minibatch_size=batch,
                          progress=False)
    assert np.abs(by_rates.outputs - spiking.outputs).max() > 1e-2
