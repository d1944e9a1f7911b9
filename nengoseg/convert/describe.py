"""A conversion's network description (`nengoseg.description`).

`describe_conversion` turns a Keras model and its conversion settings into the plain-
data description every backend builds from: the model prepared as `convert` prepares
it, each neuron layer at its recorded scale, of the kind ``neuron_model`` converts it
to, and, given the converted Nengo network, the initial neuron state NengoDL starts
from. Nengo draws that state when the network is built, from
``np.random.RandomState(seeds[ensemble] + 1)`` (``nengo.builder.neurons.build_neurons``)
with ``seeds`` assigned by ``nengo.builder.network.seed_network`` from the network's
seed; `initial_states` calls those same nengo functions, so no simulator is built.
"""

import dataclasses

import numpy as np
from nengo.builder.network import seed_network

from nengoseg.convert.prepare import prepare_model
from nengoseg.description import RunSettings, describe

def run_settings(settings):
    """The description's `RunSettings` of a `ConversionSettings` (the fields they share)."""
    return RunSettings(**{field.name: getattr(settings, field.name)
                          for field in dataclasses.fields(RunSettings)})


def describe_conversion(keras_model, settings, network=None, neuron_probes=None, prepared=False):
    """The `NetworkDescription` of ``keras_model`` converted with ``settings``.

    ``prepared``: the model is already `prepare_model`'s (a ``ConvertedNetwork``'s).
    ``network`` and ``neuron_probes`` (a ``ConvertedNetwork``'s): record the initial
    neuron state of every spiking layer (`initial_states`).
    """
    if not prepared:
        keras_model, _ = prepare_model(keras_model)
    scales = settings.layer_scales or settings.scale_firing_rates
    states = {} if network is None else initial_states(network, neuron_probes)
    return describe(keras_model, run_settings(settings), scales, settings.max_to_avg_pool,
                    initial_states=states)


def ensemble_seeds(network):
    """The seed nengo gives each object of ``network`` when building it."""
    seeds, seeded = {}, {}
    seed_network(network, seeds=seeds, seeded=seeded)
    return seeds


def initial_state(ensemble, seeds):
    """The state nengo's ``build_neurons`` starts ``ensemble`` from, as float32 arrays."""
    rng = np.random.RandomState(seeds[ensemble] + 1)
    # nengo samples in the signal dtype (float64), NengoDL casts to float32
    state = ensemble.neuron_type.make_state(ensemble.n_neurons, rng=rng, dtype=np.float64)
    return {key: np.asarray(value, np.float64).astype(np.float32) for key, value in state.items()}


def initial_states(network, neuron_probes):
    """``{layer: {state: array}}`` for every spiking neuron layer of a converted network."""
    seeds = ensemble_seeds(network)
    states = {}
    for name, probe in neuron_probes.items():
        ensemble = probe.target.ensemble
        if ensemble.neuron_type.spiking:
            states[name] = initial_state(ensemble, seeds)
    return states
