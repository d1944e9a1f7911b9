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


def weight_options(seed, name, use_bias, activation=None):
    """Keyword arguments that name a layer and seed its kernel.

    Biases start at zero, or at one before soft LIF neurons (activation "softlif"):
    their firing threshold is an input current of 1, so zero biases would leave
    most neurons silent (and without gradient) at the start.
    """
    return {
        "name": name,
        "use_bias": use_bias,
        "kernel_initializer": tf.keras.initializers.GlorotUniform(seed=layer_seed(seed, name)),
        "bias_initializer": "ones" if activation == SOFTLIF else "zeros",
    }


SOFTLIF = "softlif"
# the soft LIF neurons of activation "softlif" (co-training paper: smoothing 0.005);
# amplitude 0.01 keeps activations near 1 at the ~100 Hz rates LIF neurons fire at
SOFTLIF_OPTIONS = {"tau_rc": 0.02, "tau_ref": 0.002, "amplitude": 0.01, "sigma": 0.005}


# "qcfs<L>": the quantisation clip-floor-shift activation with L levels (a QCFS layer
# follows the linear layer; its threshold starts at QCFS_INITIAL_THRESHOLD)
QCFS_PREFIX = "qcfs"
QCFS_INITIAL_THRESHOLD = 2.0


def qcfs_levels(activation):
    """L for an activation ``"qcfs<L>"`` (e.g. ``"qcfs8"``), else None."""
    if not isinstance(activation, str) or not activation.startswith(QCFS_PREFIX):
        return None
    digits = activation[len(QCFS_PREFIX):]
    return int(digits) if digits.isdigit() and int(digits) >= 1 else None


def keras_activation(activation):
    """The ``activation`` argument of a Keras layer: None for ``"softlif"`` and
    ``"qcfs<L>"`` (a layer follows)."""
    return None if activation == SOFTLIF or qcfs_levels(activation) else activation


def activate(x, activation, name):
    """``x`` itself, or after a SoftLIF layer ``{name}_lif`` for activation ``"softlif"``,
    or a QCFS layer ``{name}_qcfs`` for ``"qcfs<L>"``."""
    levels = qcfs_levels(activation)
    if levels:
        from nengoseg.convert.layers import QCFS

        return QCFS(levels, QCFS_INITIAL_THRESHOLD, name=f"{name}_qcfs")(x)
    if activation != SOFTLIF:
        return x
    from nengoseg.convert.layers import SoftLIF

    return SoftLIF(**SOFTLIF_OPTIONS, name=f"{name}_lif")(x)


def conv(x, filters, name, *, seed, use_bias, activation, kernel_size=3, strides=1):
    """A ``Conv2D`` with ``padding="same"`` applied to ``x`` (then SoftLIF for "softlif")."""
    x = tf.keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        activation=keras_activation(activation),
        **weight_options(seed, name, use_bias, activation),
    )(x)
    return activate(x, activation, name)


def conv_transpose(x, filters, name, *, seed, use_bias, activation):
    """A 3x3 ``Conv2DTranspose`` with stride 2 (doubles height and width) applied to ``x``."""
    x = tf.keras.layers.Conv2DTranspose(
        filters,
        3,
        strides=2,
        padding="same",
        activation=keras_activation(activation),
        **weight_options(seed, name, use_bias, activation),
    )(x)
    return activate(x, activation, name)


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
    """A Keras activation name (``"relu"``, ...), ``"softlif"`` (soft LIF neurons,
    `nengoseg.convert.layers.SoftLIF` with `SOFTLIF_OPTIONS`), ``"qcfs<L>"``
    (`nengoseg.convert.layers.QCFS` with L levels, e.g. ``"qcfs8"``) or a callable;
    raise ConfigError otherwise."""
    if activation == SOFTLIF or qcfs_levels(activation):
        return activation
    try:
        tf.keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ConfigError(
            f"activation {activation!r} is not a Keras activation (e.g. 'relu'), 'softlif' "
            "nor 'qcfs<L>' (QCFS with L >= 1 levels, e.g. 'qcfs8')"
        ) from None
    return activation
