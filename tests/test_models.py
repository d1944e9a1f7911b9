"""The model zoo: shapes, layer make-up, seeded weights, argument errors, trainability."""

import numpy as np
import pytest
import tensorflow as tf

from nengoseg.errors import ConfigError
from nengoseg.models import MODEL_BUILDERS, build_cae, build_locnet, build_model, build_unet

TINY = {
    "cae": dict(input_shape=(16, 24, 1), filters=8),
    "unet": dict(input_shape=(16, 24, 1), filters=8, depth=2, dropout=0.0),
    "locnet": dict(input_shape=(16, 24, 3), filters=4, dense_units=(8, 8, 8)),
}


def layers_of(model, layer_type):
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


def test_defaults_at_default_shapes():
    cae, unet, locnet = build_cae(), build_unet(), build_locnet()
    assert cae.output_shape == (None, 56, 48, 1)
    assert unet.output_shape == (None, 56, 48, 1)
    assert locnet.output_shape == (None, 4)
    # parameter counts at the defaults, so a change to the architectures is noticed
    counts = [model.count_params() for model in (cae, unet, locnet)]
    assert counts == [104273, 534688, 1686612]


@pytest.mark.parametrize("kind", ["cae", "unet"])
@pytest.mark.parametrize("n_classes", [1, 3])
def test_segmentation_output_matches_input(kind, n_classes):
    options = {**TINY[kind], "n_classes": n_classes}
    model = build_model(kind, options.pop("input_shape"), **options)
    assert model.output_shape == (None, 16, 24, n_classes)
    assert model.predict(np.zeros((2, 16, 24, 1)), verbose=0).shape == (2, 16, 24, n_classes)


def test_cae_has_ten_conv_layers_and_no_skips():
    model = build_cae()
    convs = layers_of(model, tf.keras.layers.Conv2D)  # Conv2DTranspose included
    assert len(convs) == 10
    assert len(layers_of(model, tf.keras.layers.Conv2DTranspose)) == 2
    assert not layers_of(model, tf.keras.layers.Concatenate)
    assert len(layers_of(model, tf.keras.layers.AveragePooling2D)) == 2
    assert convs[-1].name == "out" and convs[-1].activation is tf.keras.activations.linear
    assert all(conv.padding == "same" for conv in convs)


def test_unet_layers_are_convertible():
    model = build_unet()
    assert len(layers_of(model, tf.keras.layers.Concatenate)) == 3  # one skip per level
    assert len(layers_of(model, tf.keras.layers.AveragePooling2D)) == 3
    assert not layers_of(model, (tf.keras.layers.MaxPooling2D, tf.keras.layers.BatchNormalization))
    assert not [w.name for w in model.weights if "bias" in w.name]
    assert [layer.name for layer in layers_of(model, tf.keras.layers.Dropout)] == [
        "enc2_drop", "enc3_drop", "bottleneck_drop"
    ]
    assert model.get_layer("dec1_concat").input[1] is model.get_layer("enc1_conv2").output
    out = model.get_layer("out")
    assert out.kernel_size == (1, 1) and out.activation is tf.keras.activations.linear


def test_unet_nearest_upsampling_and_no_dropout():
    model = build_unet((16, 16, 1), filters=2, depth=2, dropout=0.0, upsampling="nearest")
    ups = layers_of(model, tf.keras.layers.UpSampling2D)
    assert [layer.interpolation for layer in ups] == ["nearest", "nearest"]
    assert not layers_of(model, (tf.keras.layers.Conv2DTranspose, tf.keras.layers.Dropout))
    assert model.output_shape == (None, 16, 16, 1)


def test_locnet_layers():
    model = build_locnet()
    dense = layers_of(model, tf.keras.layers.Dense)
    assert [layer.units for layer in dense] == [256, 128, 64, 4]
    assert dense[-1].activation is tf.keras.activations.linear
    strides = [layer.strides for layer in layers_of(model, tf.keras.layers.Conv2D)]
    assert strides == [(1, 1), (2, 2)] * 3
    assert model.get_layer("flatten").output_shape == (None, 8 * 12 * 64)


@pytest.mark.parametrize("kind", sorted(MODEL_BUILDERS))
def test_same_seed_same_weights(kind):
    options = dict(TINY[kind])
    shape = options.pop("input_shape")
    first, again, other = (
        build_model(kind, shape, seed=seed, **options).get_weights() for seed in (3, 3, 4)
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    kernels = [(a, b) for a, b in zip(first, other) if a.ndim > 1]
    assert not any(np.array_equal(a, b) for a, b in kernels)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: build_model("vgg", (16, 16, 1)), ["'vgg'", "cae, unet, locnet"]),
        (lambda: build_model("unet", (16, 16, 1), filter=4), ["'filter'", "filters", "upsampling"]),
        (lambda: build_model("cae", (16, 16, 1), depth=2), ["'depth'", "n_levels"]),
        (lambda: build_unet((50, 48, 1), depth=3), ["input_shape (50, 48, 1)", "divisible by 8"]),
        (lambda: build_cae((56, 46, 1), n_levels=2), ["input_shape (56, 46, 1)", "divisible by 4"]),
        (lambda: build_unet((16, 16)), ["input_shape"]),
        (lambda: build_unet((16, 16, 1), upsampling="bilinear"), ["upsampling", "nearest"]),
        (lambda: build_unet((16, 16, 1), dropout=1.0), ["dropout"]),
        (lambda: build_cae((16, 16, 1), filters=0), ["filters"]),
        (lambda: build_cae((16, 16, 1), activation="relux"), ["activation", "'relux'"]),
        (lambda: build_locnet((16, 16, 3), dense_units=64), ["dense_units"]),
    ],
)
def test_bad_arguments_raise_config_error(call, words):
    with pytest.raises(ConfigError) as info:
        call()
    assert all(word in str(info.value) for word in words), str(info.value)


@pytest.mark.parametrize("kind", sorted(MODEL_BUILDERS))
def test_a_few_steps_of_training_reduce_the_loss(kind):
    tf.keras.utils.set_random_seed(0)
    options = dict(TINY[kind])
    shape = options.pop("input_shape")
    # images of 4x4 blocks, so the structure survives the networks' pooling
    blocks = np.random.default_rng(0).random((8, shape[0] // 4, shape[1] // 4, shape[2]))
    x = blocks.repeat(4, axis=1).repeat(4, axis=2).astype(np.float32)
    if kind == "locnet":  # boxes: a fixed linear read-out of the image
        y, loss = x.reshape(8, -1)[:, :4] * 10, "mse"
    else:  # masks: the bright blocks
        y = (x[..., :1] > 0.6).astype(np.float32)
        loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    model = build_model(kind, shape, **options)
    model.compile(tf.keras.optimizers.Adam(0.003), loss)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=40, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.8 * before
