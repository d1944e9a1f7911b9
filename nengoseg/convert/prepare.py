"""Keras model preparation for conversion: `prepare_model` and its helpers.

`prepare_model` rebuilds the Keras model from its config (the user's model is not
touched), so that ``nengo_dl.Converter`` can turn every layer into native Nengo
objects (`nengoseg.convert.converter.convert` runs it first):

- BatchNormalization is folded into the Conv2D / Conv2DTranspose / Dense before
  it (`FOLDABLE`), or frozen where it cannot be folded. nengo-dl 3.6's own
  BatchNormalization converter needs ``inference_only=True`` (which makes the
  whole network untrainable in NengoDL, ruling out co-training) or a frozen
  layer, and then adds passthrough and bias Nodes that nengo-loihi rejects;
  folding the normalisation into the preceding weights avoids both.
- Keras regularisers and constraints are dropped.
- A sigmoid on the output layer (`DROPPED_OUTPUT_ACTIVATIONS`) is moved into the
  readout, so the network outputs logits and needs no sigmoid "neurons".
- A `nengoseg.convert.layers.QCFS` activation becomes a plain ReLU layer of the same
  name: its quantisation is what the spiking neurons do by themselves in T = L steps,
  and its learned threshold becomes the layer's scale (``normalise="qcfs"``).
"""

import copy

import nengo_dl
import numpy as np
import tensorflow as tf

from nengoseg.convert.layers import QCFS, TRAINING_ONLY_ARGS
from nengoseg.errors import ConversionError

FOLDABLE = (tf.keras.layers.Conv2D, tf.keras.layers.Conv2DTranspose, tf.keras.layers.Dense)
DROPPED_OUTPUT_ACTIVATIONS = ("sigmoid",)


def prepare_model(keras_model, keep_qcfs=False):
    """Rebuild ``keras_model`` ready for conversion; returns ``(model, output_activation)``.

    ``keep_qcfs=True`` keeps QCFS activations: the ANN as trained, read out like the
    SNN (`nengoseg.convert.run_ann` runs it).

    The new model computes the same function as ``keras_model`` except that a
    sigmoid on the output layer is removed (``output_activation="sigmoid"``; the
    readout applies it) and QCFS activations are plain ReLUs. Changes, all made on
    the model's config:

    - BatchNormalization directly after a Conv2D, Conv2DTranspose or Dense layer
      with linear activation, channels last, that feeds nothing else, is folded into
      that layer's kernel and bias: ``s = gamma / sqrt(var + eps)``,
      ``kernel *= s`` (per output channel), ``bias = s * (bias - mean) + beta``.
      Any other BatchNormalization is frozen (``trainable=False``) and converted by
      nengo-dl as a fixed per-channel affine map.
    - Regularisers and constraints are dropped (Keras-training only).

    Nested models and layers applied more than once are refused (ConversionError).
    """
    model = _functional(keras_model)
    config = copy.deepcopy(model.get_config())
    entries = {entry["name"]: entry for entry in config["layers"]}
    _refuse_nested_and_shared(model, entries)
    for entry in config["layers"]:
        for key in TRAINING_ONLY_ARGS:
            if entry["config"].get(key) is not None:
                entry["config"][key] = None

    output_activation = _drop_output_activation(config, entries)
    for layer in model.layers:
        if isinstance(layer, QCFS) and not keep_qcfs:
            entry = entries[layer.name]
            entry["class_name"] = "ReLU"
            entry["config"] = {key: entry["config"][key] for key in ("name", "trainable", "dtype")}
    folds = {}
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        producer = _foldable_producer(model, layer, config)
        if producer is None:
            entries[layer.name]["config"]["trainable"] = False
        else:
            folds[producer.name] = _folded_weights(producer, layer)
            entries[producer.name]["config"]["use_bias"] = True
            _bypass(config, layer.name)

    custom_objects = {tf.keras.utils.get_registered_name(type(l)): type(l) for l in model.layers}
    prepared = tf.keras.Model.from_config(config, custom_objects=custom_objects)
    for layer in prepared.layers:
        if layer.weights:
            weights = folds.get(layer.name) or model.get_layer(layer.name).get_weights()
            layer.set_weights(weights)
    return prepared, output_activation


def _functional(keras_model):
    if isinstance(keras_model, tf.keras.Sequential):
        if not keras_model.built or keras_model.inputs is None:
            raise ConversionError(
                f"Sequential model '{keras_model.name}' has no input shape; "
                "give its first layer input_shape=... or start it with tf.keras.Input"
            )
        keras_model = tf.keras.Model(keras_model.inputs, keras_model.outputs, name=keras_model.name)
    if not isinstance(keras_model, nengo_dl.compat.Functional):
        raise ConversionError(
            f"model '{keras_model.name}' ({type(keras_model).__name__}) is a subclassed Keras "
            "model; only functional and Sequential models can be converted"
        )
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise ConversionError(
            f"model '{keras_model.name}' has {len(keras_model.inputs)} inputs and "
            f"{len(keras_model.outputs)} outputs; nengoseg converts models with one of each"
        )
    return keras_model


def _refuse_nested_and_shared(model, entries):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            raise ConversionError(
                f"layer '{layer.name}' ({type(layer).__name__}) is a nested Keras model; "
                "build the model from layers only (no sub-models) to convert it"
            )
        if len(entries[layer.name]["inbound_nodes"]) > 1:
            raise ConversionError(
                f"layer '{layer.name}' ({type(layer).__name__}) is applied more than once "
                "(shared weights); nengoseg converts models whose layers are used once"
            )


def _drop_output_activation(config, entries):
    """Remove a sigmoid from the output layer; return the removed activation or "linear"."""
    name = config["output_layers"][0][0]
    layer_config = entries[name]["config"]
    activation = layer_config.get("activation")
    if activation not in DROPPED_OUTPUT_ACTIVATIONS:
        return "linear"
    if entries[name]["class_name"] == "Activation":
        _bypass(config, name)
    else:
        layer_config["activation"] = "linear"
    return activation


def _consumers(config, name):
    """How many times the output of layer ``name`` is used (by layers or as model output)."""
    uses = sum(
        ref[0] == name
        for entry in config["layers"]
        for node in entry["inbound_nodes"]
        for ref in node
    )
    return uses + sum(ref[0] == name for ref in config["output_layers"])


def _foldable_producer(model, bn, config):
    """The layer ``bn`` can be folded into, or None."""
    producer = bn.inbound_nodes[0].inbound_layers
    foldable = (
        type(producer) in FOLDABLE
        and producer.activation is tf.keras.activations.linear
        and getattr(producer, "data_format", "channels_last") == "channels_last"
        and list(bn.axis) == [len(bn.input_shape) - 1]
        and _consumers(config, producer.name) == 1
    )
    return producer if foldable else None


def _folded_weights(producer, bn):
    """Kernel and bias of ``producer`` with ``bn`` (inference statistics) folded in."""
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    shift = beta - scale * bn.moving_mean.numpy()
    kernel = producer.kernel.numpy()
    bias = producer.bias.numpy() if producer.use_bias else 0.0
    if isinstance(producer, tf.keras.layers.Conv2DTranspose):
        kernel = kernel * scale[:, None]  # (kh, kw, out, in)
    else:
        kernel = kernel * scale  # (..., in, out)
    return [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]


def _bypass(config, name):
    """Remove layer ``name`` from a functional config, wiring its input to its users."""
    entry = next(e for e in config["layers"] if e["name"] == name)
    source = entry["inbound_nodes"][0][0]
    config["layers"].remove(entry)
    for other in config["layers"]:
        for node in other["inbound_nodes"]:
            for i, ref in enumerate(node):
                if ref[0] == name:
                    node[i] = [*source[:3], *ref[3:]]
    config["output_layers"] = [
        source[:3] if ref[0] == name else ref for ref in config["output_layers"]
    ]
