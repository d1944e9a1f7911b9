"""Everything nengoseg takes from NengoDL's (and Nengo's) internals, in one place.

- **neuron builders**: each neuron kind's NengoDL builders are registered in
  ``SimNeuronsBuilder.TF_NEURON_IMPL`` (`register_builders`), the hook nengo-loihi
  itself uses for its neurons; the builders subclass NengoDL's and the engine calls
  their ``step`` functions with a namespace of the same float32 constants
  (`nengoseg.engine.dynamics.constants`).
- **private simulator method**: ``Simulator._generate_inputs`` gives the values of
  every input Node of a NengoDL Keras model (the bias Nodes the Converter makes
  included), which co-training feeds to ``train_on_batch`` (`generate_inputs`).
- **Nengo's synapse discretisation**: ``LinearFilter._get_ss`` (zero-order hold), the
  coefficients NengoDL's ``LinearFilterBuilder`` uses for a Lowpass
  (`lowpass_coefficients`).

Checked against the pinned versions by ``tests/test_engine.py`` (the engine against
NengoDL's own simulation: spike counts and outputs), ``tests/test_neurons.py`` and
``tests/test_compat.py``. With other versions `version_problem` says what
to do; the private readers fail with that message.
"""

import nengo
import nengo_dl
import numpy as np
from nengo_dl.neuron_builders import SimNeuronsBuilder

PINNED = {"nengo-dl": ("3.6.0", nengo_dl.__version__), "nengo": ("3.2.0", nengo.__version__)}


def version_problem(installed=None):
    """None at the pinned NengoDL and Nengo, else what is wrong and what to do."""
    installed = installed or {name: found for name, (_, found) in PINNED.items()}
    wrong = [f"{name} {installed[name]} (pinned: {pinned})"
             for name, (pinned, _) in PINNED.items() if installed.get(name) != pinned]
    if not wrong:
        return None
    return (
        f"nengoseg's NengoDL builders, its engine (which calls NengoDL's neuron steps) and its "
        f"co-training read internals of the pinned versions; installed: {', '.join(wrong)}. "
        "Install the pinned stack (`bash scripts/setup.sh`, or `pip install -c constraints.txt "
        ".`)"
    )


def _private(read, what):
    try:
        return read()
    except AttributeError as err:
        raise RuntimeError(f"cannot use {what} ({err}): "
                           f"{version_problem() or 'the pinned version changed?'}") from err


def register_builders(builders):
    """Register ``{neuron type: NengoDL builder}`` with NengoDL (idempotent)."""
    SimNeuronsBuilder.TF_NEURON_IMPL.update(builders)


def registered_builder(neuron_type):
    """The builder NengoDL uses for ``neuron_type`` (a class), or None."""
    return SimNeuronsBuilder.TF_NEURON_IMPL.get(neuron_type)


def generate_inputs(sim, feeds):
    """The inputs of ``sim.keras_model`` for ``feeds`` ({input Node: (batch, steps, d)}),
    every other input Node (the Converter's constant bias Nodes) filled in by NengoDL."""
    return _private(lambda: sim._generate_inputs(feeds),
                    "nengo_dl.Simulator._generate_inputs")


def lowpass_coefficients(tau, dt):
    """``(a, b)`` as float32: ``nengo.Lowpass(tau)`` discretised by Nengo (zero-order
    hold), ``y[t] = a y[t-1] + b x[t]``, as NengoDL's ``LinearFilterBuilder`` runs it."""
    A, B, C, D = _private(lambda: nengo.Lowpass(tau)._get_ss(dt), "nengo.LinearFilter._get_ss")
    return np.float32(A.item()), np.float32((B * C).item())
