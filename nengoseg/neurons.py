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
``nengo_dl.neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL`` when this module
is imported (the hook nengo-loihi uses for ``LoihiLIF``); `install_builders`
does it again idempotently.

Outside NengoDL
---------------
The hybrid types subclass ``nengo.SpikingRectifiedLinear`` / ``nengo.LIF``
without changing their ``step``, so the reference ``nengo.Simulator`` (and any
backend that builds by ``isinstance``, such as nengo-loihi) runs them exactly
as the spiking neuron.

Conversion
----------
`hybrid_of` maps a neuron type to its hybrid version; `swap_to_hybrid` does that
for every ensemble of a network built by ``nengo_dl.Converter``, in place.
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
    SimNeuronsBuilder,
    SoftLIFRateBuilder,
    SpikingRectifiedLinearBuilder,
)
from nengo_extras.loihi_training import LoihiLIFBuilder, LoihiSpikingRectifiedLinearBuilder
from nengo_loihi.neurons import LoihiLIF, LoihiSpikingRectifiedLinear

from nengoseg.errors import ConversionError

__all__ = [
    "HybridLoihiLIF",
    "HybridLoihiRectifiedLinear",
    "HybridRectifiedLinear",
    "HybridSoftLIF",
    "HybridRectifiedLinearBuilder",
    "HybridSoftLIFBuilder",
    "hybrid_of",
    "install_builders",
    "swap_to_hybrid",
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

    def __init__(self, tau_rc=0.02, tau_ref=0.002, min_voltage=0, amplitude=1, sigma=0.005):
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage,
                         amplitude=amplitude)
        self.sigma = sigma

    def rate_neuron(self):
        return nengo_dl.SoftLIFRate(sigma=self.sigma, tau_rc=self.tau_rc,
                                    tau_ref=self.tau_ref, amplitude=self.amplitude)

    def spiking_neuron(self):
        return LoihiLIF(tau_rc=self.tau_rc, tau_ref=self.tau_ref, min_voltage=self.min_voltage,
                        amplitude=self.amplitude)


# ---------------------------------------------------------------------------
# NengoDL builders


class _HybridStep:
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


class HybridRectifiedLinearBuilder(_HybridStep, SpikingRectifiedLinearBuilder):
    """NengoDL builder for `HybridRectifiedLinear`.

    Forward: ``SpikingRectifiedLinearBuilder.step``; gradient:
    ``RectifiedLinearBuilder.step`` (``amplitude * relu(J)``).
    """

    def rate_step(self, J, dt):
        return RectifiedLinearBuilder.step(self, J, dt)


class _SoftLIFGradient(_HybridStep):
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


class HybridLoihiRectifiedLinearBuilder(_HybridStep, LoihiSpikingRectifiedLinearBuilder):
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


_BUILDERS = {
    HybridRectifiedLinear: HybridRectifiedLinearBuilder,
    HybridSoftLIF: HybridSoftLIFBuilder,
    HybridLoihiRectifiedLinear: HybridLoihiRectifiedLinearBuilder,
    HybridLoihiLIF: HybridLoihiLIFBuilder,
}


def install_builders():
    """Register the hybrid builders in NengoDL's ``TF_NEURON_IMPL`` (idempotent).

    Called when this module is imported; call it again only if something reset
    NengoDL's table.
    """
    SimNeuronsBuilder.TF_NEURON_IMPL.update(_BUILDERS)


install_builders()


# ---------------------------------------------------------------------------
# conversion


_RECTIFIED_LINEAR = (nengo.SpikingRectifiedLinear, nengo.RectifiedLinear)
_LIF = (nengo.LIF, nengo_dl.SoftLIFRate, nengo.LIFRate)
_ACCEPTED = (
    "nengo.SpikingRectifiedLinear, nengo.RectifiedLinear, nengo.LIF, "
    "nengo_dl.SoftLIFRate, nengo.LIFRate, nengo_loihi.neurons.LoihiSpikingRectifiedLinear, "
    "nengo_loihi.neurons.LoihiLIF (or a hybrid type)"
)


def hybrid_of(neuron_type, sigma=None):
    """The hybrid version of a neuron type, with the same parameters.

    - ``nengo.SpikingRectifiedLinear``, ``nengo.RectifiedLinear`` ->
      `HybridRectifiedLinear` with the same ``amplitude``;
    - ``nengo.LIF``, ``nengo_dl.SoftLIFRate``, ``nengo.LIFRate`` ->
      `HybridSoftLIF` with the same ``tau_rc``, ``tau_ref``, ``amplitude``
      (and LIF's ``min_voltage``, SoftLIFRate's ``sigma``);
    - ``nengo_loihi.neurons.LoihiSpikingRectifiedLinear`` ->
      `HybridLoihiRectifiedLinear`; ``nengo_loihi.neurons.LoihiLIF`` ->
      `HybridLoihiLIF` (the chip's neuron models forward);
    - a hybrid type -> itself (a copy if a new ``sigma`` is given).

    ``initial_state`` is kept when the source is spiking (rate neurons have no
    state). Types are matched exactly: subclasses with other dynamics
    (``nengo_dl.LeakyReLU``, ``nengo_loihi.LoihiLIF``, ...) are rejected.

    Parameters
    ----------
    neuron_type : nengo.neurons.NeuronType
        The neuron type to convert.
    sigma : float, optional
        Soft LIF smoothing of the result. Default: the source's ``sigma``
        (SoftLIFRate, HybridSoftLIF), else 0.005 (the paper's value).
        Ignored for rectified linear types.

    Raises
    ------
    ConversionError
        If the type has no hybrid version; the message names the type and the
        accepted ones.
    """
    kind = type(neuron_type)
    if kind in (HybridRectifiedLinear, HybridLoihiRectifiedLinear):
        return neuron_type
    if kind in (HybridSoftLIF, HybridLoihiLIF) and sigma is None:
        return neuron_type
    if kind is LoihiSpikingRectifiedLinear:
        return HybridLoihiRectifiedLinear(amplitude=neuron_type.amplitude)
    if kind in (LoihiLIF, HybridLoihiLIF):
        return HybridLoihiLIF(
            tau_rc=neuron_type.tau_rc,
            tau_ref=neuron_type.tau_ref,
            min_voltage=neuron_type.min_voltage,
            amplitude=neuron_type.amplitude,
            sigma=getattr(neuron_type, "sigma", 0.005) if sigma is None else sigma,
        )
    if kind in _RECTIFIED_LINEAR:
        return HybridRectifiedLinear(
            amplitude=neuron_type.amplitude,
            initial_state=neuron_type.initial_state if neuron_type.spiking else None,
        )
    if kind in _LIF or kind is HybridSoftLIF:
        if sigma is None:
            sigma = getattr(neuron_type, "sigma", 0.005)
        return HybridSoftLIF(
            tau_rc=neuron_type.tau_rc,
            tau_ref=neuron_type.tau_ref,
            min_voltage=getattr(neuron_type, "min_voltage", 0),
            amplitude=neuron_type.amplitude,
            sigma=sigma,
            initial_state=neuron_type.initial_state if neuron_type.spiking else None,
        )
    raise ConversionError(
        f"Neuron type {neuron_type!r} ({kind.__module__}.{kind.__qualname__}) has "
        f"no hybrid version; accepted types: {_ACCEPTED}"
    )


def swap_to_hybrid(network, sigma=None):
    """Replace the neuron type of every ensemble in ``network`` by its hybrid.

    Works in place on a network built by ``nengo_dl.Converter`` (or any Nengo
    network), subnetworks included; objects, connections and the converter's
    ``layers`` / ``inputs`` / ``outputs`` maps stay valid. Gain and bias are not
    touched and the amplitude is copied, so ``scale_firing_rates`` is preserved
    (see the module docstring). Nothing is changed if any ensemble has a neuron
    type without a hybrid version.

    Parameters
    ----------
    network : nengo.Network
        The network, e.g. ``converter.net``.
    sigma : float, optional
        Passed to `hybrid_of`.

    Returns
    -------
    list of nengo.Ensemble
        The ensembles whose neuron type changed.

    Raises
    ------
    ConversionError
        If an ensemble's neuron type has no hybrid version (names the ensemble).
    """
    new_types = {}
    for ens in network.all_ensembles:
        try:
            new_types[ens] = hybrid_of(ens.neuron_type, sigma=sigma)
        except ConversionError as err:
            raise ConversionError(f"Ensemble {ens.label or ens!r}: {err}") from None

    changed = []
    for ens, new_type in new_types.items():
        if new_type is not ens.neuron_type:
            ens.neuron_type = new_type
            changed.append(ens)
    return changed
