"""The modified U-Net of the three-stage SNN fine-tuning paper (Yue et al. 2023).

Changes from the original U-Net that make it convertible to a spiking network:
average pooling instead of max pooling, no biases (they interfere with the spiking
thresholds), no batch normalisation (nothing left for it to shift), and dropout for
regularisation. Skips are concatenations.
"""

import tensorflow as tf

from nengoseg.errors import ConfigError
from nengoseg.models._common import (
    check_activation,
    check_bool,
    check_divisible,
    check_input_shape,
    check_int,
    conv,
    conv_transpose,
    layer_seed,
)

UPSAMPLING = ("transpose", "nearest")


def build_unet(
    input_shape=(56, 48, 1),
    filters=16,
    depth=3,
    convs_per_level=2,
    n_classes=1,
    dropout=0.2,
    use_bias=False,
    activation="relu",
    upsampling="transpose",
    seed=0,
):
    """The three-stage paper's U-Net segmentation network; outputs logits.

    Level ``l`` (1 = full resolution) has ``filters * 2**(l-1)`` filters, the
    bottleneck ``filters * 2**depth``; convolutions are 3x3 with ``padding="same"``.
    Layers, in order:

    - encoder, l = 1..depth: ``enc{l}_conv{i}`` (i = 1..convs_per_level), for l > 1
      ``enc{l}_drop``, then ``pool{l}`` (AveragePooling2D 2x2);
    - ``bottleneck_conv{i}``, ``bottleneck_drop``;
    - decoder, l = depth..1: ``dec{l}_up`` (``upsampling="transpose"``: Conv2DTranspose
      3x3 stride 2; ``"nearest"``: UpSampling2D followed by the 3x3 conv
      ``dec{l}_upconv``), ``dec{l}_concat`` (with the encoder output of level l, taken
      after its dropout), ``dec{l}_conv{i}``;
    - ``out``: 1x1 conv to ``n_classes``, linear.

    Dropout follows the convolutions of every encoder level but the first, and of the
    bottleneck: the deep levels hold most of the weights, while dropping the
    full-resolution features would blur the boundaries the first skip carries (the
    original U-Net likewise drops out at the end of the contracting path). No Dropout
    layers are made when ``dropout`` is 0.

    Height and width must be divisible by ``2**depth``, else ConfigError.
    """
    input_shape = check_input_shape(input_shape)
    for name, value in [("filters", filters), ("depth", depth),
                        ("convs_per_level", convs_per_level), ("n_classes", n_classes)]:
        check_int(name, value)
    check_divisible(input_shape, 2**depth, f"2**depth with depth={depth}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if upsampling not in UPSAMPLING:
        raise ConfigError(f"upsampling must be one of {', '.join(UPSAMPLING)}, got {upsampling!r}")
    options = {
        "seed": seed,
        "use_bias": check_bool("use_bias", use_bias),
        "activation": check_activation(activation),
    }

    def conv_block(x, n_filters, prefix):
        for i in range(1, convs_per_level + 1):
            x = conv(x, n_filters, f"{prefix}_conv{i}", **options)
        return x

    def drop(x, name):
        if not dropout:
            return x
        return tf.keras.layers.Dropout(dropout, seed=layer_seed(seed, name), name=name)(x)

    inputs = tf.keras.Input(input_shape, name="input")
    x = inputs
    skips = {}
    for level in range(1, depth + 1):
        x = conv_block(x, filters * 2 ** (level - 1), f"enc{level}")
        if level > 1:
            x = drop(x, f"enc{level}_drop")
        skips[level] = x
        x = tf.keras.layers.AveragePooling2D(2, name=f"pool{level}")(x)
    x = drop(conv_block(x, filters * 2**depth, "bottleneck"), "bottleneck_drop")
    for level in range(depth, 0, -1):
        n_filters = filters * 2 ** (level - 1)
        if upsampling == "transpose":
            x = conv_transpose(x, n_filters, f"dec{level}_up", **options)
        else:
            x = tf.keras.layers.UpSampling2D(2, interpolation="nearest", name=f"dec{level}_up")(x)
            x = conv(x, n_filters, f"dec{level}_upconv", **options)
        x = tf.keras.layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_block(x, n_filters, f"dec{level}")
    outputs = conv(x, n_classes, "out", kernel_size=1, **{**options, "activation": None})
    return tf.keras.Model(inputs, outputs, name="unet")
