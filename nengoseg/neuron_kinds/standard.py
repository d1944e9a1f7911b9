"""The neuron kinds nengoseg started with: Nengo's and nengo-loihi's, and their rates.

Each record names the NengoDL step functions its neurons run (the engine calls the
same ones, so both simulate alike) and its hybrid type (`nengoseg.neurons`).

========== ======================================= =============== ===================
kind       Nengo types                             converted from  on Loihi
========== ======================================= =============== ===================
relu       SpikingRectifiedLinear, RectifiedLinear relu (nengo)    SpikingRectifiedLinear
lif        LIF                                     softlif (nengo) LIF
loihi_relu LoihiSpikingRectifiedLinear             relu (loihi)    SpikingRectifiedLinear
loihi_lif  LoihiLIF                                softlif (loihi) LIF
softlif    nengo_dl.SoftLIFRate (rate)             -               no (rate)
lifrate    LIFRate (rate)                          -               no (rate)
========== ======================================= =============== ===================
"""

from types import SimpleNamespace

import nengo
import nengo_dl
import tensorflow as tf
from nengo_dl.neuron_builders import (
    LIFBuilder,
    LIFRateBuilder,
    RectifiedLinearBuilder,
    SoftLIFRateBuilder,
    SpikingRectifiedLinearBuilder,
)
from nengo_extras.loihi_training import LoihiLIFBuilder, LoihiSpikingRectifiedLinearBuilder
from nengo_loihi.neurons import (
    LoihiLIF,
    LoihiSpikingRectifiedLinear,
    discretize_tau_rc,
    discretize_tau_ref,
)

from nengoseg import neurons
from nengoseg.neuron_kinds.registry import NeuronKind, register

RATE_ONLY = "rate neurons do not spike (they are for exactness checks only)"
ZERO_VOLTAGE = {"voltage": nengo.dists.Choice([0])}


def relu_rate(params, J):
    return RectifiedLinearBuilder.step(params, J, params.dt)


def softlif_rate(params, J):
    return SoftLIFRateBuilder.step(params, J, params.dt)


def voltage_step(builder):
    """The registry ``step`` of a kind whose only state is its voltage: ``builder``'s
    (a NengoDL neuron builder's) own step function."""

    def step(params, J, state):
        out, voltage = builder.step(params, J, params.dt, state[0])
        return out, [voltage]

    return step


class ReLUGradient:
    """Hybrid builder mixin: the backward pass is the rectified linear rate's."""

    def rate_step(self, J, dt):
        return RectifiedLinearBuilder.step(self, J, dt)


_relu_step = voltage_step(SpikingRectifiedLinearBuilder)
_loihi_relu_step = voltage_step(LoihiSpikingRectifiedLinearBuilder)


def _loihi_relu_surrogate_step(params, J, state, spike):
    """`_loihi_relu_step` with the spike from ``spike``: ``voltage += J dt``, a spike
    where it passes 1, then reset to 0 (else floored at 0), as arithmetic (for BPTT)."""
    voltage = state[0] + J * params.dt
    spiked = spike(voltage - params.one)
    voltage = (params.one - spiked) * tf.maximum(voltage, params.zero)
    return spiked * params.alpha, [voltage]


def _lif_step(params, J, state):
    out, voltage, refractory = LIFBuilder.step(params, J, params.dt, *state)
    return out, [voltage, refractory]


def _loihi_lif_step(params, J, state):
    params = SimpleNamespace(**vars(params), discretize_tau_rc=discretize_tau_rc,
                             discretize_tau_ref=discretize_tau_ref)
    out, voltage, refractory = LoihiLIFBuilder.step(params, J, params.dt, *state)
    return out, [voltage, refractory]


def _sigma(neuron, sigma):
    return getattr(neuron, "sigma", 0.005) if sigma is None else sigma


def _initial_state(neuron):
    return neuron.initial_state if neuron.spiking else None


def _hybrid_relu(neuron, sigma):
    return neurons.HybridRectifiedLinear(amplitude=neuron.amplitude,
                                         initial_state=_initial_state(neuron))


def _hybrid_softlif(neuron, sigma):
    return neurons.HybridSoftLIF(
        tau_rc=neuron.tau_rc, tau_ref=neuron.tau_ref,
        min_voltage=getattr(neuron, "min_voltage", 0), amplitude=neuron.amplitude,
        sigma=_sigma(neuron, sigma), initial_state=_initial_state(neuron),
    )


def _on_chip_relu(tau_rc, tau_ref, amplitude):
    return nengo.SpikingRectifiedLinear(amplitude=amplitude, initial_state=ZERO_VOLTAGE)


def _on_chip_lif(tau_rc, tau_ref, amplitude):
    return nengo.LIF(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude,
                     initial_state=ZERO_VOLTAGE)


RELU = register(NeuronKind(
    name="relu",
    summary="Nengo's spiking rectified linear neuron (several spikes per step possible)",
    types={nengo.SpikingRectifiedLinear: True, nengo.RectifiedLinear: False},
    state=("voltage",),
    rate=relu_rate,
    step=_relu_step,
    hybrid_type=neurons.HybridRectifiedLinear,
    make_hybrid=_hybrid_relu,
    builders={neurons.HybridRectifiedLinear: neurons.HybridRectifiedLinearBuilder},
    converts=(("relu", "nengo"),),
    make=lambda rate: nengo.SpikingRectifiedLinear(amplitude=rate.amplitude),
    on_chip=_on_chip_relu,
    relu_loop="floor",
))

LIF = register(NeuronKind(
    name="lif",
    summary="Nengo's leaky integrate-and-fire neuron, trained with the soft LIF rate",
    types={nengo.LIF: True},
    state=("voltage", "refractory_time"),
    rate=softlif_rate,
    step=_lif_step,
    hybrid_type=neurons.HybridSoftLIF,
    make_hybrid=_hybrid_softlif,
    builders={neurons.HybridSoftLIF: neurons.HybridSoftLIFBuilder},
    converts=(("softlif", "nengo"),),
    make=lambda rate: nengo.LIF(tau_rc=rate.tau_rc, tau_ref=rate.tau_ref,
                                amplitude=rate.amplitude),
    on_chip=_on_chip_lif,
))

LOIHI_RELU = register(NeuronKind(
    name="loihi_relu",
    summary="nengo-loihi's model of Loihi's rectified linear neuron (reset to 0, one "
            "spike per step)",
    types={LoihiSpikingRectifiedLinear: True},
    state=("voltage",),
    rate=relu_rate,
    step=_loihi_relu_step,
    hybrid_type=neurons.HybridLoihiRectifiedLinear,
    make_hybrid=lambda n, sigma: neurons.HybridLoihiRectifiedLinear(
        amplitude=n.amplitude, initial_state=_initial_state(n)),
    builders={neurons.HybridLoihiRectifiedLinear: neurons.HybridLoihiRectifiedLinearBuilder},
    converts=(("relu", "loihi"),),
    make=lambda rate: LoihiSpikingRectifiedLinear(amplitude=rate.amplitude),
    on_chip=_on_chip_relu,
    relu_loop="reset",
    surrogate_step=_loihi_relu_surrogate_step,
))

LOIHI_LIF = register(NeuronKind(
    name="loihi_lif",
    summary="nengo-loihi's model of Loihi's LIF neuron (time constants as the chip holds them)",
    types={LoihiLIF: True},
    state=("voltage", "refractory_time"),
    rate=softlif_rate,
    step=_loihi_lif_step,
    hybrid_type=neurons.HybridLoihiLIF,
    make_hybrid=lambda n, sigma: neurons.HybridLoihiLIF(
        tau_rc=n.tau_rc, tau_ref=n.tau_ref, min_voltage=n.min_voltage, amplitude=n.amplitude,
        sigma=_sigma(n, sigma), initial_state=_initial_state(n)),
    builders={neurons.HybridLoihiLIF: neurons.HybridLoihiLIFBuilder},
    converts=(("softlif", "loihi"),),
    make=lambda rate: LoihiLIF(tau_rc=rate.tau_rc, tau_ref=rate.tau_ref,
                               amplitude=rate.amplitude),
    on_chip=_on_chip_lif,
))

def _rate_kind(name, summary, neuron_type, rate):
    return register(NeuronKind(name=name, summary=summary, types={neuron_type: False}, state=(),
                               rate=rate, make_hybrid=_hybrid_softlif, off_chip=RATE_ONLY))


SOFTLIF = _rate_kind("softlif", "NengoDL's soft LIF rate neuron (what a SoftLIF layer converts "
                     "to)", nengo_dl.SoftLIFRate, softlif_rate)
LIFRATE = _rate_kind("lifrate", "Nengo's LIF rate neuron", nengo.LIFRate,
                     lambda params, J: LIFRateBuilder.step(params, J, params.dt))
