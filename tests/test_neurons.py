"""Hybrid neurons: spiking forward (inference and training), rate gradient backward."""

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengo_loihi.neurons import LoihiLIF, LoihiSpikingRectifiedLinear

from nengoseg.errors import ConversionError
from nengoseg.neurons import (
    HybridLoihiLIF,
    HybridLoihiRectifiedLinear,
    HybridLoihiRectifiedLinearBuilder,
    HybridRectifiedLinear,
    HybridRectifiedLinearBuilder,
    HybridSoftLIF,
    HybridSoftLIFBuilder,
)
from nengoseg.neuron_kinds import hybrid_of, swap_to_hybrid

# input currents (J = x: gain 1, bias 0): below threshold, around LIF's threshold
# of 1, well above (0.3 spikes per step for rectified linear at 300), and high
# currents whose rates make float32 `rate + (spikes - rate)` differ from `spikes`
# (102, 106, 123 for rectified linear with amplitude 0.01)
CURRENTS = np.concatenate(
    [[-1.0, 0.5, 1.5, 3.0, 20.0, 300.0, 102, 106, 123], np.linspace(107, 993, 15)]
).astype(np.float32)
N_STEPS = 25

# (hybrid, plain spiking counterpart, rate neuron giving the gradient)
FAMILIES = {
    "relu": (
        HybridRectifiedLinear(amplitude=0.01),
        nengo.SpikingRectifiedLinear(amplitude=0.01),
        nengo.RectifiedLinear(amplitude=0.01),
    ),
    "softlif": (
        HybridSoftLIF(amplitude=0.01, sigma=0.02),
        nengo.LIF(amplitude=0.01),
        nengo_dl.SoftLIFRate(amplitude=0.01, sigma=0.02),
    ),
    # nengo-loihi's models of Loihi's neurons (forward), the same rate gradients
    "loihi_relu": (
        HybridLoihiRectifiedLinear(amplitude=0.01),
        LoihiSpikingRectifiedLinear(amplitude=0.01),
        nengo.RectifiedLinear(amplitude=0.01),
    ),
    "loihi_lif": (
        HybridLoihiLIF(amplitude=0.01, sigma=0.02),
        LoihiLIF(amplitude=0.01),
        nengo_dl.SoftLIFRate(amplitude=0.01, sigma=0.02),
    ),
}
NENGO_FAMILIES = ("relu", "softlif")


def current_net(neuron_type, seed=3):
    """Input Node -> neurons with J = input -> probe (random initial voltages)."""
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(stateful=False)
        inp = nengo.Node(np.zeros(len(CURRENTS)))
        ens = nengo.Ensemble(
            len(CURRENTS),
            1,
            neuron_type=neuron_type,
            gain=nengo.dists.Choice([1]),
            bias=nengo.dists.Choice([0]),
        )
        nengo.Connection(inp, ens.neurons, synapse=None)
        probe = nengo.Probe(ens.neurons)
    return net, inp, probe


def run_keras(neuron_type, training):
    """Output and d sum(output) / d input of the current net, in one Keras call."""
    net, _, _ = current_net(neuron_type)
    x = tf.constant(np.tile(CURRENTS, (1, N_STEPS, 1)))
    n_steps = np.full((1, 1), N_STEPS, dtype=np.int32)
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = sim.keras_model([x, n_steps], training=training)[0]
            total = tf.reduce_sum(out)
        grad = tape.gradient(total, x)
    grad = np.zeros(x.shape) if grad is None else grad.numpy()
    return out.numpy()[0], grad[0]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    """All runs of one neuron family, computed once."""
    hybrid, spiking, rate = FAMILIES[request.param]
    runs = {
        (name, training): run_keras(neuron_type, training)
        for name, neuron_type in [("hybrid", hybrid), ("spiking", spiking)]
        for training in (False, True)
    }
    runs["rate", True] = run_keras(rate, True)
    runs["name"] = request.param

    net, inp, probe = current_net(hybrid)
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        x = np.tile(CURRENTS, (1, N_STEPS, 1))
        runs["hybrid", "predict"] = (sim.predict({inp: x})[probe][0], None)
    return runs


def test_builders_registered_by_the_neuron_kind_registry():
    impl = nengo_dl.neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL
    assert impl[HybridRectifiedLinear] is HybridRectifiedLinearBuilder
    assert impl[HybridSoftLIF] is HybridSoftLIFBuilder
    assert impl[HybridLoihiRectifiedLinear] is HybridLoihiRectifiedLinearBuilder
    # the plain types keep NengoDL's builders
    assert impl[nengo.LIF] is nengo_dl.neuron_builders.LIFBuilder


def test_forward_is_spiking_in_inference_and_training(family):
    spikes, _ = family["spiking", False]
    # same seed, same initial voltages: bit-for-bit the spiking neuron
    np.testing.assert_array_equal(family["hybrid", "predict"][0], spikes)
    np.testing.assert_array_equal(family["hybrid", False][0], spikes)
    np.testing.assert_array_equal(family["hybrid", True][0], spikes)

    # spikes are 0 or amplitude / dt, and the voltage carries across steps:
    # neurons between 0 and 1 spike per step do not spike on every step
    values = np.unique(spikes)
    assert len(values) == 2 and values[0] == 0
    assert values[1] == pytest.approx(0.01 / 0.001)  # amplitude / dt
    partial = spikes[:, CURRENTS == 300]  # 0.3 spikes per step (relu), LIF ~200 Hz
    assert 0 < np.count_nonzero(partial) < N_STEPS
    assert np.count_nonzero(spikes[:, 0]) == 0  # J = -1 never spikes


def test_nengo_dl_training_substitutes_rates_for_plain_spiking_neurons(family):
    """The behaviour the hybrid builders exist to avoid (NengoDL 3.6; for the Loihi
    types, the rate curves nengo-extras' builders train with)."""
    train_out, _ = family["spiking", True]
    rate_out, _ = family["rate", True]
    assert np.all(train_out == train_out[0])  # constant over time: no state
    assert not np.array_equal(train_out, family["spiking", False][0])
    if family["name"] in NENGO_FAMILIES:
        # (plain LIF trains as LIFRate, SoftLIFRate's twin above the threshold)
        above = CURRENTS > 1
        np.testing.assert_allclose(train_out[:, above], rate_out[:, above], rtol=1e-5)


def test_gradient_is_the_rate_neurons(family):
    _, hybrid_grad = family["hybrid", True]
    _, rate_grad = family["rate", True]
    np.testing.assert_allclose(hybrid_grad, rate_grad, rtol=1e-5, atol=1e-9)
    # same gradient in inference mode (nothing depends on the training flag)
    np.testing.assert_allclose(family["hybrid", False][1], rate_grad, rtol=1e-5)

    # where the neurons fire the gradient is positive, at every time step,
    assert np.all(hybrid_grad[:, CURRENTS > 1] > 0)
    # while the spiking neuron run as spikes gives no gradient at all
    assert np.all(family["spiking", False][1] == 0)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_gradient_values(name):
    """Spot check against the analytic derivative of the rate curves."""
    hybrid = FAMILIES[name][0]
    _, grad = run_keras(hybrid, training=True)
    j = CURRENTS.astype(np.float64)
    if name in ("relu", "loihi_relu"):
        expected = hybrid.amplitude * (j > 0)
    else:
        # finite difference of SoftLIFRate.rates (numpy), per step
        rate = hybrid.rate_neuron()
        h = 1e-4
        expected = (rate.rates(j + h, 1, 0) - rate.rates(j - h, 1, 0)) / (2 * h)
    np.testing.assert_allclose(grad, np.tile(expected, (N_STEPS, 1)), rtol=2e-3)


@pytest.mark.parametrize(
    "hybrid, lr",
    [
        # default ensembles: ReLU currents (gain, bias) are in the hundreds
        (HybridRectifiedLinear(amplitude=0.005), 10.0),
        (HybridSoftLIF(amplitude=0.01, sigma=0.02), 0.2),
    ],
    ids=["relu", "softlif"],
)
def test_fit_reduces_spiking_loss(hybrid, lr):
    """Gradient through hybrid neurons only: the readout is fixed."""
    rng = np.random.RandomState(0)
    n_neurons, batch = 16, 8
    with nengo.Network(seed=1) as net:
        nengo_dl.configure_settings(stateful=False, trainable=None)
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(n_neurons, 2, neuron_type=hybrid)
        nengo.Connection(inp, ens, synapse=None)
        out = nengo.Node(size_in=1)
        readout = nengo.Connection(
            ens.neurons,
            out,
            transform=np.ones((1, n_neurons)) / n_neurons,
            synapse=0.005,
        )
        net.config[readout].trainable = False
        probe = nengo.Probe(out)

    x = np.tile(rng.uniform(-1, 1, size=(batch, 1, 2)), (1, 20, 1))
    y = np.full((batch, 20, 1), 0.2) + 0.5 * x[..., :1]  # a linear function
    with nengo_dl.Simulator(net, minibatch_size=batch, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(lr), loss=tf.losses.mse)
        before = sim.evaluate({inp: x}, {probe: y}, verbose=0)["loss"]
        history = sim.fit({inp: x}, {probe: y}, epochs=15, verbose=0)
        after = sim.evaluate({inp: x}, {probe: y}, verbose=0)["loss"]
    # the first training loss (training=True, initial weights) is the spiking loss
    assert history.history["loss"][0] == pytest.approx(before, rel=1e-5)
    assert after < 0.5 * before


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_plain_nengo_runs_them_as_spiking_neurons(name):
    hybrid, spiking, _ = FAMILIES[name]
    data = {}
    for key, neuron_type in [("hybrid", hybrid), ("spiking", spiking)]:
        with nengo.Network(seed=5) as net:
            stim = nengo.Node(lambda t: np.sin(20 * t))
            ens = nengo.Ensemble(10, 1, neuron_type=neuron_type)
            nengo.Connection(stim, ens)
            probes = [nengo.Probe(ens.neurons), nengo.Probe(ens.neurons, "voltage")]
        with nengo.Simulator(net, progress_bar=False) as sim:
            sim.run(0.1)
        data[key] = [sim.data[p] for p in probes]
    for a, b in zip(data["hybrid"], data["spiking"]):
        np.testing.assert_array_equal(a, b)
    assert data["hybrid"][0].any()


@pytest.mark.parametrize(
    "source, kind, params",
    [
        (
            nengo.SpikingRectifiedLinear(
                amplitude=0.001, initial_state={"voltage": nengo.dists.Choice([0])}
            ),
            HybridRectifiedLinear,
            {"amplitude": 0.001, "initial_state": {"voltage": nengo.dists.Choice([0])}},
        ),
        (
            nengo.RectifiedLinear(amplitude=0.5),
            HybridRectifiedLinear,
            {"amplitude": 0.5},
        ),
        (
            nengo.LIF(tau_rc=0.05, tau_ref=0.001, min_voltage=-1, amplitude=0.002),
            HybridSoftLIF,
            dict(
                tau_rc=0.05, tau_ref=0.001, min_voltage=-1, amplitude=0.002, sigma=0.005
            ),
        ),
        (
            nengo_dl.SoftLIFRate(sigma=0.01, tau_rc=0.03, amplitude=0.1),
            HybridSoftLIF,
            dict(tau_rc=0.03, tau_ref=0.002, min_voltage=0, amplitude=0.1, sigma=0.01),
        ),
        (
            nengo.LIFRate(tau_ref=0.003),
            HybridSoftLIF,
            dict(tau_rc=0.02, tau_ref=0.003, amplitude=1, sigma=0.005),
        ),
        (
            LoihiSpikingRectifiedLinear(amplitude=0.01),
            HybridLoihiRectifiedLinear,
            {"amplitude": 0.01},
        ),
        (
            LoihiLIF(tau_rc=0.04, tau_ref=0.003, amplitude=0.01),
            HybridLoihiLIF,
            dict(tau_rc=0.04, tau_ref=0.003, min_voltage=0, amplitude=0.01, sigma=0.005),
        ),
    ],
)
def test_hybrid_of_preserves_parameters(source, kind, params):
    hybrid = hybrid_of(source)
    assert type(hybrid) is kind and hybrid.spiking
    for key, value in params.items():
        assert getattr(hybrid, key) == value, key
    assert hybrid_of(hybrid) is hybrid
    relu = kind in (HybridRectifiedLinear, HybridLoihiRectifiedLinear)
    rate_kind = nengo.RectifiedLinear if relu else nengo_dl.SoftLIFRate
    assert type(hybrid.rate_neuron()) is rate_kind
    assert hybrid.rate_neuron().amplitude == hybrid.amplitude


def test_hybrid_of_sigma_override():
    assert hybrid_of(nengo.LIF(), sigma=0.1).sigma == 0.1
    assert hybrid_of(HybridSoftLIF(sigma=0.2), sigma=0.1).sigma == 0.1


@pytest.mark.parametrize(
    "neuron_type", [nengo.Sigmoid(), nengo.Direct(), nengo_dl.LeakyReLU()]
)
def test_hybrid_of_rejects_other_types(neuron_type):
    with pytest.raises(ConversionError, match=type(neuron_type).__name__) as info:
        hybrid_of(neuron_type)
    assert "nengo.LIF" in str(info.value) and "RectifiedLinear" in str(info.value)


def _keras_model(activation):
    inp = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(3, activation=tf.nn.relu, name="hidden")(inp)
    out = tf.keras.layers.Dense(2, activation=activation, name="out")(hidden)
    return tf.keras.Model(inp, out)


def test_swap_to_hybrid_on_converted_network():
    model = _keras_model(None)
    conv = nengo_dl.Converter(
        model,
        swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
        scale_firing_rates=100,
    )
    ens = conv.layers[model.get_layer("hidden")].ensemble
    before = (ens.gain, ens.bias)

    assert swap_to_hybrid(conv.net) == [ens]
    assert isinstance(ens.neuron_type, HybridRectifiedLinear)
    assert ens.neuron_type.amplitude == pytest.approx(0.01)  # 1 / scale
    assert (ens.gain, ens.bias) == before  # gain = scale, bias * scale
    assert swap_to_hybrid(conv.net) == []  # idempotent

    # hybrid types can go straight into the converter's swap (amplitude scaled)
    conv = nengo_dl.Converter(
        model, swap_activations={tf.nn.relu: HybridSoftLIF()}, scale_firing_rates=50
    )
    ens = conv.layers[model.get_layer("hidden")].ensemble
    assert isinstance(ens.neuron_type, HybridSoftLIF)
    assert ens.neuron_type.amplitude == pytest.approx(0.02)


def test_swap_to_hybrid_rejects_unknown_types_without_changes():
    model = _keras_model(tf.nn.sigmoid)
    conv = nengo_dl.Converter(model)
    hidden = conv.layers[model.get_layer("hidden")].ensemble
    with pytest.raises(ConversionError, match="Sigmoid") as info:
        swap_to_hybrid(conv.net)
    assert "out" in str(info.value)  # names the ensemble
    assert type(hidden.neuron_type) is nengo.RectifiedLinear  # all or nothing
