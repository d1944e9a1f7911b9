"""What the engine simulates, read off a converted network: `EnginePlan`.

The plan is everything the time-batched simulation needs besides the Keras
layers themselves, taken from the network ``nengoseg.convert.convert`` builds, so
that the engine and NengoDL simulate the same thing:

- which Keras layers became neurons (``converted.neuron_probes``), with the
  ensemble's ``gain`` (the layer's ``scale_firing_rates``), the neuron type and its
  parameters (``amplitude`` already divided by the scale, LIF time constants);
- the initial neuron state (voltage, refractory time), drawn by the same nengo
  functions NengoDL's build calls, from the network's seed
  (`nengoseg.convert.describe.initial_state`), so without building a simulator.
  NengoDL uses the same initial state for every example of a minibatch, and so does
  the engine;
- the synapse: ``nengo.Lowpass(settings.synapse)`` discretised by nengo itself
  (zero-order hold, ``LinearFilter._get_ss``): ``y[t] = a y[t-1] + b x[t]`` with
  ``a = exp(-dt/tau)``, ``b = 1 - a``, as float32 (what NengoDL's
  ``LinearFilterBuilder`` uses for a ``OneX`` filter);
- the graph of the Keras model, in topological order, and which Keras layer
  objects carry the weights (`EnginePlan.keras_model`).

Which Keras model holds the weights: ``convert`` runs on a *prepared* copy of the
model (`nengoseg.convert.prepare_model`: BatchNormalization folded, output sigmoid
moved to the readout). When that copy has the same weights as the user's model
layer for layer (no BatchNormalization was folded), the engine uses the user's
own layer objects, so training the engine trains the user's model. Otherwise it
uses the prepared copy, ``plan.keras_model`` (save that one after co-training).
"""

import dataclasses
from typing import Optional

import nengo
import numpy as np
import tensorflow as tf

from nengoseg import neuron_kinds
from nengoseg.convert import convert
from nengoseg.convert.describe import ensemble_seeds, initial_state
from nengoseg.description import Neurons
from nengoseg.convert.layers import SoftLIF
from nengoseg.errors import ConversionError
from nengoseg.nengo_dl_compat import lowpass_coefficients
from nengoseg.layer_kinds import DROPOUT_LAYERS

# layers nengoseg's converter turns into the identity (inference-time behaviour)
IDENTITY_LAYERS = DROPOUT_LAYERS
MAX_POOLING = (
    tf.keras.layers.MaxPooling1D,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.MaxPooling3D,
    tf.keras.layers.GlobalMaxPooling1D,
    tf.keras.layers.GlobalMaxPooling2D,
    tf.keras.layers.GlobalMaxPooling3D,
)
# Keras layers the engine runs (their own ``call``, activation stripped, once over all
# steps); what the converter accepts beyond these is refused by name (`make_plan`)
SUPPORTED_LAYERS = (
    tf.keras.layers.InputLayer,
    tf.keras.layers.Conv1D,
    tf.keras.layers.Conv2D,
    tf.keras.layers.Conv3D,
    tf.keras.layers.Conv2DTranspose,
    tf.keras.layers.Dense,
    tf.keras.layers.AveragePooling1D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.AveragePooling3D,
    tf.keras.layers.GlobalAveragePooling1D,
    tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalAveragePooling3D,
    tf.keras.layers.UpSampling1D,
    tf.keras.layers.UpSampling2D,
    tf.keras.layers.UpSampling3D,
    tf.keras.layers.ZeroPadding1D,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.ZeroPadding3D,
    tf.keras.layers.Cropping1D,
    tf.keras.layers.Cropping2D,
    tf.keras.layers.Cropping3D,
    tf.keras.layers.Concatenate,
    tf.keras.layers.Add,
    tf.keras.layers.Flatten,
    tf.keras.layers.Reshape,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.BatchNormalization,
    SoftLIF,
) + IDENTITY_LAYERS + MAX_POOLING
DEFAULT_SIGMA = 0.005


@dataclasses.dataclass(kw_only=True)
class NeuronLayer(Neurons):
    """One Keras layer that became an ensemble of neurons: the description's `Neurons`
    record (`nengoseg.description`: kind, gain, amplitude, time constants, initial
    state) with the layer's ``name``, output ``shape`` and whether it ``spiking``.

    ``kind`` names a record of the neuron-kind registry (`nengoseg.neuron_kinds`), e.g.
    "relu", "loihi_lif", "if_subtract" or "softlif". ``sigma`` is the soft-LIF
    smoothing of the rate used for gradients (and the rate itself for "softlif").
    ``initial_state`` holds float32 arrays of shape ``(n_neurons,)`` in Keras
    (channels-last, row-major) order, e.g. ``{"voltage": ...}``.
    """

    name: str
    spiking: bool
    shape: tuple
    activation: str = None

    @property
    def n_neurons(self):
        return int(np.prod(self.shape))


@dataclasses.dataclass
class Node:
    """One Keras layer of the graph: its name, the layer object and its inputs (names)."""

    name: str
    layer: tf.keras.layers.Layer
    inputs: list
    neurons: Optional[NeuronLayer] = None
    pass_through: bool = False  # the converter made nothing of it (Dropout, Flatten, ...)


@dataclasses.dataclass
class EnginePlan:
    """A converted network as the engine runs it (see the module docstring)."""

    converted: object  # nengoseg.convert.ConvertedNetwork
    keras_model: tf.keras.Model
    nodes: list
    input_name: str
    output_name: str
    synapse: Optional[tuple]  # (a, b) float32 coefficients, or None
    reads: dict  # {(consumer or None, input_name): "raw" | "delayed"}

    def variants(self, name):
        """The forms of neuron layer ``name``'s output that are read (see `_reads`)."""
        found = set()
        for (consumer, input_name), variant in self.reads.items():
            if self._source(input_name) == name:
                found.add(variant)
        return found

    def _source(self, name):
        nodes = {node.name: node for node in self.nodes}
        while nodes[name].pass_through:
            name = nodes[name].inputs[0]
        return name

    @property
    def settings(self):
        return self.converted.settings

    @property
    def neuron_layers(self):
        """``{layer_name: NeuronLayer}`` in topological order."""
        return {node.name: node.neurons for node in self.nodes if node.neurons is not None}

    @property
    def input_shape(self):
        return tuple(self.converted.input_shape)

    @property
    def output_shape(self):
        return tuple(self.converted.output_shape)


def make_plan(keras_model, settings=None, converted=None, calibration_data=None):
    """The `EnginePlan` of ``keras_model`` converted with ``settings``.

    ``converted`` (a ``ConvertedNetwork`` of this model and these settings) skips the
    conversion; otherwise ``nengoseg.convert.convert`` is run here (with
    ``calibration_data`` for ``normalise="percentile"`` when the settings carry no
    recorded factors).
    """
    if converted is None:
        converted = convert(keras_model, settings, calibration_data=calibration_data)
    settings = converted.settings
    prepared = converted.keras_model
    weights_model = _weights_model(keras_model, prepared)
    seeds = ensemble_seeds(converted.network)
    graph = _topological(prepared)
    objects = {layer.name: converted.converter.layers[layer] for layer in prepared.layers}
    pass_through = {
        name for name, inputs in graph if len(inputs) == 1 and objects[name] is objects[inputs[0]]
    }
    nodes = []
    for name, inputs in graph:
        layer = weights_model.get_layer(name)
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise ConversionError(
                f"layer '{name}' ({type(layer).__name__}): the engine does not simulate this "
                "layer; it runs " + ", ".join(sorted({cls.__name__ for cls in SUPPORTED_LAYERS}))
                + " (use the NengoDL engine, --engine nengo-dl, for others)"
            )
        neurons = None
        if name in converted.neuron_probes and name not in pass_through:
            ensemble = converted.neuron_probes[name].target.ensemble
            neurons = _neuron_layer(name, layer, ensemble, seeds, settings)
        elif isinstance(layer, MAX_POOLING) and not settings.max_to_avg_pool:
            raise ConversionError(f"layer '{name}' ({type(layer).__name__}): max pooling "
                                  "needs max_to_avg_pool=True")
        nodes.append(Node(name, layer, inputs, neurons, name in pass_through))

    output_name = prepared.get_config()["output_layers"][0][0]
    reads = _reads(converted, graph, nodes, objects, output_name)
    synapse = None
    if settings.synapse is not None:
        synapse = lowpass_coefficients(settings.synapse, settings.dt)
    return EnginePlan(
        converted=converted,
        keras_model=weights_model,
        nodes=nodes,
        input_name=graph[0][0],
        output_name=output_name,
        synapse=synapse,
        reads=reads,
    )


def _reads(converted, graph, nodes, objects, output_name):
    """What each layer reads of each neuron layer it gets input from.

    ``{(consumer, input_name): variant}``, plus ``{(None, output_name): variant}`` for
    the output probe, where ``variant`` is "raw" (the neurons' output, no synapse) or
    "delayed" (the Lowpass-filtered output as a connection or a probe reads it: one
    step late, see `nengoseg.engine.dynamics`). Found from the synapses
    of the converted network's connections: nengo-dl puts the synapse on
    connections whose ``pre`` is a Neurons object, which excludes a sliced one, so
    that e.g. ``UpSampling`` after neurons reads them unfiltered.
    """
    by_name = {node.name: node for node in nodes}
    neurons = {
        node.name: converted.neuron_probes[node.name].target
        for node in nodes
        if node.neurons is not None
    }
    synapse = converted.settings.synapse

    def source(name):
        while by_name[name].pass_through:
            name = by_name[name].inputs[0]
        return name

    def variant(synapses, what):
        kinds = set()
        for syn in synapses:
            if syn is None:
                kinds.add(None)
            elif isinstance(syn, nengo.Lowpass) and synapse is not None and np.isclose(
                syn.tau, synapse
            ):
                kinds.add(syn.tau)
            else:
                raise ConversionError(f"{what} has synapse {syn!r}; the engine simulates "
                                      f"the converter's Lowpass({synapse}) or none")
        if len(kinds) != 1:
            raise ConversionError(f"{what}: connections with different synapses")
        return "raw" if kinds == {None} else None

    reads = {}
    connections = converted.network.all_connections
    for name, inputs in graph:
        if not inputs or by_name[name].pass_through:
            continue
        for input_name in inputs:
            src = source(input_name)
            if src not in neurons:
                continue
            found = [
                conn.synapse
                for conn in connections
                if conn.pre_obj is neurons[src] and conn.post_obj is objects[name]
            ]
            what = f"the connection from layer '{src}' to layer '{name}'"
            if not found:
                raise ConversionError(f"{what} is missing from the converted network")
            reads[(name, input_name)] = variant(found, what) or "delayed"
    src = source(output_name)
    if src in neurons:
        what = f"the output probe of layer '{output_name}'"
        reads[(None, output_name)] = variant([converted.output_probe.synapse], what) or "delayed"
    return reads


def _weights_model(original, prepared):
    """The user's model if its layers carry exactly the prepared model's weights, else prepared."""
    if isinstance(original, tf.keras.Sequential):
        original = tf.keras.Model(original.inputs, original.outputs, name=original.name)
    names = {layer.name for layer in original.layers}
    for layer in prepared.layers:
        if layer.name not in names:
            return prepared
        mine = original.get_layer(layer.name)
        if type(mine) is not type(layer):
            return prepared
        theirs, ours = layer.get_weights(), mine.get_weights()
        if len(theirs) != len(ours) or any(
            a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(theirs, ours)
        ):
            return prepared
    return original


def _topological(model):
    """``[(layer_name, [input_layer_names])]`` of a functional model, inputs first."""
    config = model.get_config()
    inbound = {}
    for entry in config["layers"]:
        nodes = entry["inbound_nodes"]
        inbound[entry["name"]] = [ref[0] for ref in nodes[0]] if nodes else []
    order, done = [], set()

    def visit(name, stack=()):
        if name in done:
            return
        if name in stack:
            raise ConversionError(f"the Keras graph has a cycle through layer '{name}'")
        for source in inbound[name]:
            visit(source, stack + (name,))
        done.add(name)
        order.append((name, inbound[name]))

    for entry in config["layers"]:
        visit(entry["name"])
    if len(config["input_layers"]) != 1:
        raise ConversionError("the engine runs models with one input")
    first = config["input_layers"][0][0]
    order.sort(key=lambda item: item[0] != first)  # stable: the input first
    return order


def _kind(neuron_type, name):
    """``(kind name, spiking)`` from the neuron-kind registry (`nengoseg.neuron_kinds`)."""
    kind, spiking = neuron_kinds.of_type(neuron_type, where=f"layer '{name}'")
    return kind.name, spiking


def _neuron_layer(name, layer, ensemble, seeds, settings):
    neuron_type = ensemble.neuron_type
    kind, spiking = _kind(neuron_type, name)
    gain = _single_value(ensemble.gain, name, "gain")
    expected = float(settings.layer_scales.get(name, gain))
    if not np.isclose(gain, expected):
        raise ConversionError(f"layer '{name}': ensemble gain {gain} differs from its "
                              f"recorded scale {expected}")
    sigma = getattr(neuron_type, "sigma", None)
    if sigma is None:
        sigma = layer.sigma if isinstance(layer, SoftLIF) else DEFAULT_SIGMA
    spec = NeuronLayer(
        name=name,
        kind=kind,
        activation=neuron_kinds.named(kind).activation,
        spiking=spiking,
        shape=tuple(layer.output_shape[1:]),
        gain=float(gain),
        amplitude=float(neuron_type.amplitude),
        tau_rc=float(getattr(neuron_type, "tau_rc", 0.02)),
        tau_ref=float(getattr(neuron_type, "tau_ref", 0.002)),
        min_voltage=float(getattr(neuron_type, "min_voltage", 0.0)),
        sigma=float(sigma),
        thresholds=tuple(getattr(neuron_type, "thresholds", ())),
        initial_state=initial_state(ensemble, seeds) if spiking else {},
    )
    if spec.n_neurons != ensemble.n_neurons:
        raise ConversionError(f"layer '{name}': {spec.n_neurons} outputs but "
                              f"{ensemble.n_neurons} neurons")
    return spec


def _single_value(dist, name, what):
    if isinstance(dist, nengo.dists.Choice):
        values = np.asarray(dist.options, np.float64).ravel()
    else:
        values = np.asarray(dist, np.float64).ravel()
    if values.size == 0 or not np.all(values == values[0]):
        raise ConversionError(f"layer '{name}': the engine needs one {what} per layer")
    return float(values[0])
