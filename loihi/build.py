"""Build a `LoihiNetwork` into a ``nengo_loihi.builder.Model`` (no simulator).

nengo-loihi's build splits every block into cores (``split_model``), discretizes
weights and parameters, and validates each core. `build_model` runs that build
with a chosen tiling, optionally without discretizing or validating, so that the
block-shape search and the resource report see exactly the blocks nengo-loihi
makes. `layer_blocks` maps the built blocks back to layer names.
"""

import nengo_loihi
import numpy as np
from nengo_loihi.builder import Model
from nengo_loihi.builder.builder import ValidationLevel

from nengoseg.loihi.nengo_loihi_compat import fast_building

VALIDATION = {
    "none": ValidationLevel.NONE,
    "minimal": ValidationLevel.MINIMAL,
    "full": ValidationLevel.FULL,
}


def whole_shapes(loihi_net):
    """One block per layer: the unsplit tiling (used to inspect unsplit blocks)."""
    return {
        layer.name: nengo_loihi.BlockShape(tuple(layer.shape), tuple(layer.shape))
        for layer in loihi_net.on_chip_layers
    }


def apply_block_shapes(loihi_net, block_shapes):
    """Set each on-chip layer's ``block_shape`` config; unlisted layers get None (default)."""
    config = loihi_net.network.config
    for layer in loihi_net.on_chip_layers:
        shape = block_shapes.get(layer.name)
        if shape is not None:
            config[layer.ensemble].block_shape = shape
        elif config[layer.ensemble].block_shape is not None:
            del config[layer.ensemble].block_shape  # back to nengo-loihi's default


def build_model(loihi_net, block_shapes=None, discretize=True, validation="minimal",
                fast=True):
    """nengo-loihi's build of ``loihi_net`` with ``block_shapes`` (default: the chosen ones).

    ``validation="none"`` skips nengo-loihi's checks (the caller checks the blocks);
    ``discretize=False`` keeps float weights (resources do not depend on it).
    Layers missing from ``block_shapes`` get nengo-loihi's default tiling. The
    network config is left with ``loihi_net.block_shapes`` set. ``fast``: split
    and validate with `nengoseg.loihi.fast_build` (the same model, several
    times faster).
    """
    shapes = loihi_net.block_shapes if block_shapes is None else block_shapes
    apply_block_shapes(loihi_net, shapes)
    model = Model(dt=loihi_net.settings.dt, label=str(loihi_net.network))
    model.validation_level = VALIDATION[validation]
    try:
        with fast_building(fast):
            model.build(loihi_net.network, discretize=discretize)
    finally:
        apply_block_shapes(loihi_net, loihi_net.block_shapes)
    return model


def layer_blocks(model, loihi_net):
    """``{layer: [LoihiBlock, ...]}`` for every on-chip layer of a built model."""
    blocks = {}
    for layer in loihi_net.on_chip_layers:
        found = model.objs[layer.ensemble]["out"]
        blocks[layer.name] = list(found) if isinstance(found, (list, tuple)) else [found]
    return blocks


def block_neurons(model, block):
    """The layer's neuron indices that a (split) block holds, in block order."""
    ids = model.block_comp_map.get(block)
    return np.arange(block.n_neurons) if ids is None else np.asarray(list(ids))
