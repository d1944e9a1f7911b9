"""The batched Loihi emulator (`nengoseg.loihi.batched`) is nengo-loihi's emulator, spike
for spike: the same outputs, per-neuron spike counts and input counts, for any chunking;
what it cannot reproduce is refused by name."""

import nengo_loihi
import numpy as np
import pytest

from nengoseg.errors import ConfigError
from nengoseg.loihi import DeploySettings
from nengoseg.loihi import nengo_loihi_compat as compat
from nengoseg.loihi.blocks import choose_block_shapes
from nengoseg.loihi.errors import BatchedEmulatorUnsupported
from nengoseg.loihi.rewrite import build_loihi_network
from nengoseg.loihi.run import make_simulator, run_loihi

from test_loihi_rewrite import conv_net, pool_net

N_STEPS = 30


def loihi_network(make, **options):
    """Spiking Loihi network of a small Keras model, tiled over cores."""
    net = build_loihi_network(make(), spiking=True, synapse=0.005, n_steps=N_STEPS,
                              scale_firing_rates=300.0, **options)
    choose_block_shapes(net)
    return net


@pytest.fixture(scope="module")
def nets():
    """conv_net: conv, strided conv, strided conv transpose, concatenation skip;
    pool_net: pooling, upsampling, dense (poisson input, so the draws' order counts)."""
    return {"conv": loihi_network(conv_net),
            "pool": loihi_network(pool_net, input_coding="poisson")}


def images(net, n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + net.input_shape)


def assert_same(a, b):
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert a.spike_counts.keys() == b.spike_counts.keys()
    for name, counts in a.spike_counts.items():
        np.testing.assert_array_equal(counts, b.spike_counts[name], err_msg=name)
    for name, counts in a.input_counts.items():
        np.testing.assert_array_equal(counts, b.input_counts[name], err_msg=name)
    assert a.firing_rates_hz == b.firing_rates_hz


@pytest.mark.parametrize("name", ["conv", "pool"])
def test_batched_is_nengo_loihis_emulator_spike_for_spike(nets, name):
    """Against nengo-loihi's own emulator and its own per-spike routing."""
    net = nets[name]
    kinds = {c.kind for c in net.connections}
    assert kinds >= ({"convolution", "convolution_transpose"} if name == "conv"
                     else {"convolution", "sparse"}), kinds
    x = images(net, 3, seed=1)
    reference = run_loihi(net, x, progress=False, fast_routing=False)
    batched = run_loihi(net, x, progress=False, batched=True, chunk_images=3)
    assert_same(batched, reference)
    assert all(counts.sum() > 0 for counts in reference.spike_counts.values())
    assert batched.n_images == 3 and batched.steps_per_second > 0


def test_a_batch_of_one_is_the_unbatched_run(nets):
    net = nets["conv"]
    x = images(net, 1, seed=2)
    assert_same(run_loihi(net, x, progress=False, batched=True, chunk_images=1),
                run_loihi(net, x, progress=False))


@pytest.mark.parametrize("name", ["conv", "pool"])
def test_chunking_does_not_change_results(nets, name):
    net = nets[name]
    x = images(net, 4, seed=3)
    reference = run_loihi(net, x, progress=False)
    for chunk in (1, 2, 4, None):
        assert_same(run_loihi(net, x, progress=False, batched=True, chunk_images=chunk),
                    reference)


def test_each_image_starts_from_rest(nets):
    """No input spike of one image reaches the next (nengo-loihi delivers input spikes a
    step late; `compat.rest` drops those still queued): in a sequence = alone."""
    net = nets["conv"]
    x = images(net, 2, seed=4)
    both = run_loihi(net, x, progress=False)
    alone = run_loihi(net, x[1:], progress=False)
    np.testing.assert_array_equal(both.outputs[1], alone.outputs[0])


def test_one_simulator_serves_both_paths(nets):
    """A reused simulator: the batched run leaves nengo-loihi's emulator state alone."""
    net = nets["conv"]
    x = images(net, 2, seed=5)
    sim = make_simulator(net)
    try:
        first = run_loihi(net, x, progress=False, simulator=sim, batched=True)
        reference = run_loihi(net, x, progress=False, simulator=sim)
        again = run_loihi(net, x, progress=False, simulator=sim, batched=True)
    finally:
        sim.close()
    assert_same(first, reference)
    assert_same(again, reference)


def test_noise_is_refused_by_name_and_the_emulator_still_runs(nets):
    net = nets["conv"]
    x = images(net, 1, seed=6)
    sim = make_simulator(net)
    try:
        compat.emulator_of(sim).compartment.noise.enabled[:3] = True
        with pytest.raises(BatchedEmulatorUnsupported, match="noise.*nengo-loihi"):
            run_loihi(net, x, progress=False, simulator=sim, batched=True)
        assert run_loihi(net, x, progress=False, simulator=sim).outputs.shape[0] == 1
    finally:
        sim.close()


def test_float_models_are_refused_by_name(nets):
    net = nets["conv"]
    sim = nengo_loihi.Simulator(net.network, dt=net.settings.dt, target="simreal",
                                progress_bar=False)
    try:
        with pytest.raises(BatchedEmulatorUnsupported, match="floating-point"):
            run_loihi(net, images(net, 1, seed=7), progress=False, simulator=sim, batched=True)
    finally:
        sim.close()


def test_the_emulator_setting():
    assert DeploySettings().emulator == "batched"
    assert DeploySettings.from_config({"emulator": "nengo-loihi"}).emulator == "nengo-loihi"
    with pytest.raises(ConfigError, match="loihi.emulator"):
        DeploySettings(emulator="fast")
    with pytest.raises(ConfigError, match="loihi.chunk_images"):
        DeploySettings(chunk_images=0)


def test_another_nengo_loihi_is_refused_by_name(nets, monkeypatch):
    net = nets["conv"]
    sim = make_simulator(net)
    monkeypatch.setattr(nengo_loihi, "__version__", "1.2.0")
    try:
        with pytest.raises(BatchedEmulatorUnsupported, match="another nengo-loihi.*1.2.0"):
            run_loihi(net, images(net, 1, seed=8), progress=False, simulator=sim, batched=True)
    finally:
        sim.close()
