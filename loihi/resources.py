"""Per-layer Loihi resources of a built network, and the number of chips.

Read from nengo-loihi's own split and discretized blocks (`blocks.confirm`), so
the figures are what the chip would be loaded with: cores per layer, and summed
over them compartments, input axons, output axon slots, synapse memory bits and
weight bits (stored weights times the discretized weight width; a convolution's
shared weights count once per core that stores them).
"""

import math
from collections import OrderedDict

from nengoseg.loihi import limits
from nengoseg.loihi.build import layer_blocks
from nengoseg.loihi.validate import block_usage

COLUMNS = ("cores", "compartments", "in_axons", "out_axons", "synapse_bits", "weight_bits")


def weight_bits(block):
    """Bits of the stored weight mantissas of one block (core)."""
    return sum(
        synapse.synapse_cfg.real_weight_bits * sum(w.size for w in synapse.weights)
        for synapse in block.synapses if synapse.weights is not None
    )


def resource_report(model, loihi_net):
    """``{"layers": {layer: {...}}, "total": {...}, "chips": n, "block_shapes": {...}}``.

    Per layer: the COLUMNS (summed over its cores), the busiest core's share of
    each core limit (``max_core``), and the block shape chosen.
    """
    layers = OrderedDict()
    for name, blocks in layer_blocks(model, loihi_net).items():
        usages = [dict(block_usage(b), weight_bits=weight_bits(b)) for b in blocks]
        row = {"cores": len(blocks)}
        for key in COLUMNS[1:]:
            row[key] = int(sum(u[key] for u in usages))
        row["max_core"] = {key: int(max(u[key] for u in usages)) for key in limits.LIMITS}
        shape = loihi_net.block_shapes.get(name)
        row["block_shape"] = list(shape.shape) if shape is not None else None
        row["neurons"] = int(loihi_net.layers[name].n_neurons)
        layers[name] = row
    total = {key: int(sum(row[key] for row in layers.values())) for key in COLUMNS}
    return {
        "layers": layers,
        "total": total,
        "chips": max(1, math.ceil(total["cores"] / limits.CORES_PER_CHIP)),
        "limits": dict(limits.LIMITS, cores_per_chip=limits.CORES_PER_CHIP),
    }


def summary(report):
    """The short form results.json keeps: cores, chips, compartments, synapse bits."""
    return {"cores": report["total"]["cores"], "chips": report["chips"],
            "compartments": report["total"]["compartments"],
            "synapse_bits": report["total"]["synapse_bits"]}


def markdown(report, title="Loihi resources"):
    """A markdown table, one row per layer, plus the totals and the chips."""
    head = ["layer", "block shape", *COLUMNS]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for name, row in report["layers"].items():
        shape = "x".join(map(str, row["block_shape"])) if row["block_shape"] else "default"
        lines.append("| " + " | ".join([name, shape] + [f"{row[k]:,}" for k in COLUMNS]) + " |")
    total = report["total"]
    lines.append("| **total** | | " + " | ".join(f"**{total[k]:,}**" for k in COLUMNS) + " |")
    lines += ["", f"Chips: {report['chips']} (Loihi 1: {limits.CORES_PER_CHIP} cores per chip; "
              f"per core {limits.MAX_COMPARTMENTS} compartments, {limits.MAX_IN_AXONS} input "
              f"and {limits.MAX_OUT_AXONS} output axons, {limits.MAX_SYNAPSE_BITS:,} synapse "
              "bits)", ""]
    return "\n".join(lines)
