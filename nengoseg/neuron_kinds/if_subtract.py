"""Integrate-and-fire neurons with reset by subtraction (the three-stage paper's IF).

Three-stage SNN fine-tuning for hippocampus segmentation
(``shared/papers/three-stage-snn-finetuning-hippocampus.txt``, eq. 1-2)::

    u[t] = u[t-1] + sum_j w_ij o_j - v o[t-1],   o[t] = 1 if u[t] > v else 0

In Nengo's units (threshold 1, input current ``J = gain * x + bias`` per second)
one step is::

    voltage += J * dt                  # signed: no floor at 0 ...
    spiked = voltage > 1               # at most one spike per step
    voltage -= spiked                  # reset by subtracting the threshold
    voltage = max(voltage, min_voltage)  # ... unless min_voltage is given
    out = spiked * amplitude / dt

Unlike ``nengo.SpikingRectifiedLinear`` (input floored at 0, any number of spikes
per step) and Loihi's neurons (reset to 0), a spike removes exactly the threshold,
so the residual voltage carries over and the spike count tracks the integrated
input (the ReLU-to-IF conversion of Rueckauer et al. 2017). Hybrid training uses
the rectified linear rate's gradient. Loihi 1 resets a compartment's voltage to 0
after a spike, so these neurons do not go on chip.

Everything nengoseg needs is in this module: the Nengo type (with its NumPy step for
the reference simulator), the NengoDL builders, the hybrid type and the registry
record. Conversion: ``convert.neuron_model: if_subtract`` (ReLU layers).
"""

import nengo
import numpy as np
import tensorflow as tf
from nengo.params import NumberParam
from nengo_dl.neuron_builders import RectifiedLinearBuilder

from nengoseg.neuron_kinds.registry import NeuronKind, register
from nengoseg.neuron_kinds.standard import ReLUGradient, relu_rate, voltage_step
from nengoseg.neurons import HybridStep


class IFSubtract(nengo.neurons.NeuronType):
    """Integrate-and-fire neuron with reset by subtraction (see the module docstring).

    Parameters
    ----------
    amplitude : float
        Scaling factor on the output (each spike is ``amplitude / dt``).
    min_voltage : float
        Floor of the voltage; ``-inf`` (default) integrates negative input freely,
        0 floors it as Loihi does.
    initial_state : {str: Distribution or array_like}
        Initial ``voltage`` (default 0).
    """

    state = {"voltage": nengo.dists.Choice([0])}
    spiking = True
    negative = False

    amplitude = NumberParam("amplitude", low=0, low_open=True)
    min_voltage = NumberParam("min_voltage", high=0)

    def __init__(self, amplitude=1, min_voltage=-np.inf, initial_state=None):
        super().__init__(initial_state)
        self.amplitude = amplitude
        self.min_voltage = min_voltage

    def gain_bias(self, max_rates, intercepts):
        return nengo.RectifiedLinear.gain_bias(self, max_rates, intercepts)

    def max_rates_intercepts(self, gain, bias):
        return nengo.RectifiedLinear.max_rates_intercepts(self, gain, bias)

    def rates(self, x, gain, bias):
        """The rate for a constant input: ``amplitude * clip(J, 0, 1 / dt)`` at dt = 1 ms."""
        J = self.current(x, gain, bias)
        return self.amplitude * np.clip(J, 0, 1000.0)

    def step(self, dt, J, output, voltage):
        voltage += J * dt
        spiked = voltage > 1
        output[...] = spiked * (self.amplitude / dt)
        voltage -= spiked
        np.maximum(voltage, self.min_voltage, out=voltage)


class IFSubtractBuilder(RectifiedLinearBuilder):
    """NengoDL builder for `IFSubtract` (the same update as its NumPy ``step``)."""

    spiking = True

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        self.one = signals.one
        self.min_voltage = signals.op_constant(
            [op.neurons for op in self.ops], [op.J.shape[0] for op in self.ops],
            "min_voltage", signals.dtype,
        )

    def step(self, J, dt, voltage):
        voltage = voltage + J * dt
        spiked = tf.cast(voltage > self.one, J.dtype)
        voltage = tf.maximum(voltage - spiked, self.min_voltage)
        return spiked * self.alpha, voltage

    def training_step(self, J, dt, **state):
        return RectifiedLinearBuilder.step(self, J, dt)


class HybridIFSubtract(IFSubtract):
    """`IFSubtract` trained with the rectified linear gradient (spikes forward)."""


class HybridIFSubtractBuilder(ReLUGradient, HybridStep, IFSubtractBuilder):
    """NengoDL builder for `HybridIFSubtract`: `IFSubtractBuilder.step` forward,
    ``RectifiedLinearBuilder.step`` backward."""


def _surrogate_step(params, J, state, spike):
    """The step with the spike from ``spike`` and the reset as arithmetic (for BPTT)."""
    voltage = state[0] + J * params.dt
    spiked = spike(voltage - params.one)
    voltage = tf.maximum(voltage - spiked, params.min_voltage)
    return spiked * params.alpha, [voltage]


IF_SUBTRACT = register(NeuronKind(
    name="if_subtract",
    summary="integrate-and-fire, reset by subtracting the threshold, signed input, at most "
            "one spike per step (three-stage paper, eq. 1-2)",
    types={IFSubtract: True},
    state=("voltage",),
    rate=relu_rate,
    step=voltage_step(IFSubtractBuilder),
    surrogate_step=_surrogate_step,
    hybrid_type=HybridIFSubtract,
    make_hybrid=lambda n, sigma: HybridIFSubtract(
        amplitude=n.amplitude, min_voltage=n.min_voltage, initial_state=n.initial_state),
    builders={IFSubtract: IFSubtractBuilder, HybridIFSubtract: HybridIFSubtractBuilder},
    converts=(("relu", "if_subtract"),),
    make=lambda rate: IFSubtract(amplitude=rate.amplitude),
    off_chip="Loihi 1 resets a compartment's voltage to 0 after a spike; reset by subtraction "
             "has no on-chip equivalent in nengo-loihi 1.1 (use neuron_model: loihi to deploy)",
))
