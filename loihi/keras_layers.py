"""Keras layers as affine maps of neuron layers: the layer handlers of the Loihi rewrite.

`Affine` is a Keras tensor written as ``sum(chain_i(layer_i)) + const`` over
neuron layers, each chain a tuple of `nengoseg.loihi.linear_ops.LinearOp`.
Each supported Keras layer class has a handler (registered with `handles`,
looked up with `handler_for`) ``f(layer, inputs, builder) -> (Affine, neuron
spec or None)``: linear layers map their inputs' `Affine` values, neuron layers
(ReLU activations, `nengoseg.convert.SoftLIF`) also return the neuron spec that
`nengoseg.loihi.rewrite.make_neuron_type` turns into a Nengo neuron type. A layer
that cannot be mapped raises a ConversionError naming it and why (`unsupported`).
"""

import dataclasses
from collections import OrderedDict
from typing import Optional

import numpy as np
import tensorflow as tf

from nengoseg.errors import ConversionError
from nengoseg.layer_kinds import DROPOUT_LAYERS
from nengoseg.loihi import linear_ops

RELU_ACTIVATIONS = (tf.keras.activations.relu, tf.nn.relu)
LINEAR_ACTIVATIONS = (None, tf.keras.activations.linear)
IDENTITY_LAYERS = DROPOUT_LAYERS + (tf.keras.layers.Flatten, tf.keras.layers.Reshape)


# ---------------------------------------------------------------- affine values


@dataclasses.dataclass
class Affine:
    """A Keras tensor as ``sum(chain_i(layer_i)) + const`` over neuron layers."""

    shape: tuple
    terms: list  # (layer name, tuple of LinearOp)
    const: Optional[np.ndarray] = None

    @classmethod
    def of_layer(cls, name, shape):
        return cls(tuple(shape), [(name, ())])

    def map(self, op):
        const = None if self.const is None else op.apply(self.const)
        return Affine(tuple(op.out_shape), [(n, ops + (op,)) for n, ops in self.terms], const)

    def plus(self, bias):
        """Add a constant: a flat vector, or one value per channel (last axis)."""
        bias = np.asarray(bias, np.float64)
        if bias.size != int(np.prod(self.shape)):
            bias = np.broadcast_to(bias, self.shape).ravel()
        const = bias.copy() if self.const is None else self.const + bias
        return Affine(self.shape, list(self.terms), const)

    @staticmethod
    def sum(values):
        shape = values[0].shape
        terms = [t for v in values for t in v.terms]
        consts = [v.const for v in values if v.const is not None]
        return Affine(shape, terms, np.sum(consts, axis=0) if consts else None)


# ---------------------------------------------------------------- layer handlers

HANDLERS = OrderedDict()


def handles(*layer_classes):
    """Register a handler ``f(layer, inputs, builder) -> (Affine, neuron_spec or None)``."""

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
        raise unsupported(layer, f"no Loihi rewrite exists for {type(layer).__name__} layers "
                                 f"(supported: {', '.join(supported)})")
    return handler


def unsupported(layer, reason):
    return ConversionError(
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be mapped to Loihi: {reason}"
    )


def _activation(layer):
    """None (linear) or ("relu",); anything else is refused."""
    activation = getattr(layer, "activation", None)
    if activation in LINEAR_ACTIVATIONS:
        return None
    if activation in RELU_ACTIVATIONS:
        return ("relu",)
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


def _bias(layer):
    return layer.bias.numpy() if getattr(layer, "use_bias", False) else None


@handles(tf.keras.layers.Conv2D)
def _conv2d(layer, inputs, builder):
    _check_image_layer(layer)
    (x,) = inputs
    if len(x.shape) != 3:
        raise unsupported(layer, f"expects an image input, got shape {x.shape}")
    op = linear_ops.Conv2D(x.shape, layer.kernel.numpy(), layer.strides, layer.padding)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.Conv2DTranspose)
def _conv2d_transpose(layer, inputs, builder):
    _check_image_layer(layer)
    if layer.output_padding is not None:
        raise unsupported(layer, "output_padding is not supported")
    (x,) = inputs
    op = linear_ops.Conv2DTranspose(x.shape, layer_out_shape(layer), layer.kernel.numpy(),
                                layer.strides, layer.padding)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.Dense)
def _dense(layer, inputs, builder):
    (x,) = inputs
    kernel = layer.kernel.numpy()
    if len(x.shape) == 3:  # per pixel: a 1x1 convolution
        op = linear_ops.Conv2D(x.shape, kernel[None, None])
    else:
        op = linear_ops.Dense(x.shape, kernel)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.AveragePooling2D, tf.keras.layers.MaxPooling2D)
def _pool(layer, inputs, builder):
    _check_image_layer(layer)
    if isinstance(layer, tf.keras.layers.MaxPooling2D) and not builder.max_to_avg_pool:
        raise unsupported(
            layer, "max pooling has no linear equivalent; set max_to_avg_pool=True to use "
                   "average pooling instead (this changes the network)"
        )
    (x,) = inputs
    return x.map(linear_ops.AvgPool2D(x.shape, layer.pool_size, layer.strides, layer.padding)), None


@handles(tf.keras.layers.GlobalAveragePooling2D)
def _global_pool(layer, inputs, builder):
    _check_image_layer(layer)
    if getattr(layer, "keepdims", False):
        raise unsupported(layer, "keepdims=True is not supported")
    (x,) = inputs
    return x.map(linear_ops.GlobalAvgPool2D(x.shape)), None


@handles(tf.keras.layers.UpSampling2D)
def _upsample(layer, inputs, builder):
    _check_image_layer(layer)
    if layer.interpolation != "nearest":
        raise unsupported(layer, f"interpolation '{layer.interpolation}'; only 'nearest' is linear "
                                 "and exact here")
    (x,) = inputs
    return x.map(linear_ops.Upsample2D(x.shape, layer.size)), None


@handles(tf.keras.layers.Concatenate)
def _concatenate(layer, inputs, builder):
    out_shape = layer_out_shape(layer)
    axis = layer.axis % (len(out_shape) + 1) - 1  # without the batch axis
    if axis < 0:
        raise unsupported(layer, "concatenation along the batch axis")
    parts, offset = [], 0
    for x in inputs:
        parts.append(x.map(linear_ops.Embed(x.shape, out_shape, axis, offset)))
        offset += x.shape[axis]
    return Affine.sum(parts), None


@handles(tf.keras.layers.Add)
def _add(layer, inputs, builder):
    return Affine.sum(list(inputs)), None


@handles(*IDENTITY_LAYERS)
def _identity(layer, inputs, builder):
    (x,) = inputs
    return x.map(linear_ops.Identity(x.shape, layer_out_shape(layer))), None


@handles(tf.keras.layers.Activation)
def _activation_layer(layer, inputs, builder):
    (x,) = inputs
    return x, _activation(layer)


@handles(tf.keras.layers.ReLU)
def _relu(layer, inputs, builder):
    if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        raise unsupported(layer, "only the plain ReLU (no max_value, slope or threshold) is supported")
    (x,) = inputs
    return x, ("relu",)


@handles(tf.keras.layers.BatchNormalization)
def _batch_norm(layer, inputs, builder):
    (x,) = inputs
    if list(layer.axis) != [len(x.shape)]:
        raise unsupported(layer, "only normalisation over the last (channel) axis is supported")
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    shift = beta - scale * layer.moving_mean.numpy()
    return x.map(linear_ops.Scale(x.shape, scale)).plus(shift), None


def _register_softlif():
    from nengoseg.convert.layers import SoftLIF

    @handles(SoftLIF)
    def _softlif(layer, inputs, builder):
        (x,) = inputs
        return x, ("softlif", layer.tau_rc, layer.tau_ref, layer.amplitude, layer.sigma)


_register_softlif()


def layer_out_shape(layer):
    shape = layer.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return tuple(shape[1:])
