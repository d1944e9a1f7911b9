"""The vectorised splitting and validation build exactly the model nengo-loihi's own build."""

import numpy as np
import pytest
import tensorflow as tf
from nengo_loihi.builder import split_blocks, validate

from nengoseg.loihi.blocks import candidate_shapes
from nengoseg.loihi.build import build_model
from nengoseg.loihi.fast_build import (ORIGINAL_SPLIT_AXON, ORIGINAL_SPLIT_SYNAPSE,
                                       ORIGINAL_VALIDATE_AXON, split_signature,
                                       validate_axon)
from nengoseg.loihi.rewrite import build_loihi_network

L = tf.keras.layers


def _net(pop_type):
    """conv, strided conv, pooling, transposed conv, concatenation, dense: every synapse kind."""
    x = L.Input((12, 12, 1))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="b")(a)
    p = L.AveragePooling2D(2)(b)
    c = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="c")(p)
    u = L.UpSampling2D(2)(c)
    d = L.Concatenate()([a, u])
    e = L.Conv2D(3, 3, padding="same", activation="relu", name="e")(d)
    f = L.Dense(10, activation="relu", name="f")(L.Flatten()(e))
    model = tf.keras.Model(x, L.Dense(2, name="out")(f))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in layer.get_weights()])
    return build_loihi_network(model, spiking=True, n_steps=5, pop_type=pop_type)


def _shapes(net, pick):
    """The ``pick``-th candidate tiling of each layer (or its last one)."""
    out = {}
    for layer in net.on_chip_layers:
        candidates = candidate_shapes(layer.shape)
        out[layer.name] = candidates[min(pick, len(candidates) - 1)]
    return out


# pop16 tilings whose compartment bases are not multiples of 4 fail nengo-loihi's
# validation (the search skips them), so those builds are compared unvalidated
@pytest.mark.parametrize("pop_type,pick,discretize,validation", [
    (32, 1, False, "minimal"), (32, 3, True, "minimal"), (16, 2, False, "none"),
    (16, 6, True, "none")])
def test_fast_split_builds_nengo_loihis_model(pop_type, pick, discretize, validation):
    net = _net(pop_type)
    shapes = _shapes(net, pick)
    assert sum(s.n_splits for s in shapes.values()) > len(shapes)  # layers really split
    reference = build_model(net, shapes, discretize=discretize, validation=validation,
                            fast=False)
    fast = build_model(net, shapes, discretize=discretize, validation=validation)
    assert split_blocks.split_synapse is ORIGINAL_SPLIT_SYNAPSE  # restored
    assert split_blocks.split_axon is ORIGINAL_SPLIT_AXON
    assert validate.validate_axon is ORIGINAL_VALIDATE_AXON
    expected, got = split_signature(reference), split_signature(fast)
    assert len(got[0]) == len(expected[0]) > len(shapes)
    for b, (want, have) in enumerate(zip(expected[0], got[0])):
        assert have == want, f"core {b} differs"
    assert got[1] == expected[1]


def test_fast_axon_validation_fails_where_nengo_loihis_fails():
    net = _net(32)
    model = build_model(net, _shapes(net, 1), discretize=False, validation="none")
    axons = [a for block in model.blocks for a in block.axons
             if a.compartment_atoms is not None and len(a.compartment_atoms)]
    assert axons
    for axon in axons:  # the built model passes both
        ORIGINAL_VALIDATE_AXON(axon)
        validate_axon(axon)
    axon = axons[len(axons) // 2]
    populations = max(w.shape[0] for w in axon.target.weights)
    atoms = np.array(axon.compartment_atoms)
    atoms[len(atoms) // 2] = populations  # one atom past its axon's populations
    axon.compartment_atoms = atoms
    for check in (ORIGINAL_VALIDATE_AXON, validate_axon):
        with pytest.raises(AssertionError):
            check(axon)
