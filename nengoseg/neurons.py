"""Hybrid spiking neurons: spikes in the forward pass, rate gradients backward.

Hybrid ANN-SNN co-training (Baltes, Abujahar, Yue, Smith and Liu, "Joint ANN-SNN
co-training for object localization and image segmentation", sections 2.2 and
3.1) fine-tunes a converted spiking network with alternating passes: the forward
pass is an SNN inference over ``n_steps`` (spike trains through the synapses),
the backward pass uses the gradient of the matching rate neuron. LocNet uses
*hybrid soft LIF* neurons, the CAE *hybrid rectified linear* neurons. This module provides
both as Nengo neuron types, with NengoDL builders.

Why NengoDL needs new builders
------------------------------
NengoDL cannot do this with its own spiking neurons.
``nengo_dl.neuron_builders.TFNeuronBuilder.build_step`` runs a spiking neuron
(``nengo.LIF``, ``nengo.SpikingRectifiedLinear``) through
``smart_cond(config.training, ...)``:

- inference (``training=False``): the spiking ``step``, wrapped in
  ``tf.stop_gradient`` (no gradient at all);
- training (``training=True``, e.g. inside ``sim.fit``): ``training_step``, the
  *rate* approximation (LIFRate / SoftLIFRate with ``lif_smoothing`` /
  RectifiedLinear), in **both** passes, and the neuron state (voltage,
  refractory time) is written back unchanged, i.e. held constant.

So ``sim.fit`` on a converted spiking network trains an ANN; the spikes never
enter the loss.

How the hybrid builders work
----------------------------
`HybridRectifiedLinearBuilder` and `HybridSoftLIFBuilder` subclass NengoDL's
``SpikingRectifiedLinearBuilder`` / ``LIFBuilder`` (reusing their ``step``, the
exact spiking update NengoDL uses for ``nengo.SpikingRectifiedLinear`` /
``nengo.LIF``) and override:

``build_pre``
    (soft LIF only) takes the smoothing ``sigma`` from the neuron type itself
    instead of NengoDL's global ``lif_smoothing`` setting.
``build_step``
    ignores the ``training`` flag (``training_step`` is never called). Every
    time step, in inference and in training alike, it

    1. runs the spiking ``step`` on the input current ``J`` and writes the
       updated state back (the voltage integrates across time steps);
    2. computes the rate neuron on the same ``J`` (``RectifiedLinear`` or
       ``SoftLIFRate`` with the neuron's ``sigma``);
    3. outputs ``spikes + (rate - stop_gradient(rate))``.

    This has the value and the gradient of ``rate + stop_gradient(spikes -
    rate)``, but its forward value is bit-for-bit the spikes (``rate - rate`` is
    exactly 0, whereas in float32 ``rate + (spikes - rate)`` is one ulp off
    ``spikes`` for a few percent of rates). Spikes and state are under ``stop_gradient`` (their derivative is
    zero almost everywhere, and NaNs from the refractory-time arithmetic must
    not leak into gradients), so d output / d J is the rate neuron's derivative.
    With ``inference_only=True`` no gradient can be taken and only the spikes
    are computed.

The builders are registered in
``nengo_dl.neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL`` (the hook nengo-loihi
uses for ``LoihiLIF``) by the neuron-kind registry (`nengoseg.neuron_kinds`), whose
records name each hybrid type and its builder.

Outside NengoDL
---------------
The hybrid types subclass ``nengo.SpikingRectifiedLinear`` / ``nengo.LIF``
without changing their ``step``, so the reference ``nengo.Simulator`` (and any
backend that builds by ``isinstance``, such as nengo-loihi) runs them exactly
as the spiking neuron.

Conversion
----------
`nengoseg.neuron_kinds.hybrid_of` maps a neuron type to its hybrid version;
`nengoseg.neuron_kinds.swap_to_hybrid` does that for every ensemble of a network
built by ``nengo_dl.Converter``, in place.
The converter's ``scale_firing_rates`` lives on the ensembles as ``gain`` and
``bias`` (inputs multiplied by the scale) and on the neuron type as
``amplitude`` (divided by the scale); the swap keeps gain and bias (the
ensemble is not rebuilt) and copies the amplitude, so the scaling is preserved.
The hybrid types can also be given directly to the converter, e.g.
``swap_activations={tf.nn.relu: HybridRectifiedLinear()}``.
"""

import nengo
import nengo_dl
import tensorflow as tf
from nengo.params import NumberParam
from nengo_dl.neuron_builders import (
    LIFBuilder,
    RectifiedLinearBuilder,
    SoftLIFRateBuilder,
    SpikingRectifiedLinearBuilder,
)
from nengo_extras.loihi_training import LoihiLIFBuilder, LoihiSpikingRectifiedLinearBuilder
from nengo_loihi.neurons import LoihiLIF, LoihiSpikingRectifiedLinear


__all__ = [
    "HybridLoihiLIF",
    "HybridLoihiRectifiedLinear",
    "HybridRectifiedLinear",
    "HybridSoftLIF",
    "HybridRectifiedLinearBuilder",
    "HybridSoftLIFBuilder",
]


# ---------------------------------------------------------------------------
# neuron types


class HybridRectifiedLinear(nengo.SpikingRectifiedLinear):
    """Spiking rectified linear neuron trained with the rectified linear gradient.

    Forward: ``nengo.SpikingRectifiedLinear`` (state ``voltage``). Backward in
    NengoDL: the gradient of ``nengo.RectifiedLinear(amplitude)``, i.e.
    ``amplitude`` where the input current is positive, 0 elsewhere.

    Parameters
    ----------
    amplitude : float
        Scaling factor on the neuron output (each spike is ``amplitude / dt``).
    initial_state : {str: Distribution or array_like}
        Initial ``voltage`` (as for ``nengo.SpikingRectifiedLinear``).
    """

    spiking = True

    def rate_neuron(self):
        """The rate neuron whose gradient is used: ``nengo.RectifiedLinear``."""
        return nengo.RectifiedLinear(amplitude=self.amplitude)

    def spiking_neuron(self):
        """The plain spiking neuron this one behaves as in the forward pass."""
        return nengo.SpikingRectifiedLinear(
            amplitude=self.amplitude, initial_state=self.initial_state
        )


class HybridSoftLIF(nengo.LIF):
    """Spiking LIF neuron trained with the soft LIF rate gradient.

    Forward: ``nengo.LIF`` (states ``voltage`` and ``refractory_time``).
    Backward in NengoDL: the gradient of ``nengo_dl.SoftLIFRate`` with the same
    ``tau_rc``, ``tau_ref``, ``amplitude`` and smoothing ``sigma`` (Hunsberger
    and Eliasmith's soft LIF, the paper's "hybrid soft LIF").

    Parameters
    ----------
    tau_rc : float
        Membrane RC time constant, in seconds.
    tau_ref : float
        Absolute refractory period, in seconds.
    min_voltage : float
        Minimum membrane voltage (spiking forward pass only).
    amplitude : float
        Scaling factor on the neuron output (each spike is ``amplitude / dt``).
    sigma : float
        Smoothing of the rate curve around the firing threshold, used by the
        gradient (0.005 in the paper's LocNet).
    initial_state : {str: Distribution or array_like}
        Initial ``voltage`` / ``refractory_time`` (as for ``nengo.LIF``).
    """

    spiking = True

    sigma = NumberParam("sigma", low=0, low_open=True)

    def __init__(
        self,
        tau_rc=0.02,
        tau_ref=0.002,
        min_voltage=0,
        amplitude=1,
        sigma=0.005,
        initial_state=None,
    ):
        super().__init__(
            tau_rc=tau_rc,
            tau_ref=tau_ref,
            min_voltage=min_voltage,
            amplitude=amplitude,
            initial_state=initial_state,
        )
        self.sigma = sigma

    def rate_neuron(self):
        """The rate neuron whose gradient is used: ``nengo_dl.SoftLIFRate``."""
        return nengo_dl.SoftLIFRate(
            sigma=self.sigma,
            tau_rc=self.tau_rc,
            tau_ref=self.tau_ref,
            amplitude=self.amplitude,
        )

    def spiking_neuron(self):
        """The plain spiking neuron this one behaves as in the forward pass."""
        return nengo.LIF(
            tau_rc=self.tau_rc,
            tau_ref=self.tau_ref,
            min_voltage=self.min_voltage,
            amplitude=self.amplitude,
            initial_state=self.initial_state,
        )


class HybridLoihiRectifiedLinear(LoihiSpikingRectifiedLinear):
    """Loihi's spiking rectified linear neuron trained with the rectified linear gradient.

    Forward: `nengo_loihi.neurons.LoihiSpikingRectifiedLinear` (the chip's
    neuron: the voltage integrates the input current, negative too, is floored
    at 0 and reset to 0 at a spike, at most one spike per step). Backward in
    NengoDL: the gradient of ``nengo.RectifiedLinear(amplitude)``.
    """

    spiking = True

    def rate_neuron(self):
        return nengo.RectifiedLinear(amplitude=self.amplitude)

    def spiking_neuron(self):
        return LoihiSpikingRectifiedLinear(amplitude=self.amplitude)


class HybridLoihiLIF(LoihiLIF):
    """Loihi's LIF neuron trained with the soft LIF rate gradient.

    Forward: `nengo_loihi.neurons.LoihiLIF` (time constants rounded as the chip
    holds them, reset to 0). Backward in NengoDL: the gradient of
    ``nengo_dl.SoftLIFRate`` with the same ``tau_rc``, ``tau_ref``, ``amplitude``
    and smoothing ``sigma``.
    """

    spiking = True

    sigma = NumberParam("sigma", low=0, low_open=True)

    def __init__(self, tau_rc=0.02, tau_ref=0.002, min_voltage=0, amplitude=1, sigma=0.005,
                 initial_state=None):
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage,
                         amplitude=amplitude, initial_state=initial_state)
        self.sigma = sigma

    def rate_neuron(self):
        return nengo_dl.SoftLIFRate(sigma=self.sigma, tau_rc=self.tau_rc,
                                    tau_ref=self.tau_ref, amplitude=self.amplitude)

    def spiking_neuron(self):
        return LoihiLIF(tau_rc=self.tau_rc, tau_ref=self.tau_ref, min_voltage=self.min_voltage,
                        amplitude=self.amplitude)


# ---------------------------------------------------------------------------
# NengoDL builders


class HybridStep:
    """``build_step`` shared by the hybrid builders (see the module docstring).

    Subclasses provide the spiking ``step(J, dt, **state)`` (from the NengoDL
    spiking builder) and ``rate_step(J, dt)`` (the rate neuron).
    """

    def rate_step(self, J, dt):
        raise NotImplementedError("Subclasses must implement")

    def build_step(self, signals, **step_kwargs):
        J = signals.gather(self.J_data)
        state = {name: signals.gather(data) for name, data in self.state_data.items()}

        # spiking update, in training too: the state moves on every step
        spikes, *new_state = tf.nest.flatten(self.step(J, signals.dt, **state))
        spikes = tf.stop_gradient(spikes)
        new_state = [tf.stop_gradient(s) for s in new_state]

        if self.config.inference_only:
            out = spikes
        else:
            # value: exactly `spikes`; gradient: d rate / d J
            rate = self.rate_step(J, signals.dt)
            out = spikes + (rate - tf.stop_gradient(rate))

        signals.scatter(self.output_data, out)
        for data, value in zip(self.state_data.values(), new_state):
            signals.scatter(data, value)


class HybridRectifiedLinearBuilder(HybridStep, SpikingRectifiedLinearBuilder):
    """NengoDL builder for `HybridRectifiedLinear`.

    Forward: ``SpikingRectifiedLinearBuilder.step``; gradient:
    ``RectifiedLinearBuilder.step`` (``amplitude * relu(J)``).
    """

    def rate_step(self, J, dt):
        return RectifiedLinearBuilder.step(self, J, dt)


class _SoftLIFGradient(HybridStep):
    """The soft LIF rate gradient, with each neuron type's own ``sigma``."""

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        # LIFBuilder uses the global `lif_smoothing` setting; use our own sigma
        self.sigma = signals.op_constant(
            [op.neurons for op in self.ops],
            [op.J.shape[0] for op in self.ops],
            "sigma",
            signals.dtype,
        )

    def rate_step(self, J, dt):
        return SoftLIFRateBuilder.step(self, J, dt)


class HybridSoftLIFBuilder(_SoftLIFGradient, LIFBuilder):
    """NengoDL builder for `HybridSoftLIF`.

    Forward: ``LIFBuilder.step``; gradient: ``SoftLIFRateBuilder.step`` with
    each neuron type's own ``sigma``.
    """


class HybridLoihiRectifiedLinearBuilder(HybridStep, LoihiSpikingRectifiedLinearBuilder):
    """NengoDL builder for `HybridLoihiRectifiedLinear`.

    Forward: nengo-extras' ``LoihiSpikingRectifiedLinearBuilder.step`` (the
    builder nengo-loihi registers for ``LoihiSpikingRectifiedLinear``); gradient:
    ``RectifiedLinearBuilder.step``.
    """

    def rate_step(self, J, dt):
        return RectifiedLinearBuilder.step(self, J, dt)


class HybridLoihiLIFBuilder(_SoftLIFGradient, LoihiLIFBuilder):
    """NengoDL builder for `HybridLoihiLIF`.

    Forward: nengo-extras' ``LoihiLIFBuilder.step``; gradient:
    ``SoftLIFRateBuilder.step`` with each neuron type's own ``sigma``.
    """
