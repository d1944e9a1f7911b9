"""Multi-threshold integrate-and-fire neurons (Spiking-UNet, eq. 4-6).

Spiking-UNet (``shared/papers/spiking-unet.txt``, section 3.2)::

    V[t] = V[t-1] + I[t] - sum_i Vth_i s_i[t]       (4)
    s_i[t] = 1 where the voltage left after the higher thresholds passes Vth_i   (5)
    o[t] = sum_i Vth_i s_i[t]                        (6)

The thresholds go from high to low (the paper's, and the default here: 2, 1, 0.5 and
0.25 times the layer threshold; Theorem 3.1 motivates halving). Each step the voltage
is compared with each threshold in turn, one spike per threshold at most, and each
spike subtracts its threshold, as the authors' code does. In Nengo's units
(threshold 1, input current ``J = gain * x + bias`` per second) one step is::

    voltage += J * dt                          # signed input
    for th in thresholds:                      # high to low
        spiked = voltage > th
        voltage -= spiked * th                 # reset by subtraction
        out += spiked * th
    voltage = max(voltage, min_voltage)        # no floor unless min_voltage is given
    out *= amplitude / dt

So a neuron passes up to ``sum(thresholds)`` (3.75) thresholds' worth of input per
step instead of one, in steps of the lowest threshold: a layer keeps its
``convert.target_rate_hz`` scale (the percentile activation is one threshold per
step) but no longer clips what lies above it. The rate counterpart is
``amplitude * clip(J, 0, sum(thresholds) / dt)``; hybrid training uses the rectified
linear rate's gradient (the paper's fine-tuning also passes the ReLU's gradient).

Firing rates (and the synaptic operations counted from them) read a neuron's output
divided by its amplitude, so for these neurons they count thresholds passed
(a spike at threshold 2 counts twice, one at 0.25 a quarter), not spike events.

Loihi 1 compartments emit at most one unit spike per step and reset to 0, so these
neurons do not go on chip. One compartment per threshold is not an exact mapping
either: the thresholds share one voltage and are checked high to low within a step
(each sees what the higher ones subtracted), while separate compartments have their
own voltages and see each other's spikes a step later; nengo-loihi 1.1 has no
multi-compartment neurons and no reset by subtraction (see the record's ``off_chip``).

Conversion: ``convert.neuron_model: multi_threshold`` (ReLU layers), with
``convert.thresholds`` (default the paper's). Everything nengoseg needs is in this
module: the Nengo type, the NengoDL builders, the hybrid type and the registry record.
"""

from types import SimpleNamespace

import numpy as np
import tensorflow as tf
from nengo.exceptions import BuildError
from nengo.params import TupleParam
from nengo_dl.neuron_builders import RectifiedLinearBuilder

from nengoseg.neuron_kinds.if_subtract import IFSubtract
from nengoseg.neuron_kinds.registry import NeuronKind, check_thresholds, register
from nengoseg.neuron_kinds.standard import ReLUGradient, relu_rate, voltage_step
from nengoseg.neurons import HybridStep

# the paper's thresholds, in units of the layer threshold (section 4.4, Table 4)
PAPER_THRESHOLDS = (2.0, 1.0, 0.5, 0.25)


class MultiThresholdIF(IFSubtract):
    """Multi-threshold integrate-and-fire neuron (see the module docstring): `IFSubtract`
    with several thresholds (one threshold of 1 is `IFSubtract`).

    Parameters
    ----------
    amplitude : float
        Scaling factor on the output (a spike at threshold ``th`` is
        ``th * amplitude / dt``).
    thresholds : tuple of float
        Strictly decreasing, > 0, in units of the neuron's threshold (1).
    min_voltage : float
        Floor of the voltage; ``-inf`` (default) integrates negative input freely.
    initial_state : {str: Distribution or array_like}
        Initial ``voltage`` (default 0).
    """

    thresholds = TupleParam("thresholds")

    def __init__(self, amplitude=1, thresholds=PAPER_THRESHOLDS, min_voltage=-np.inf,
                 initial_state=None):
        super().__init__(amplitude, min_voltage, initial_state)
        self.thresholds = check_thresholds(thresholds)

    def rates(self, x, gain, bias):
        """The rate for a constant input: ``amplitude * clip(J, 0, sum(thresholds) / dt)``
        at dt = 1 ms."""
        J = self.current(x, gain, bias)
        return self.amplitude * np.clip(J, 0, sum(self.thresholds) * 1000.0)

    def step(self, dt, J, output, voltage):
        voltage += J * dt
        out = np.zeros_like(voltage)
        for threshold in self.thresholds:
            spiked = voltage > threshold
            voltage -= spiked * threshold
            out += spiked * threshold
        output[...] = out * (self.amplitude / dt)
        np.maximum(voltage, self.min_voltage, out=voltage)


class MultiThresholdBuilder(RectifiedLinearBuilder):
    """NengoDL builder for `MultiThresholdIF` (the same update as its NumPy ``step``)."""

    spiking = True

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        sizes = [op.J.shape[0] for op in self.ops]
        self.min_voltage = signals.op_constant(
            [op.neurons for op in self.ops], sizes, "min_voltage", signals.dtype)
        counts = {len(op.neurons.thresholds) for op in self.ops}
        if len(counts) != 1:
            raise BuildError("multi-threshold neurons merged into one NengoDL operator need the "
                             f"same number of thresholds; got {sorted(counts)}")
        self.thresholds = tuple(
            signals.op_constant([SimpleNamespace(value=op.neurons.thresholds[i])
                                 for op in self.ops], sizes, "value", signals.dtype)
            for i in range(counts.pop())
        )

    def step(self, J, dt, voltage):
        voltage = voltage + J * dt
        out = tf.zeros_like(voltage)
        for threshold in self.thresholds:
            spiked = tf.cast(voltage > threshold, J.dtype) * threshold
            voltage = voltage - spiked
            out = out + spiked
        return out * self.alpha, tf.maximum(voltage, self.min_voltage)

    def training_step(self, J, dt, **state):
        return RectifiedLinearBuilder.step(self, J, dt)


class HybridMultiThresholdIF(MultiThresholdIF):
    """`MultiThresholdIF` trained with the rectified linear gradient (spikes forward)."""


class HybridMultiThresholdBuilder(ReLUGradient, HybridStep, MultiThresholdBuilder):
    """NengoDL builder for `HybridMultiThresholdIF`: `MultiThresholdBuilder.step`
    forward, ``RectifiedLinearBuilder.step`` backward."""


def _surrogate_step(params, J, state, spike):
    """The step with each threshold's spike from ``spike(voltage - threshold)`` and the
    resets as arithmetic (for BPTT)."""
    voltage = state[0] + J * params.dt
    out = tf.zeros_like(voltage)
    for threshold in params.thresholds:
        spiked = spike(voltage - threshold) * threshold
        voltage = voltage - spiked
        out = out + spiked
    return out * params.alpha, [tf.maximum(voltage, params.min_voltage)]


MULTI_THRESHOLD = register(NeuronKind(
    name="multi_threshold",
    summary="integrate-and-fire with several thresholds (high to low, one spike each per "
            "step, reset by subtraction; output the threshold-weighted spikes; Spiking-UNet "
            "eq. 4-6)",
    types={MultiThresholdIF: True},
    state=("voltage",),
    rate=relu_rate,
    step=voltage_step(MultiThresholdBuilder),
    surrogate_step=_surrogate_step,
    hybrid_type=HybridMultiThresholdIF,
    make_hybrid=lambda n, sigma: HybridMultiThresholdIF(
        amplitude=n.amplitude, thresholds=n.thresholds, min_voltage=n.min_voltage,
        initial_state=n.initial_state),
    builders={MultiThresholdIF: MultiThresholdBuilder,
              HybridMultiThresholdIF: HybridMultiThresholdBuilder},
    converts=(("relu", "multi_threshold"),),
    make=lambda rate: MultiThresholdIF(amplitude=rate.amplitude),
    off_chip="a Loihi 1 compartment emits at most one unit spike per step and resets its "
             "voltage to 0, while a multi-threshold neuron emits up to one spike per "
             "threshold per step from one shared voltage, checked high to low, and subtracts "
             "what it emitted; one compartment per threshold cannot reproduce that exactly "
             "(each compartment has its own voltage and sees the others' spikes only a step "
             "later, and nengo-loihi 1.1 exposes neither multi-compartment neurons nor reset "
             "by subtraction); use neuron_model: loihi to deploy",
))
