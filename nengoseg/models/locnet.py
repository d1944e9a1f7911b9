"""LocNet, the bounding-box regressor of the co-training paper (Baltes et al.).

Convolutions with stride 2 stand in for pooling (max pooling has no good spiking
implementation), followed by fully connected layers that regress the box corners.
"""

import tensorflow as tf

from nengoseg.errors import ConfigError
from nengoseg.models._common import (
    activate,
    check_activation,
    check_bool,
    check_input_shape,
    check_int,
    conv,
    keras_activation,
    weight_options,
)


def build_locnet(
    input_shape=(64, 96, 3),
    filters=16,
    n_blocks=3,
    dense_units=(256, 128, 64),
    n_outputs=4,
    use_bias=True,
    activation="relu",
    seed=0,
):
    """The co-training paper's LocNet; outputs the box corners (x1, y1, x2, y2), linear.

    Layers, in order:

    - for b = 1..n_blocks: ``block{b}_conv`` (3x3) and ``block{b}_pool`` (3x3, stride 2,
      the "pooling"), both with ``filters * 2**(b-1)`` filters and ``padding="same"``;
    - ``flatten``;
    - ``dense{i}`` with ``dense_units[i-1]`` units, i = 1..len(dense_units);
    - ``out``: Dense(``n_outputs``), linear.

    ``activation="softlif"`` puts a SoftLIF layer (``{name}_lif``, soft LIF neurons
    as in the paper) after each of these layers instead of a ReLU.

    With the defaults that is 6 convolutions (64x96x3 -> 8x12x64) and 4 dense layers.
    """
    input_shape = check_input_shape(input_shape)
    for name, value in [("filters", filters), ("n_blocks", n_blocks), ("n_outputs", n_outputs)]:
        check_int(name, value)
    if not isinstance(dense_units, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in dense_units
    ):
        raise ConfigError(f"dense_units must be a list of positive integers, got {dense_units!r}")
    options = {
        "seed": seed,
        "use_bias": check_bool("use_bias", use_bias),
        "activation": check_activation(activation),
    }

    inputs = tf.keras.Input(input_shape, name="input")
    x = inputs
    for block in range(1, n_blocks + 1):
        n_filters = filters * 2 ** (block - 1)
        x = conv(x, n_filters, f"block{block}_conv", **options)
        x = conv(x, n_filters, f"block{block}_pool", strides=2, **options)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units, start=1):
        x = tf.keras.layers.Dense(
            units,
            activation=keras_activation(options["activation"]),
            **weight_options(seed, f"dense{i}", use_bias, options["activation"]),
        )(x)
        x = activate(x, options["activation"], f"dense{i}")
    outputs = tf.keras.layers.Dense(n_outputs, **weight_options(seed, "out", use_bias))(x)
    return tf.keras.Model(inputs, outputs, name="locnet")
