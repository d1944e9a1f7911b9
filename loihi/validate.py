"""Checks against Loihi's rules, with errors that name the layer, the limit and the fix.

`check_network` checks the Nengo network before nengo-loihi sees it (what may run
on chip); `block_usage` and `check_blocks` check the per-core resources of built
nengo-loihi blocks against `nengoseg.loihi.limits`, like ``nengo_loihi``'s own
``builder.validate`` but naming the Keras layer and what to change.
"""

import nengo

from nengoseg import neuron_kinds
from nengoseg.loihi import limits
from nengoseg.loihi.errors import LoihiNetworkError, LoihiResourceError

ON_CHIP_TRANSFORMS = (nengo.Dense, nengo.Sparse, nengo.Convolution,
                      nengo.transforms.ConvolutionTranspose)

LIMIT_NAMES = {
    "compartments": "compartments (neurons) per core",
    "in_axons": "input axons per core",
    "out_axons": "output axon slots per core",
    "synapse_bits": "synapse memory bits per core",
}


def check_network(loihi_net):
    """Raise LoihiNetworkError if a part of ``loihi_net`` cannot run on Loihi.

    On chip: neuron types LIF or SpikingRectifiedLinear; Neurons -> Neurons
    connections with Dense, Sparse, Convolution or ConvolutionTranspose
    transforms, 2D convolutions only, and Lowpass or no synapses.
    """
    for layer in loihi_net.on_chip_layers:
        neuron_type = layer.ensemble.neuron_type
        on_chip = neuron_kinds.on_chip_types()
        if not isinstance(neuron_type, on_chip):
            raise LoihiNetworkError(
                f"layer '{layer.name}' has {type(neuron_type).__name__} neurons, which Loihi "
                f"cannot run; allowed on chip: {', '.join(t.__name__ for t in on_chip)} (build "
                "the network "
                "with spiking=True; rate neurons are for the exactness check only)"
            )
    for item in loihi_net.connections:
        conn = item.connection
        where = f"connection {item.pre} -> {item.post}"
        if not (isinstance(conn.pre_obj, nengo.ensemble.Neurons)
                and isinstance(conn.post_obj, nengo.ensemble.Neurons)):
            raise LoihiNetworkError(f"{where} is not Neurons -> Neurons")
        if not isinstance(conn.transform, ON_CHIP_TRANSFORMS):
            raise LoihiNetworkError(
                f"{where} has a {type(conn.transform).__name__} transform; allowed on chip: "
                "Dense, Sparse, Convolution, ConvolutionTranspose"
            )
        if getattr(conn.transform, "dimensions", 2) != 2:
            raise LoihiNetworkError(f"{where}: only 2D convolutions run on Loihi")
        if conn.synapse is not None and type(conn.synapse) is not nengo.Lowpass:
            raise LoihiNetworkError(
                f"{where} has a {type(conn.synapse).__name__} synapse; allowed: Lowpass or None"
            )


def block_usage(block):
    """Resources one built nengo-loihi block (one core) uses, by `limits.LIMITS` key."""
    return {
        "compartments": block.compartment.n_compartments,
        "in_axons": sum(s.n_axons for s in block.synapses),
        "out_axons": sum(a.axon_slots() for a in block.axons),
        "synapse_bits": sum(s.bits() for s in block.synapses),
    }


def first_excess(usage):
    """``(limit, value)`` of the first resource over its limit, or None."""
    for key, maximum in limits.LIMITS.items():
        if usage[key] > maximum:
            return key, usage[key]
    return None


def check_blocks(blocks_by_layer, block_shapes=None, posts=None):
    """Raise LoihiResourceError for the first block over a core's limits.

    ``blocks_by_layer``: ``{layer: [LoihiBlock, ...]}`` after splitting;
    ``block_shapes``: the tiling used per layer (named in the message); ``posts``:
    ``{layer: [layers it feeds]}`` (named in the advice for output axons).
    """
    for name, blocks in blocks_by_layer.items():
        for block in blocks:
            excess = first_excess(block_usage(block))
            if excess is not None:
                shape = (block_shapes or {}).get(name)
                raise resource_error(name, *excess, shape=shape, posts=(posts or {}).get(name))


def resource_error(layer, limit, value, shape=None, posts=None, finest=False):
    """The LoihiResourceError for ``layer`` needing ``value`` of ``limit`` on one core."""
    maximum = limits.LIMITS[limit]
    tiling = "even at the finest tiling" if finest else (
        f"with block shape {tuple(shape.shape)}" if shape is not None else "with this tiling"
    )
    message = (
        f"layer '{layer}' does not fit on a Loihi core: one core needs {value} "
        f"{LIMIT_NAMES[limit]}, the limit is {maximum} ({tiling}). {advice(layer, limit, posts)}"
    )
    return LoihiResourceError(message, layer=layer, limit=limit, value=value, maximum=maximum)


def advice(layer, limit, posts=None):
    """What to change when ``layer`` exceeds ``limit``."""
    if limit == "in_axons":
        return (
            f"Change: feed '{layer}' from fewer presynaptic neurons (fewer channels or "
            "pixels in the layers before it, pooling before a Dense layer), or make its "
            "input connection a convolution (one axon per input pixel instead of one per "
            "neuron); dense and sparse connections need an axon per presynaptic neuron."
        )
    if limit == "synapse_bits":
        return (
            f"Change: give each neuron of '{layer}' fewer input weights (fewer input "
            "channels, fewer filters or a smaller kernel), or replace pooling/upsampling "
            "steps that force a sparse connection by ones that keep it convolutional."
        )
    if limit == "out_axons":
        targets = f" ({', '.join(posts)})" if posts else ""
        return (
            f"Change: use fewer channels in '{layer}', give the layers it feeds{targets} "
            "fewer, larger tiles, or use pop_type=16 (one axon slot per axon instead of two)."
        )
    return f"Change: use fewer neurons per core for '{layer}' (a smaller block shape)."
