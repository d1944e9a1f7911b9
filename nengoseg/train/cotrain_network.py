"""The network that is co-trained: the engine that trains it, its hybrid neurons,
and the export of its trained weights back into a Keras model.

Engines
-------
``cotrain.engine`` picks the simulator that is trained (`make_trainable`). Each
implements `TrainableSNN`: a Keras model that ``fit`` trains (its variables are
what the checkpoints hold), the mapping from coded inputs to that model's inputs,
the names of its output and of each neuron layer's output (``(batch, n_steps, ...)``
arrays), a plain prediction, and the trained weights in the Keras layers' layout.
Everything else (data, losses, callbacks, checkpoints, export, scoring) is shared.

- ``"nengo-dl"``: `nengoseg.train.cotrain_nengo_dl.NengoDLTrainable`, the reference.
- ``"engine"``: ``nengoseg.engine.trainable_snn(converted, minibatch_size)`` returns
  a `TrainableSNN` (the time-batched engine, much faster on a CPU); where that does
  not exist the stage says to use ``nengo-dl``.

An engine may return the network output and the neuron outputs already averaged
over time as ``(batch, 1, ...)`` (the readout window for the output, all steps for
the neurons): the losses and metrics of `nengoseg.train.snn_losses` give the same
values for those.

`hybrid_network` converts a Keras model to a spiking network with hybrid neurons
(`nengoseg.neurons`); `export_model` puts the co-trained weights (and the output
activation) back into the prepared Keras model, for `nengoseg.convert.save_conversion`.
"""

import dataclasses
import importlib

import numpy as np
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg.backends import SIMULATORS
from nengoseg.convert.layers import SoftLIF
from nengoseg.errors import ConfigError, ConversionError
from nengoseg.neuron_kinds import hybrid_of, swap_to_hybrid

ENGINES = SIMULATORS  # the spiking simulators that train (nengoseg.backends)
NOT_AVAILABLE = "engine 'engine' is not available yet, use cotrain.engine: nengo-dl"
# NengoDL's training unrolls the simulation in its own graph, with its neuron builders'
# steps under stop_gradient; BPTT through it would mean new builders for every kind
BPTT_ENGINE_ONLY = ("cotrain.method: bptt and spiking_flow run in the time-batched engine only "
                    "(cotrain.engine: engine); NengoDL co-trains with cotrain.method: hybrid")


# ---------------------------------------------------------------- the engines


def make_trainable(engine, converted, minibatch_size, method="hybrid", surrogate_alpha=1.0):
    """The `TrainableSNN` of ``engine`` (``cotrain.engine``) for ``converted``, trained by
    ``method`` (``cotrain.method``: "hybrid", or "bptt" in the engine only)."""
    if engine == "nengo-dl":
        if method != "hybrid":
            raise ConfigError(BPTT_ENGINE_ONLY)
        from nengoseg.train.cotrain_nengo_dl import NengoDLTrainable

        return NengoDLTrainable(converted, minibatch_size)
    return _engine_factory(engine)(converted, minibatch_size, method=method,
                                   surrogate_alpha=surrogate_alpha)


def _engine_factory(engine):
    if engine not in ENGINES:
        raise ConfigError(
            f"cotrain.engine={engine!r} is not allowed; allowed: {', '.join(map(repr, ENGINES))}"
        )
    if engine == "nengo-dl":
        return lambda converted, minibatch_size: make_trainable(engine, converted, minibatch_size)
    try:
        module = importlib.import_module("nengoseg.engine")
    except ModuleNotFoundError as err:
        if err.name not in ("nengoseg.engine",):
            raise
        raise ConfigError(NOT_AVAILABLE) from None
    factory = getattr(module, "trainable_snn", None)
    if factory is None:
        raise ConfigError(NOT_AVAILABLE + " (nengoseg.engine has no trainable_snn yet)")
    return factory


# ---------------------------------------------------------------- the hybrid network


def hybrid_network(keras_model, settings, calibration_data=None):
    """Convert ``keras_model`` to a spiking network with hybrid neurons.

    ``settings.spiking`` is forced on (the result is a spiking network). SoftLIF
    layers become hybrid soft LIF neurons with the layer's own ``sigma`` (the
    conversion's ``nengo.LIF`` does not keep it); ReLU layers hybrid rectified
    linear neurons with the same amplitude (the firing-rate scale). The recorded
    settings still name the plain spiking types, which is what a rebuild makes:
    the hybrid types compute exactly these spikes in the forward pass.
    """
    settings = dataclasses.replace(settings, spiking=True)
    converted = nsconvert.convert(keras_model, settings, calibration_data=calibration_data)
    for name, probe in converted.neuron_probes.items():
        layer = converted.keras_model.get_layer(name)
        sigma = layer.sigma if isinstance(layer, SoftLIF) else None
        ensemble = probe.target.ensemble
        ensemble.neuron_type = hybrid_of(ensemble.neuron_type, sigma=sigma)
    swap_to_hybrid(converted.network)
    return converted


# ---------------------------------------------------------------- export


def export_model(prepared, weights, output_activation):
    """The Keras model to save for the co-trained SNN.

    ``prepared`` is ``converted.keras_model`` (BatchNormalization folded, the output
    sigmoid moved into the readout); ``weights`` is ``{layer_name: [arrays]}``
    (`TrainableSNN.trained_weights`). The result is a copy of ``prepared`` with
    those weights and the output activation put back, so that
    ``convert(result, settings)`` builds the co-trained network and
    ``nengoseg evaluate --engine ann`` style uses see the same output function.
    """
    config = prepared.get_config()
    custom_objects = {tf.keras.utils.get_registered_name(type(l)): type(l) for l in prepared.layers}
    wrap = False
    if output_activation not in (None, "linear"):
        name = config["output_layers"][0][0]
        entry = next(e for e in config["layers"] if e["name"] == name)
        if "activation" in entry["config"]:
            entry["config"]["activation"] = output_activation
        else:
            wrap = True
    model = tf.keras.Model.from_config(config, custom_objects=custom_objects)
    for layer in model.layers:
        if layer.weights:
            source = weights.get(layer.name) or prepared.get_layer(layer.name).get_weights()
            layer.set_weights(source)
    if wrap:
        out = tf.keras.layers.Activation(output_activation, name=f"{model.name}_output_activation")(
            model.outputs[0]
        )
        model = tf.keras.Model(model.inputs, out, name=model.name)
    return model


def _check_weights(prepared, weights):
    for name, arrays in weights.items():
        expected = [w.shape for w in prepared.get_layer(name).get_weights()]
        if [np.shape(a) for a in arrays] != [tuple(s) for s in expected]:
            raise ConversionError(
                f"layer '{name}': co-trained weights of shapes {[np.shape(a) for a in arrays]} "
                f"do not fit its Keras weights {expected}"
            )
