"""The description's linear operations as affine maps of neuron layers.

`Affine` is a layer's output written as ``sum(chain_i(layer_i)) + const`` over neuron
layers, each chain a tuple of `nengoseg.loihi.linear_ops.LinearOp`. `apply` maps one
layer of a `nengoseg.description.NetworkDescription` (conv2d, pooling, upsampling,
concatenation, ...) over its inputs' `Affine` values; the rewrite then turns each
chain ending at a neuron layer into a Neurons -> Neurons connection.
"""

import dataclasses
from typing import Optional

import numpy as np

from nengoseg.loihi import linear_ops


@dataclasses.dataclass
class Affine:
    """A layer's output as ``sum(chain_i(layer_i)) + const`` over neuron layers."""

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


def _with_bias(value, layer):
    bias = layer.arrays.get("bias")
    return value if bias is None else value.plus(bias)


def _conv2d(layer, x):
    op = linear_ops.Conv2D(x.shape, layer.arrays["kernel"], tuple(layer.params["strides"]),
                           layer.params["padding"])
    return _with_bias(x.map(op), layer)


def _conv2d_transpose(layer, x):
    op = linear_ops.Conv2DTranspose(x.shape, layer.shape, layer.arrays["kernel"],
                                    tuple(layer.params["strides"]), layer.params["padding"])
    return _with_bias(x.map(op), layer)


def _dense(layer, x):
    kernel = layer.arrays["kernel"]
    if len(x.shape) == 3:  # per pixel: a 1x1 convolution
        op = linear_ops.Conv2D(x.shape, kernel[None, None])
    else:
        op = linear_ops.Dense(x.shape, kernel)
    return _with_bias(x.map(op), layer)


def _avg_pool2d(layer, x):
    p = layer.params
    return x.map(linear_ops.AvgPool2D(x.shape, tuple(p["pool_size"]), tuple(p["strides"]),
                                      p["padding"]))


def _concatenate(layer, *inputs):
    parts, offset, axis = [], 0, layer.params["axis"]
    for x in inputs:
        parts.append(x.map(linear_ops.Embed(x.shape, layer.shape, axis, offset)))
        offset += x.shape[axis]
    return Affine.sum(parts)


def _reshape(layer, x):
    if tuple(x.shape) == tuple(layer.shape):  # dropout, an activation: nothing to do
        return x
    return x.map(linear_ops.Identity(x.shape, layer.shape))


def _affine(layer, x):
    return x.map(linear_ops.Scale(x.shape, layer.arrays["scale"])).plus(layer.arrays["shift"])


OPS = {
    "conv2d": _conv2d,
    "conv2d_transpose": _conv2d_transpose,
    "dense": _dense,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool2d": lambda layer, x: x.map(linear_ops.GlobalAvgPool2D(x.shape)),
    "upsample2d": lambda layer, x: x.map(linear_ops.Upsample2D(x.shape, tuple(layer.params["size"]))),
    "concatenate": _concatenate,
    "add": lambda layer, *inputs: Affine.sum(list(inputs)),
    "reshape": _reshape,
    "affine": _affine,
}


def apply(layer, inputs):
    """The `Affine` value of description layer ``layer`` given its inputs' values."""
    return OPS[layer.op](layer, *inputs)
