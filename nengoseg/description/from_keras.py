"""Keras model -> `NetworkDescription`: one handler per Keras layer class.

As in nengo-dl's converter registry, each supported Keras layer class has a handler
(`handles`) ``f(layer, input_shapes, options) -> (op, params, arrays, activation)``
that returns the layer's linear operation in the description's vocabulary
(`nengoseg.description.format.OPS`) and its activation: None (linear), "relu", or the
soft LIF parameters of a `nengoseg.convert.SoftLIF` layer (whose handler is
registered beside it, in `nengoseg.convert.layers`: the description does not import
the conversion). A layer no handler takes,
or one a handler refuses, is a ConversionError naming the layer and why.

`describe` runs on a model prepared for conversion (`nengoseg.convert.prepare_model`:
BatchNormalization folded where it can be, an output sigmoid moved to the readout)
and turns each activation into a `Neurons` record of the neuron kind the run's
``neuron_model`` converts it to (`nengoseg.neuron_kinds`), at the layer's
firing-rate scale. The description needs no data: the scales are settings (or the
ones a data-based normalisation recorded).
"""

from collections import OrderedDict

import numpy as np
import tensorflow as tf

from nengoseg import neuron_kinds
from nengoseg.description.format import Layer, NetworkDescription, Neurons
from nengoseg.errors import ConversionError
from nengoseg.layer_kinds import DROPOUT_LAYERS

RELU_ACTIVATIONS = (tf.keras.activations.relu, tf.nn.relu)
LINEAR_ACTIVATIONS = (None, tf.keras.activations.linear)
RESHAPE_LAYERS = DROPOUT_LAYERS + (tf.keras.layers.Flatten, tf.keras.layers.Reshape)
HANDLERS = OrderedDict()


def handles(*layer_classes):
    """Register a handler ``f(layer, input_shapes, options) -> (op, params, arrays,
    activation)`` for these Keras layer classes."""

    def register(function):
        for cls in layer_classes:
            HANDLERS[cls] = function
        return function

    return register


def handler_for(layer):
    handler = HANDLERS.get(type(layer))
    if handler is None:
        handler = next((h for cls, h in HANDLERS.items() if isinstance(layer, cls)), None)
    if handler is None:
        supported = sorted({cls.__name__ for cls in HANDLERS})
        raise unsupported(layer, f"no spiking-network description exists for "
                                 f"{type(layer).__name__} layers (supported: {', '.join(supported)})")
    return handler


def unsupported(layer, reason):
    return ConversionError(
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be mapped to Loihi: {reason}"
    )


def _activation(layer):
    """None (linear) or "relu"; anything else is refused."""
    activation = getattr(layer, "activation", None)
    if activation in LINEAR_ACTIVATIONS:
        return None
    if activation in RELU_ACTIVATIONS:
        return "relu"
    name = getattr(activation, "__name__", repr(activation))
    raise unsupported(
        layer, f"activation '{name}' has no Loihi neuron; allowed: linear, relu, or a SoftLIF layer"
    )


def _check_image_layer(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, "only channels_last data is supported")
    if tuple(np.atleast_1d(getattr(layer, "dilation_rate", 1))) not in ((1,), (1, 1)):
        raise unsupported(layer, "dilated convolutions are not supported")
    if getattr(layer, "groups", 1) != 1:
        raise unsupported(layer, "grouped convolutions are not supported")


def _weights(layer):
    arrays = {"kernel": layer.kernel.numpy()}
    if getattr(layer, "use_bias", False):
        arrays["bias"] = layer.bias.numpy()
    return arrays


def _pair(value):
    return [int(v) for v in np.broadcast_to(np.atleast_1d(value), (2,))]


@handles(tf.keras.layers.Conv2D)
def _conv2d(layer, inputs, options):
    _check_image_layer(layer)
    if len(inputs[0]) != 3:
        raise unsupported(layer, f"expects an image input, got shape {inputs[0]}")
    params = {"strides": _pair(layer.strides), "padding": layer.padding}
    return "conv2d", params, _weights(layer), _activation(layer)


@handles(tf.keras.layers.Conv2DTranspose)
def _conv2d_transpose(layer, inputs, options):
    _check_image_layer(layer)
    if layer.output_padding is not None:
        raise unsupported(layer, "output_padding is not supported")
    params = {"strides": _pair(layer.strides), "padding": layer.padding}
    return "conv2d_transpose", params, _weights(layer), _activation(layer)


@handles(tf.keras.layers.Dense)
def _dense(layer, inputs, options):
    return "dense", {}, _weights(layer), _activation(layer)


@handles(tf.keras.layers.AveragePooling2D, tf.keras.layers.MaxPooling2D)
def _pool(layer, inputs, options):
    _check_image_layer(layer)
    if isinstance(layer, tf.keras.layers.MaxPooling2D) and not options["max_to_avg_pool"]:
        raise unsupported(
            layer, "max pooling has no linear equivalent; set max_to_avg_pool=True to use "
                   "average pooling instead (this changes the network)"
        )
    params = {"pool_size": _pair(layer.pool_size), "strides": _pair(layer.strides),
              "padding": layer.padding}
    return "avg_pool2d", params, {}, None


@handles(tf.keras.layers.GlobalAveragePooling2D)
def _global_pool(layer, inputs, options):
    _check_image_layer(layer)
    if getattr(layer, "keepdims", False):
        raise unsupported(layer, "keepdims=True is not supported")
    return "global_avg_pool2d", {}, {}, None


@handles(tf.keras.layers.UpSampling2D)
def _upsample(layer, inputs, options):
    _check_image_layer(layer)
    if layer.interpolation != "nearest":
        raise unsupported(layer, f"interpolation '{layer.interpolation}'; only 'nearest' is linear "
                                 "and exact here")
    return "upsample2d", {"size": _pair(layer.size)}, {}, None


@handles(tf.keras.layers.Concatenate)
def _concatenate(layer, inputs, options):
    axis = layer.axis % (len(inputs[0]) + 1) - 1  # without the batch axis
    if axis < 0:
        raise unsupported(layer, "concatenation along the batch axis")
    return "concatenate", {"axis": int(axis)}, {}, None


@handles(tf.keras.layers.Add)
def _add(layer, inputs, options):
    return "add", {}, {}, None


@handles(*RESHAPE_LAYERS)
def _reshape(layer, inputs, options):
    return "reshape", {}, {}, None


@handles(tf.keras.layers.Activation)
def _activation_layer(layer, inputs, options):
    return "reshape", {}, {}, _activation(layer)


@handles(tf.keras.layers.ReLU)
def _relu(layer, inputs, options):
    if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        raise unsupported(layer, "only the plain ReLU (no max_value, slope or threshold) is supported")
    return "reshape", {}, {}, "relu"


@handles(tf.keras.layers.BatchNormalization)
def _batch_norm(layer, inputs, options):
    if list(layer.axis) != [len(inputs[0])]:
        raise unsupported(layer, "only normalisation over the last (channel) axis is supported")
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    shift = beta - scale * layer.moving_mean.numpy()
    arrays = {"scale": np.asarray(scale, np.float64), "shift": np.asarray(shift, np.float64)}
    return "affine", {}, arrays, None


def layer_out_shape(layer):
    shape = layer.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return tuple(int(n) for n in shape[1:])


def scale_of(scales, name):
    """The firing-rate scale of layer ``name``: ``scales[name]`` (default 1) or ``scales``."""
    return float(scales.get(name, 1.0)) if isinstance(scales, dict) else float(scales)


def neuron_record(activation, scale, run, initial_state=None, where="a layer"):
    """The `Neurons` of an activation ("relu" or soft LIF parameters) at ``scale``: the
    kind ``run.neuron_model`` converts it to (spiking), or its rate neuron, with the
    parameters that kind's neuron has (amplitude divided by the scale, as
    ``nengo_dl.Converter`` applies ``scale_firing_rates``)."""
    params = {} if activation == "relu" else dict(activation)
    name = "relu" if activation == "relu" else "softlif"
    rate = neuron_kinds.rate_neuron(name, scale, **params)
    if run.spiking:
        kind = neuron_kinds.converted_kind(name, run.neuron_model, where=where)
        neuron = kind.make(rate)
        if run.thresholds is not None:
            neuron = neuron_kinds.with_thresholds(neuron, run.thresholds)
    else:
        (kind, _), neuron = neuron_kinds.of_type(rate), rate
    return Neurons(
        kind=kind.name, activation=name, gain=float(scale), amplitude=float(neuron.amplitude),
        tau_rc=float(getattr(neuron, "tau_rc", 0.02)),
        tau_ref=float(getattr(neuron, "tau_ref", 0.002)),
        min_voltage=float(getattr(neuron, "min_voltage", 0.0)),
        sigma=float(params.get("sigma", 0.005)),
        thresholds=tuple(getattr(neuron, "thresholds", ())),
        initial_state=dict(initial_state or {}),
    )


def describe(model, run, scales=1.0, max_to_avg_pool=False, initial_states=None):
    """The `NetworkDescription` of a prepared Keras ``model`` run with ``run``.

    ``scales``: one firing-rate scale for every neuron layer, or ``{layer: scale}``
    (others 1); ``initial_states``: ``{layer: {state: array}}`` the simulators start
    from (none: at rest).
    """
    layers, shapes = [], {}
    options = {"max_to_avg_pool": bool(max_to_avg_pool)}
    initial_states = initial_states or {}
    for layer in model.layers:
        name, shape = layer.name, layer_out_shape(layer)
        if isinstance(layer, tf.keras.layers.InputLayer):
            record = Layer(name, "input", [], shape)
        else:
            inbound = layer.inbound_nodes[0].inbound_layers
            inbound = [l.name for l in (inbound if isinstance(inbound, (list, tuple))
                                        else [inbound])]
            op, params, arrays, activation = handler_for(layer)(
                layer, [shapes[n] for n in inbound], options)
            record = Layer(name, op, inbound, shape, params, arrays)
            if activation is not None:
                record.neurons = neuron_record(
                    activation, scale_of(scales, name), run, initial_states.get(name),
                    where=f"layer '{name}' ({type(layer).__name__})")
        layers.append(record)
        shapes[name] = shape
    output = model.outputs[0].node.layer.name
    return NetworkDescription(name=model.name, layers=layers, output=output, run=run)
