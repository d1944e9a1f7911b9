"""Normalisation across skip concatenations: connection-wise or layer-wise (Spiking-UNet 3.3).

A U-Net's decoder concatenates an upsampled path with an encoder layer's output, and
the two parts can differ several-fold in scale (Spiking-UNet, Fig. 3). The paper's
layer-wise normalisation (its eq. 7) rescales the weights after a concatenation by one
factor ``lambda^{l-1}`` for the whole concatenated input, so the part with the smaller
activations fires at a lower, less precise rate; its connection-wise normalisation
(eq. 8) gives each part its own factor ``lambda_i^{l-1}``.

In nengoseg every neuron layer already has its own scale (``scale = target_rate_hz /
factor``) and an output amplitude that returns its spikes to Keras units, so each part
of a concatenation arrives in its own units at its own rate: conversion is
connection-wise by construction (``convert.skip_normalisation: connection``, the
default). ``layer`` reproduces the paper's layer-wise scheme for its ablation (Table 3):
the neuron layers that feed one concatenation (through pooling, upsampling or other
layers without neurons) share the largest of their factors, so the part with smaller
activations fires proportionally slower, as it does there. The network still computes
the same function in expectation (the amplitudes follow the scales); only the precision
of the slower part drops.
"""

SKIP_NORMALISATIONS = ("connection", "layer")


def concatenation_sources(model, neuron_layers):
    """For each ``Concatenate`` layer of ``model``, the neuron layers (names in
    ``neuron_layers``) its inputs come from, found by walking back through layers
    without neurons; ``{concatenate name: [source names]}``."""
    import tensorflow as tf

    def sources(layer, seen):
        if layer.name in neuron_layers:
            return [layer.name]
        found = []
        for parent in _parents(layer):
            if parent.name not in seen:
                seen.add(parent.name)
                found += sources(parent, seen)
        return found

    return {
        layer.name: list(dict.fromkeys(
            name for parent in _parents(layer) for name in sources(parent, {parent.name})))
        for layer in model.layers if isinstance(layer, tf.keras.layers.Concatenate)
    }


def _parents(layer):
    """The layers whose outputs ``layer`` takes (Keras 2: its inbound nodes)."""
    for node in layer._inbound_nodes:
        inbound = node.inbound_layers
        yield from inbound if isinstance(inbound, (list, tuple)) else [inbound]


def layer_wise(factors, groups):
    """``factors`` with the neuron layers of each concatenation (``groups``, from
    `concatenation_sources`) sharing the largest factor among them; layers in several
    concatenations share across all of them. The input is not changed."""
    shared = dict(factors)
    changed = True
    while changed:
        changed = False
        for names in groups.values():
            names = [name for name in names if name in shared]
            if not names:
                continue
            top = max(shared[name] for name in names)
            for name in names:
                if shared[name] != top:
                    shared[name], changed = top, True
    return shared
