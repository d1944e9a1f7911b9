"""Block shapes, resources, the board without NxSDK, and the loihi config section."""

import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import BuildError

from nengoseg.errors import ConfigError
from nengoseg.loihi import DeploySettings, LoihiResourceError, LoihiUnavailable
from nengoseg.loihi.blocks import choose_block_shapes, confirm
from nengoseg.loihi.build import build_model
from nengoseg.loihi.resources import markdown, resource_report
from nengoseg.loihi.rewrite import build_loihi_network
from nengoseg.loihi.run import check_target

L = tf.keras.layers


def dense_net(hidden_channels, dense_units):
    x = L.Input((8, 8, 1))
    a = L.Conv2D(hidden_channels, 3, padding="same", activation="relu", name="conv")(x)
    d = L.Dense(dense_units, activation="relu", name="dense")(L.Flatten()(a))
    model = tf.keras.Model(x, L.Dense(1, name="out")(d))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in layer.get_weights()])
    return build_loihi_network(model, spiking=True, n_steps=10)


def conv_net():
    """8x8x16 -> 5x5 conv with 64 filters: nengo-loihi's default cut overflows synapse memory."""
    x = L.Input((8, 8, 1))
    a = L.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    b = L.Conv2D(64, 5, padding="same", activation="relu", name="c2")(a)
    model = tf.keras.Model(x, L.Conv2D(1, 1, name="out")(b))
    return build_loihi_network(model, spiking=True, n_steps=10)


def test_search_fits_a_layer_the_default_tiling_does_not():
    net = conv_net()
    with pytest.raises((BuildError, LoihiResourceError, AssertionError), match="c2|synapse"):
        confirm(net, {})  # nengo-loihi's default tiling
    shapes = choose_block_shapes(net)
    report = resource_report(confirm(net, shapes), net)
    assert report["layers"]["c2"]["cores"] == shapes["c2"].n_splits > 1
    for row in report["layers"].values():
        assert row["max_core"]["synapse_bits"] <= 1048576 and row["weight_bits"] > 0
    assert report["chips"] == 1 and "| c2 |" in markdown(report)


def test_oversize_layer_names_the_layer_and_the_limit():
    net = dense_net(80, 4)  # every dense neuron needs 5120 input axons > 4096
    with pytest.raises(LoihiResourceError) as err:
        choose_block_shapes(net)
    assert err.value.layer == "dense" and err.value.limit == "in_axons"
    assert "'dense'" in str(err.value) and "4096" in str(err.value) and "Change:" in str(err.value)


def test_board_without_nxsdk_is_an_error_not_a_fallback():
    assert check_target("sim") == "sim"
    with pytest.raises(LoihiUnavailable, match="NxSDK"):
        check_target("loihi")
    with pytest.raises(ConfigError, match="'sim'"):
        check_target("gpu")


def test_loihi_config_section_is_checked():
    assert DeploySettings.from_config({"enabled": True}).target == "sim"
    with pytest.raises(ConfigError, match="loihi.colour"):
        DeploySettings.from_config({"colour": 1})
    with pytest.raises(ConfigError, match="loihi.n_images"):
        DeploySettings.from_config({"n_images": 0})
    with pytest.raises(ConfigError, match="loihi.target"):
        DeploySettings.from_config({"target": "board"})
