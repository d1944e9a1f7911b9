"""Pieces the model builders share: argument checks and seeded, named layers.

Every layer gets its own initialiser seed, derived from the model's ``seed`` and the
layer's name, so two builds with the same seed have identical weights and a layer's
initial weights do not change when another layer is added or removed.
"""

import zlib

import tensorflow as tf

from nengoseg.errors import ConfigError


def layer_seed(seed, name):
    """The initialiser seed of layer ``name`` in a model built with ``seed``."""
    return zlib.crc32(f"{seed}/{name}".encode()) & 0x7FFFFFFF


def weight_options(seed, name, use_bias):
    """Keyword arguments that name a layer and seed its kernel (biases start at zero)."""
    return {
        "name": name,
        "use_bias": use_bias,
        "kernel_initializer": tf.keras.initializers.GlorotUniform(seed=layer_seed(seed, name)),
        "bias_initializer": "zeros",
    }


def conv(x, filters, name, *, seed, use_bias, activation, kernel_size=3, strides=1):
    """A ``Conv2D`` with ``padding="same"`` applied to ``x``."""
    return tf.keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        activation=activation,
        **weight_options(seed, name, use_bias),
    )(x)


def conv_transpose(x, filters, name, *, seed, use_bias, activation):
    """A 3x3 ``Conv2DTranspose`` with stride 2 (doubles height and width) applied to ``x``."""
    return tf.keras.layers.Conv2DTranspose(
        filters,
        3,
        strides=2,
        padding="same",
        activation=activation,
        **weight_options(seed, name, use_bias),
    )(x)


def check_input_shape(input_shape):
    """``input_shape`` as a tuple of three positive ints (height, width, channels)."""
    try:
        shape = tuple(int(n) for n in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape != tuple(input_shape):
        raise ConfigError(
            "input_shape must be (height, width, channels) of positive integers, "
            f"got {input_shape!r}"
        )
    return shape


def check_divisible(input_shape, divisor, reason):
    """Raise ConfigError unless height and width of ``input_shape`` are multiples of ``divisor``."""
    height, width = input_shape[:2]
    if height % divisor or width % divisor:
        raise ConfigError(
            f"input_shape {tuple(input_shape)}: height and width must be divisible by "
            f"{divisor} ({reason})"
        )


def check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_activation(activation):
    """A Keras activation name (``"relu"``, ...) or callable; raise ConfigError otherwise."""
    try:
        tf.keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ConfigError(
            f"activation {activation!r} is not a Keras activation (e.g. 'relu')"
        ) from None
    return activation
