"""The convolutional auto-encoder (CAE) of the co-training paper (Baltes et al.).

A U-Net simplified for conversion to a spiking network: average pooling instead of
max pooling, no skip connections, 10 convolutional layers with the defaults.
"""

import tensorflow as tf

from nengoseg.models._common import (
    check_activation,
    check_bool,
    check_divisible,
    check_input_shape,
    check_int,
    conv,
    conv_transpose,
)


def build_cae(
    input_shape=(56, 48, 1),
    filters=16,
    n_levels=2,
    convs_per_level=2,
    n_classes=1,
    use_bias=True,
    activation="relu",
    seed=0,
):
    """The co-training paper's CAE segmentation network; outputs logits.

    Level ``l`` (1 = full resolution) has ``filters * 2**(l-1)`` filters; all
    convolutions are 3x3 with ``padding="same"``. Layers, in order:

    - ``enc{l}_conv{i}`` for i = 1..convs_per_level, then ``pool{l}``
      (AveragePooling2D 2x2), for l = 1..n_levels;
    - ``bottleneck_conv{i}`` for i = 1..convs_per_level, ``filters * 2**n_levels`` filters;
    - ``dec{l}_up`` (Conv2DTranspose 3x3, stride 2) then ``dec{l}_conv``, for
      l = n_levels..1; the last level's conv is the output layer ``out``:
      ``n_classes`` filters, linear.

    With the defaults (56x48x1 input, 16 filters) that is exactly 10 convolutional layers::

        enc1_conv1, enc1_conv2   56x48x16    pool1  28x24x16
        enc2_conv1, enc2_conv2   28x24x32    pool2  14x12x32
        bottleneck_conv1, _conv2 14x12x64
        dec2_up                  28x24x32    dec2_conv  28x24x32
        dec1_up                  56x48x16    out        56x48x1 (linear)

    Height and width must be divisible by ``2**n_levels``, else ConfigError.
    """
    input_shape = check_input_shape(input_shape)
    for name, value in [("filters", filters), ("n_levels", n_levels),
                        ("convs_per_level", convs_per_level), ("n_classes", n_classes)]:
        check_int(name, value)
    check_divisible(input_shape, 2**n_levels, f"2**n_levels with n_levels={n_levels}")
    options = {
        "seed": seed,
        "use_bias": check_bool("use_bias", use_bias),
        "activation": check_activation(activation),
    }

    inputs = tf.keras.Input(input_shape, name="input")
    x = inputs
    for level in range(1, n_levels + 1):
        for i in range(1, convs_per_level + 1):
            x = conv(x, filters * 2 ** (level - 1), f"enc{level}_conv{i}", **options)
        x = tf.keras.layers.AveragePooling2D(2, name=f"pool{level}")(x)
    for i in range(1, convs_per_level + 1):
        x = conv(x, filters * 2**n_levels, f"bottleneck_conv{i}", **options)
    for level in range(n_levels, 0, -1):
        x = conv_transpose(x, filters * 2 ** (level - 1), f"dec{level}_up", **options)
        if level > 1:
            x = conv(x, filters * 2 ** (level - 1), f"dec{level}_conv", **options)
    outputs = conv(x, n_classes, "out", **{**options, "activation": None})
    return tf.keras.Model(inputs, outputs, name="cae")
