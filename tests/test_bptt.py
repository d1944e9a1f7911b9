"""BPTT fine-tuning with the triangle surrogate (three-stage paper, eq. 4-5) in the engine.

The surrogate's derivative is the paper's formula; the gradient of a spike reaches
earlier steps through the membrane voltage (checked against a hand derivation over
two steps); the training model's forward pass is the spiking run bit for bit; a
few BPTT steps lower the spiking network's loss on a tiny task; kinds and engines
that cannot be fine-tuned through time are refused by name.
"""

import numpy as np
import pytest
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg.config import resolve
from nengoseg.engine import dynamics, run_engine
from nengoseg.engine.plan import NeuronLayer
from nengoseg.errors import ConfigError
from nengoseg.train import cotrain

from tests.test_engine import every_layer_net, images

L = tf.keras.layers
N_STEPS = 12


def test_triangle_surrogate_is_the_papers_formula():
    alpha = 0.7
    x = tf.constant([-2.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.999, 1.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        spikes = dynamics.triangle_spike(alpha)(x)
    grad = tape.gradient(spikes, x).numpy()
    np.testing.assert_array_equal(spikes.numpy(), (x.numpy() > 0).astype(np.float32))
    np.testing.assert_allclose(grad, alpha * np.maximum(0, 1 - np.abs(x.numpy())), rtol=1e-6)


def _spec(kind, n=3):
    return NeuronLayer(name="l", kind=kind, activation="relu", spiking=True, shape=(n,),
                       gain=1.0, amplitude=1.0, initial_state={"voltage": np.zeros(n, np.float32)},
                       min_voltage=-np.inf if kind == "if_subtract" else 0.0)


@pytest.mark.parametrize("kind", ["if_subtract", "loihi_relu"])
def test_bptt_gradient_reaches_earlier_steps_through_the_voltage(kind):
    """Two steps of one IF neuron, by hand: ``v1 = J0 dt``, ``s1 = H(v1 - 1)``, reset, ``v2 =
    r(v1, s1) + J1 dt``, ``s2 = H(v2 - 1)``; with ``g(x) = alpha max(0, 1 - |x|)``:
    ``ds2/dJ0 = g(v2 - 1) dr/dv1 dt``, where ``dr/dv1 = 1 - g(v1 - 1)`` (subtraction) or
    ``(1 - s1) - v1 g(v1 - 1)`` (Loihi: ``r = (1 - s1) v1``, for ``v1 > 0``)."""
    dt, alpha = 0.001, 0.8
    spec = _spec(kind)
    J = tf.constant([[[900.0, 1300.0, 1900.0]], [[600.0, 400.0, 700.0]]])  # (2 steps, 1, 3)
    consts = dynamics.constants(spec, dt)

    @tf.function  # as Keras trains: the loop is a graph while_loop
    def run(J):
        with tf.GradientTape() as tape:
            tape.watch(J)
            outputs, _ = dynamics.bptt_layer(spec, consts, J, 2, False, surrogate_alpha=alpha)
            out = outputs["raw"]
            second = out[1]
        return out, tape.gradient(second, J)

    out, grad = run(J)
    grad = grad.numpy()[0, 0] * dt  # d(s2)/dJ0, with s2 = out * dt

    def g(x):
        return alpha * np.maximum(0, 1 - np.abs(x))

    v1 = J.numpy()[0, 0] * dt
    s1 = (v1 > 1).astype(float)
    if kind == "if_subtract":
        v1r, dr = v1 - s1, 1 - g(v1 - 1)
    else:
        v1r, dr = (1 - s1) * v1, (1 - s1) - v1 * g(v1 - 1)
    v2 = v1r + J.numpy()[1, 0] * dt
    np.testing.assert_array_equal(out.numpy()[:, 0] * dt, [s1, (v2 > 1).astype(float)])
    np.testing.assert_allclose(grad, g(v2 - 1) * dr * dt, rtol=1e-5, atol=1e-9)
    assert np.abs(grad).max() > 0


@pytest.mark.parametrize("options", [
    dict(neuron_model="if_subtract", synapse=None, signed=True),
    dict(neuron_model="loihi", synapse=0.005),
    dict(neuron_model="multi_threshold", synapse=None, signed=True),
], ids=["if-subtract-nosyn", "loihi-relu-synapse", "multi-threshold-nosyn"])
def test_bptt_forward_pass_is_the_spiking_run_bit_for_bit(options):
    options = dict(options)
    signed = options.pop("signed", False)
    settings = nsconvert.ConversionSettings(scale_firing_rates=1000.0, n_steps=N_STEPS,
                                            readout_steps=N_STEPS, **options)
    hybrid = cotrain.hybrid_network(every_layer_net(), settings)
    batch = 3
    snn = cotrain.make_trainable("engine", hybrid, batch, method="bptt")
    x = images(batch, signed=signed)
    coded = nsconvert.encode_inputs(x, N_STEPS, settings.input_coding, settings.dt,
                                    settings.input_rate_hz, np.random.default_rng(settings.seed))
    out = snn.keras_model(snn.model_inputs(coded), training=True)[snn.output_name]
    rebuilt = nsconvert.convert(hybrid.keras_model, hybrid.settings)
    spiking = run_engine(rebuilt.keras_model, converted=rebuilt, x=x, minibatch_size=batch,
                         progress=False)
    np.testing.assert_array_equal(np.asarray(out).reshape(batch, -1),
                                  spiking.outputs.reshape(batch, -1))


def tiny_model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    inp = L.Input((8, 8, 1))
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(h)
    out = L.Conv2D(1, 1, name="logits")(h)
    return tf.keras.Model(inp, out)


def spiking_loss(converted, x, y):
    result = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=len(x),
                        progress=False)
    logits = result.outputs.reshape(y.shape)
    return float(tf.reduce_mean(tf.keras.losses.binary_crossentropy(y, logits,
                                                                     from_logits=True)))


def test_bptt_fine_tuning_lowers_the_spiking_loss():
    """Early-stop conversion at 6 steps (IF neurons, threshold 1 per unit, readout over all
    steps), then BPTT: the spiking network's own loss falls."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 1)).astype(np.float32)
    y = (x > 0.6).astype(np.float32)
    steps = 6
    settings = nsconvert.ConversionSettings(neuron_model="if_subtract", scale_firing_rates=300.0,
                                            synapse=None, n_steps=steps, readout_steps=steps)
    model = tiny_model()
    hybrid = cotrain.hybrid_network(model, settings)
    before = spiking_loss(nsconvert.convert(model, settings), x, y)
    snn = cotrain.make_trainable("engine", hybrid, len(x), method="bptt", surrogate_alpha=1.0)
    cotrain.compile_cotraining(snn, tf.keras.losses.BinaryCrossentropy(from_logits=True),
                               cotrain.task_metric("segmentation"), steps, 1e-2)
    coded = nsconvert.encode_inputs(x, steps)
    targets = {snn.output_name: y.reshape(len(x), 1, -1)}
    targets.update({k: np.zeros((len(x), 1, 1), np.float32) for k in snn.rate_names.values()})
    for _ in range(30):
        snn.keras_model.train_on_batch(snn.model_inputs(coded), targets)
    exported = cotrain.export_model(hybrid.keras_model, snn.trained_weights(),
                            hybrid.settings.output_activation)
    after = spiking_loss(nsconvert.convert(exported, settings), x, y)
    assert after < 0.8 * before, (before, after)


def test_bptt_is_refused_where_it_cannot_run():
    with pytest.raises(ConfigError, match="cotrain.method' bptt needs 'cotrain.engine' engine"):
        resolve({"cotrain": {"method": "bptt", "engine": "nengo-dl"}})
    settings = nsconvert.ConversionSettings(neuron_model="nengo", scale_firing_rates=100.0)
    hybrid = cotrain.hybrid_network(tiny_model(), settings)
    with pytest.raises(ConfigError, match="layer 'conv1' has relu neurons.*loihi_relu, "
                                          "if_subtract.*neuron_model: loihi"):
        cotrain.make_trainable("engine", hybrid, 2, method="bptt")
    with pytest.raises(ConfigError, match="engine only"):
        cotrain.make_trainable("nengo-dl", hybrid, 2, method="bptt")


@pytest.mark.parametrize("neuron_model", ["if_subtract", "loihi", "nengo"])
def test_initial_voltage_starts_every_spiking_neuron_there_in_training_too(neuron_model):
    settings = nsconvert.ConversionSettings(neuron_model=neuron_model, scale_firing_rates=100.0,
                                            initial_voltage=0.5)
    for network in (nsconvert.convert(tiny_model(), settings),
                    cotrain.hybrid_network(tiny_model(), settings)):
        for ensemble in network.network.all_ensembles:
            state = ensemble.neuron_type.make_state(4, np.random.RandomState(0))
            np.testing.assert_array_equal(state["voltage"], 0.5)
    description = nsconvert.convert(tiny_model(), settings).description
    for neurons in description.neuron_layers.values():
        np.testing.assert_array_equal(neurons.initial_state["voltage"], 0.5)
    with pytest.raises(ConfigError, match=r"initial_voltage=1.0 .*\[0, 1\)"):
        nsconvert.ConversionSettings(initial_voltage=1.0)
