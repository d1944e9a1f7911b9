"""`nengoseg.loihi.limits` says what nengo-loihi and KerasSpiking say (as its docstring
promises), and `nengoseg.loihi.energy` prices activity with those figures."""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest

from nengoseg.loihi import energy, limits


def test_core_limits_are_nengo_loihis_own():
    from nengo_loihi import block
    from nengo_loihi.builder import split_blocks, validate

    assert limits.MAX_COMPARTMENTS == block.MAX_COMPARTMENTS == 1024
    assert limits.MAX_IN_AXONS == block.MAX_IN_AXONS == 4096
    assert limits.MAX_OUT_AXONS == block.MAX_OUT_AXONS == 4096
    assert limits.MAX_SYNAPSE_BITS == block.MAX_SYNAPSE_BITS == 1048576
    # the validation and the splitting nengo-loihi runs use the same constants
    for module in (validate, split_blocks):
        assert module.MAX_COMPARTMENTS == limits.MAX_COMPARTMENTS
        assert module.MAX_IN_AXONS == limits.MAX_IN_AXONS
        assert module.MAX_OUT_AXONS == limits.MAX_OUT_AXONS
        assert module.MAX_SYNAPSE_BITS == limits.MAX_SYNAPSE_BITS
    assert limits.LIMITS == {"compartments": block.MAX_COMPARTMENTS,
                             "in_axons": block.MAX_IN_AXONS,
                             "out_axons": block.MAX_OUT_AXONS,
                             "synapse_bits": block.MAX_SYNAPSE_BITS}
    # weights: the widest weight of a synapse configuration
    assert limits.WEIGHT_BITS == max(block.SynapseConfig.WEIGHT_BITS_MAP) == 8


def test_cores_per_chip_is_nengo_loihis_allocator_limit():
    from nengo_loihi.hardware.allocators import Greedy

    default = inspect.signature(Greedy.__init__).parameters["cores_per_chip"].default
    assert limits.CORES_PER_CHIP == default == 128
    Greedy(cores_per_chip=limits.CORES_PER_CHIP)
    with pytest.raises(ValueError, match="128 cores"):
        Greedy(cores_per_chip=limits.CORES_PER_CHIP + 1)


@pytest.mark.parametrize("kind", ["LoihiSpikingRectifiedLinear", "LoihiLIF"])
def test_loihi_neurons_spike_at_most_once_per_step(kind):
    import nengo_loihi.neurons

    neuron_type = getattr(nengo_loihi.neurons, kind)()
    if kind == "LoihiLIF":
        neuron_type = nengo_loihi.neurons.LoihiLIF(tau_ref=0.0)  # no refractory pause
    dt = 0.001
    currents = np.array([0.0, 1.0, 1e3, 1e6])
    # the spiking step itself: a huge current gives one spike per step, never more
    state = {name: np.zeros(4) for name in neuron_type.state}
    output = np.zeros(4)
    spikes = np.zeros(4)
    for _ in range(50):
        neuron_type.step(dt, currents, output, **{k: v for k, v in state.items() if k != "output"})
        spikes += output * dt / neuron_type.amplitude
        assert np.all(output * dt / neuron_type.amplitude <= limits.MAX_SPIKES_PER_STEP + 1e-9)
    assert spikes[-1] == pytest.approx(50 * limits.MAX_SPIKES_PER_STEP)


def test_loihi_energy_figures_are_keras_spikings_device_table():
    from keras_spiking import ModelEnergy

    loihi = ModelEnergy.devices["loihi"]
    assert loihi["spiking"]
    assert limits.LOIHI_ENERGY_PER_SYNOP == loihi["energy_per_synop"]
    assert limits.LOIHI_ENERGY_PER_NEURON_UPDATE == loihi["energy_per_neuron"]


def test_energy_rows_price_synops_and_neuron_updates_as_keras_spiking_does():
    """Joules per inference = synops x energy_per_synop + neurons x steps x energy_per_neuron
    (KerasSpiking's `ModelEnergy.layer_energy` for a spiking device); the 45 nm figure
    prices synops as accumulates."""
    from keras_spiking import ModelEnergy

    loihi = ModelEnergy.devices["loihi"]
    net = SimpleNamespace(on_chip_layers=[SimpleNamespace(n_neurons=100), SimpleNamespace(n_neurons=28)])
    row = energy._row(net, synops=5000.0, n_steps=20)
    assert row["neuron_updates"] == 128 * 20
    assert row["joules_per_inference"] == pytest.approx(
        5000.0 * loihi["energy_per_synop"] + 128 * 20 * loihi["energy_per_neuron"], rel=1e-12)
    assert row["joules_per_inference_45nm"] == pytest.approx(5000.0 * 0.9e-12, rel=1e-12)
    assert limits.ANN_ENERGY_PER_MAC == pytest.approx(4.6e-12)  # 3.7 pJ multiply + 0.9 pJ add
