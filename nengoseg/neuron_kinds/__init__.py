"""Neuron kinds: one record per kind (`NeuronKind`), looked up by every backend.

Importing this package registers every kind (and its NengoDL builders); a new kind is
a new module here, imported below. See `nengoseg.neuron_kinds.registry`.
"""

from nengoseg.neuron_kinds import standard  # noqa: F401,I001  (registers the kinds, in order)
from nengoseg.neuron_kinds import if_subtract  # noqa: F401,I001
from nengoseg.neuron_kinds import multi_threshold  # noqa: F401,I001
from nengoseg.neuron_kinds.registry import (
    ACTIVATIONS,
    NeuronKind,
    activation_of,
    check_thresholds,
    converted_kind,
    has_thresholds,
    hybrid_of,
    kinds,
    named,
    neuron_models,
    of_type,
    on_chip_types,
    rate_neuron,
    register,
    surrogate_kinds,
    swap_to_hybrid,
    with_initial_voltage,
    with_thresholds,
)

__all__ = [
    "ACTIVATIONS", "NeuronKind", "activation_of", "check_thresholds", "converted_kind", "has_thresholds",
    "hybrid_of", "kinds", "named", "neuron_models", "of_type", "on_chip_types", "rate_neuron",
    "register", "surrogate_kinds", "swap_to_hybrid", "with_initial_voltage", "with_thresholds",
]
