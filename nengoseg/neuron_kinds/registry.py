"""The neuron-kind registry: one record per kind of neuron, read by every backend.

A `NeuronKind` holds everything nengoseg knows about one kind of neuron:

- its Nengo types (spiking and, where there is one, the rate form) and the hybrid
  type co-training swaps in, with the NengoDL builders to register;
- where conversion makes it: which ANN activation (``"relu"`` or ``"softlif"``,
  `ACTIVATIONS`) it replaces under which ``convert.neuron_model``;
- the engine's update (``step``, NengoDL's own step function) and the rate whose
  gradient hybrid training uses (``rate``), and the names of its state;
- what the Loihi rewrite puts on chip for it, or why it cannot go on chip.

The converter, the engine, co-training, the Loihi rewrite and its validation all
look kinds up here (`of_type`, `named`, `converted_kind`); none of them lists neuron
types of its own. Adding a kind is one `register` call in its own module, imported by
``nengoseg/neuron_kinds/__init__.py`` (see `nengoseg.neuron_kinds.if_subtract`).
"""

import dataclasses
import math
from typing import Callable, Optional

import nengo
import nengo_dl

from nengoseg.errors import ConversionError
from nengoseg.nengo_dl_compat import register_builders

# ANN activation -> the rate neuron nengo_dl.Converter makes for it, and how the Loihi
# rewrite makes the same rate neuron (for its exactness check) from the layer's
# parameters ``(tau_rc, tau_ref, amplitude, sigma)`` (relu: none) at a firing-rate scale
ACTIVATIONS = {
    "relu": nengo.RectifiedLinear,
    "softlif": nengo_dl.SoftLIFRate,
}

_KINDS = {}


@dataclasses.dataclass(frozen=True)
class NeuronKind:
    """One kind of neuron (see the module docstring).

    name
        The kind's name in plans, descriptions and reports, e.g. ``"loihi_relu"``.
    summary
        One line for error messages and the README.
    types
        ``{nengo neuron type: spiking?}``: the exact types that are this kind
        (hybrid types are listed in ``hybrid_type``).
    state
        Names of the neuron state the engine carries, in the type's order.
    rate
        ``rate(params, J)``: the rate neuron on currents ``J`` (the output of a rate
        kind, the gradient of a spiking one); ``params`` are the float32 constants
        of `nengoseg.engine.dynamics.constants` plus ``zeros``.
    step
        ``step(params, J, state) -> (out, state)``: one spiking update (None for
        rate kinds), the same function the kind's NengoDL builder runs.
    hybrid_type, make_hybrid
        The hybrid type, and ``make_hybrid(neuron, sigma) -> hybrid neuron`` with
        ``neuron``'s parameters (``sigma`` None: the source's, else 0.005).
    builders
        ``{neuron type: NengoDL builder}`` to register in NengoDL's
        ``SimNeuronsBuilder.TF_NEURON_IMPL``.
    converts
        ``(activation, neuron_model)`` pairs this kind is converted from, and
        ``make(rate_neuron)``, the spiking neuron with the rate neuron's amplitude and
        time constants.
    on_chip, off_chip
        ``on_chip(tau_rc, tau_ref, amplitude)``: the neuron the Loihi rewrite puts on
        chip; or ``off_chip``, the reason this kind cannot run on Loihi.
    relu_loop
        "floor" or "reset": the engine may run it in its fused rectified-linear loop
        (nengo's floor-and-subtract or Loihi's reset-to-zero update).
    surrogate_step
        ``surrogate_step(params, J, state, spike) -> (out, state)``: ``step`` written
        with ``spike(voltage - 1)`` (forward: 1 where the voltage passes the threshold,
        else 0) as the only non-differentiable operation, and the reset as arithmetic
        on the spike, so that a surrogate gradient (`nengoseg.engine.dynamics.
        triangle_spike`) flows through the spikes and the membrane state over time
        (BPTT fine-tuning, ``cotrain.method: bptt``). Its forward values equal
        ``step``'s. None: the kind is not fine-tuned through time.
    """

    name: str
    summary: str
    types: dict
    state: tuple
    rate: Callable
    step: Optional[Callable] = None
    hybrid_type: Optional[type] = None
    make_hybrid: Optional[Callable] = None
    builders: dict = dataclasses.field(default_factory=dict)
    converts: tuple = ()
    make: Optional[Callable] = None
    on_chip: Optional[Callable] = None
    off_chip: Optional[str] = None
    relu_loop: Optional[str] = None
    surrogate_step: Optional[Callable] = None

    @property
    def activation(self):
        """The ANN activation (`ACTIVATIONS`) this kind stands for, or None."""
        for activation, _ in self.converts:
            return activation
        return next((name for name, cls in ACTIVATIONS.items() if cls in self.types), None)

    @property
    def spiking(self):
        """Whether the kind's main type emits spikes."""
        return any(self.types.values())

    def on_chip_neuron(self, tau_rc=0.02, tau_ref=0.002, amplitude=1.0, where="a layer"):
        """The neuron type Loihi runs for this kind; ConversionError if it cannot."""
        if self.on_chip is None:
            raise ConversionError(f"{where} has {self.name} neurons, which cannot run on Loihi: "
                                  f"{self.off_chip}")
        return self.on_chip(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude)


def register(kind):
    """Add ``kind`` to the registry (its name and types must be new); returns it."""
    if kind.name in _KINDS:
        raise ValueError(f"neuron kind {kind.name!r} is already registered")
    taken = {t: k.name for k in _KINDS.values() for t in _all_types(k)}
    for t in _all_types(kind):
        if t in taken:
            raise ValueError(f"{t.__name__} already belongs to neuron kind {taken[t]!r}")
    if (kind.step is None) == kind.spiking:
        raise ValueError(f"neuron kind {kind.name!r}: a spiking kind needs a step, a rate "
                         "kind none")
    if kind.spiking and kind.on_chip is None and not kind.off_chip:
        raise ValueError(f"neuron kind {kind.name!r}: give on_chip or the off_chip reason")
    _KINDS[kind.name] = kind
    register_builders(kind.builders)
    return kind


def _all_types(kind):
    return list(kind.types) + ([kind.hybrid_type] if kind.hybrid_type else [])


def _type_name(cls):
    """``nengo.LIF``, ``nengo_dl.SoftLIFRate``, ``nengoseg.HybridSoftLIF``, ..."""
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def kinds():
    """Every registered kind, in registration order."""
    return list(_KINDS.values())


def surrogate_kinds():
    """The names of the kinds that BPTT fine-tuning can train (they have a surrogate_step)."""
    return [kind.name for kind in _KINDS.values() if kind.surrogate_step is not None]


def named(name):
    """The kind called ``name``; ConversionError naming the allowed ones otherwise."""
    if name not in _KINDS:
        raise ConversionError(f"unknown neuron kind {name!r}; allowed: {', '.join(_KINDS)}")
    return _KINDS[name]


def of_type(neuron_type, where=None):
    """``(kind, spiking)`` of a neuron (type or instance), matched by exact type.

    Subclasses with other dynamics (``nengo_dl.LeakyReLU``, ...) are refused: a
    ConversionError names ``where`` (e.g. "layer 'conv1'"), the type and the types
    the registry knows.
    """
    cls = neuron_type if isinstance(neuron_type, type) else type(neuron_type)
    for kind in _KINDS.values():
        if cls in kind.types:
            return kind, kind.types[cls]
        if cls is kind.hybrid_type:
            return kind, True
    known = ", ".join(_type_name(t) for k in _KINDS.values() for t in _all_types(k))
    prefix = f"{where} makes " if where else ""
    raise ConversionError(f"{prefix}{cls.__module__}.{cls.__qualname__} neurons, which no "
                          f"nengoseg neuron kind describes; known types: {known}")


def neuron_models():
    """The allowed values of ``convert.neuron_model``, in registration order."""
    return list(dict.fromkeys(model for k in _KINDS.values() for _, model in k.converts))


def converted_kind(activation, neuron_model, where="a layer"):
    """The spiking kind conversion makes of ``activation`` under ``neuron_model``."""
    for kind in _KINDS.values():
        if (activation, neuron_model) in kind.converts:
            return kind
    offered = [a for k in _KINDS.values() for a, m in k.converts if m == neuron_model]
    raise ConversionError(
        f"{where} has activation {activation!r}, which neuron_model {neuron_model!r} has no "
        f"spiking neuron for; it converts: {', '.join(offered) or 'nothing'}"
    )


def activation_of(neuron_type):
    """The ANN activation (`ACTIVATIONS`) whose rate neuron ``neuron_type`` is, or None."""
    for name, cls in ACTIVATIONS.items():
        if type(neuron_type) is cls:
            return name
    return None


def rate_neuron(activation, scale, tau_rc=0.02, tau_ref=0.002, amplitude=1.0, sigma=0.005):
    """The rate neuron of ``activation`` at firing-rate ``scale`` (amplitude / scale)."""
    if activation == "relu":
        return nengo.RectifiedLinear(amplitude=amplitude / scale)
    return nengo_dl.SoftLIFRate(sigma=sigma, tau_rc=tau_rc, tau_ref=tau_ref,
                                amplitude=amplitude / scale)


def with_initial_voltage(neuron, voltage):
    """A copy of spiking ``neuron`` (same type and parameters) whose voltage starts at
    ``voltage`` (Nengo's neuron types fix ``initial_state`` at construction)."""
    params = {name: getattr(neuron, name) for name in nengo.params.iter_params(neuron)
              if name != "initial_state"}
    state = dict(neuron.initial_state or {})
    state["voltage"] = nengo.dists.Choice([float(voltage)])
    return type(neuron)(**params, initial_state=state)


def check_thresholds(thresholds):
    """``thresholds`` as a tuple of floats; ValueError unless they are one or more finite
    numbers > 0 in strictly decreasing order (a multi-threshold neuron's)."""
    values = tuple(thresholds) if isinstance(thresholds, (list, tuple)) else ()
    numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool)
                  and math.isfinite(t) and t > 0 for t in values)
    if not values or not numbers or any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"thresholds {thresholds!r}: give one or more numbers > 0, strictly "
                         "decreasing (e.g. 2, 1, 0.5, 0.25)")
    return tuple(float(t) for t in values)


def has_thresholds(neuron_model):
    """Whether the spiking neurons ``neuron_model`` makes of ReLU layers take a
    ``thresholds`` parameter (``convert.thresholds``)."""
    try:
        kind = converted_kind("relu", neuron_model)
    except ConversionError:
        return False
    return "thresholds" in nengo.params.iter_params(kind.make(nengo.RectifiedLinear()))


def with_thresholds(neuron, thresholds):
    """A copy of ``neuron`` with ``thresholds`` (a kind whose type has that parameter);
    ConversionError naming the type otherwise."""
    params = {name: getattr(neuron, name) for name in nengo.params.iter_params(neuron)}
    if "thresholds" not in params:
        raise ConversionError(f"{type(neuron).__name__} neurons have one threshold; "
                              "thresholds are for multi-threshold neuron models")
    params["thresholds"] = tuple(thresholds)
    return type(neuron)(**params)


def on_chip_types():
    """The neuron types the Loihi rewrite puts on chip (for validation)."""
    found = []
    for kind in _KINDS.values():
        if kind.on_chip is not None:
            found.append(type(kind.on_chip(tau_rc=0.02, tau_ref=0.002, amplitude=1.0)))
    return tuple(dict.fromkeys(found))


def hybrid_of(neuron_type, sigma=None):
    """The hybrid version of a neuron type, with the same parameters.

    Every registered kind with a hybrid type has one: e.g. ``nengo.SpikingRectifiedLinear``
    and ``nengo.RectifiedLinear`` -> `nengoseg.neurons.HybridRectifiedLinear` (same
    ``amplitude``); ``nengo.LIF``, ``nengo_dl.SoftLIFRate``, ``nengo.LIFRate`` ->
    `nengoseg.neurons.HybridSoftLIF`; nengo-loihi's models -> the hybrid Loihi types.
    A hybrid type gives itself (a copy if a new ``sigma`` is given and it has one).
    ``initial_state`` is kept when the source is spiking. Types are matched exactly.

    Raises
    ------
    ConversionError
        If the type has no hybrid version; the message names the type and the
        accepted ones.
    """
    try:
        kind, _ = of_type(neuron_type)
    except ConversionError:
        kind = None
    if kind is None or kind.make_hybrid is None:
        cls = type(neuron_type)
        accepted = ", ".join(_type_name(t) for k in _KINDS.values() if k.make_hybrid
                             for t in _all_types(k))
        raise ConversionError(f"Neuron type {neuron_type!r} ({cls.__module__}.{cls.__qualname__})"
                              f" has no hybrid version; accepted types: {accepted}")
    if type(neuron_type) is kind.hybrid_type and (sigma is None
                                                  or not hasattr(neuron_type, "sigma")):
        return neuron_type
    return kind.make_hybrid(neuron_type, sigma)


def swap_to_hybrid(network, sigma=None):
    """Replace the neuron type of every ensemble in ``network`` by its hybrid, in place.

    Works on a network built by ``nengo_dl.Converter`` (or any Nengo network),
    subnetworks included; gain and bias are not touched and the amplitude is copied,
    so ``scale_firing_rates`` is preserved. Nothing is changed if any ensemble has a
    neuron type without a hybrid version (ConversionError naming the ensemble).
    Returns the ensembles whose neuron type changed.
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
