"""Energy per inference from measured activity, at published per-operation costs.

Loihi: every spike of a neuron costs one synaptic operation per synapse it drives
(its fan-out, counted on the exact connection matrices) at
`limits.LOIHI_ENERGY_PER_SYNOP`, and every neuron (compartment) costs one update
per time step at `limits.LOIHI_ENERGY_PER_NEURON_UPDATE` (Davies et al. 2018, as
KerasSpiking's ModelEnergy counts them; ``tests/test_loihi_limits.py`` checks the
figures against its device table and the sum against its formula). The input
spikes sent to the chip count as synaptic operations of the input layer. Static
power and host I/O are left out.

ANN: one multiply-accumulate per weight use, at `limits.ANN_ENERGY_PER_MAC`
(45 nm, Horowitz 2014). SNN rows without per-neuron counts (the NengoDL runs in
results.json) use each layer's mean firing rate times its mean fan-out.

A second figure per row, ``joules_per_inference_45nm``, is the Spiking-UNet
paper's comparison on one 45 nm process: the ANN's MACs at 4.6 pJ against the
SNN's synaptic operations as accumulates at `limits.ENERGY_PER_AC_45NM` (0.9 pJ),
neuron updates not counted.
"""

import numpy as np

from nengoseg.loihi import limits

METHOD = (
    "Energy per inference = synaptic operations x {synop:.1f} pJ + neuron updates x "
    "{update:.0f} pJ for Loihi-style SNNs (Davies et al. 2018, as in KerasSpiking's "
    "ModelEnergy; synaptic operations = spikes x fan-out of each spiking neuron, neuron "
    "updates = neurons x time steps), and multiply-accumulates x {mac:.1f} pJ for the ANN "
    "(45 nm, Horowitz 2014); dynamic energy only, no static power or host I/O. The "
    "'loihi' row uses the emulator's per-neuron spike counts, the NengoDL rows each "
    "layer's mean rate times its mean fan-out. Second figure ('45 nm', the Spiking-UNet "
    "paper's comparison): synaptic operations x {ac:.1f} pJ (an accumulate) against the "
    "ANN's multiply-accumulates x {mac:.1f} pJ."
).format(ac=limits.ENERGY_PER_AC_45NM * 1e12,synop=limits.LOIHI_ENERGY_PER_SYNOP * 1e12,
         update=limits.LOIHI_ENERGY_PER_NEURON_UPDATE * 1e12,
         mac=limits.ANN_ENERGY_PER_MAC * 1e12)


def fan_outs(loihi_net):
    """``{pre layer: (n_neurons,) synapses driven}`` summed over its outgoing connections."""
    found = {}
    for conn in loihi_net.connections:
        fan = np.asarray(conn.fan_out, np.float64)
        found[conn.pre] = found.get(conn.pre, 0) + fan
    return found


def ann_energy(loihi_net):
    """MACs of one ANN forward pass: every synapse of the rewritten network used once."""
    on_chip = {layer.name for layer in loihi_net.on_chip_layers}
    first_input = next(l.name for l in loihi_net.layers.values() if not l.on_chip)
    macs = float(sum(np.sum(c.fan_out) for c in loihi_net.connections
                     if c.pre in on_chip or c.pre == first_input))  # the "off" relay: same MACs
    macs += float(sum(matrix.nnz for _, matrix in loihi_net.readout.terms))  # output layer
    joules = macs * limits.ANN_ENERGY_PER_MAC
    return {"joules_per_inference": joules, "joules_per_inference_45nm": joules, "macs": macs}


def snn_energy_from_counts(loihi_net, spike_counts, input_counts, n_images, n_steps):
    """Energy per inference from per-neuron spike counts summed over ``n_images``."""
    fans = fan_outs(loihi_net)
    synops = 0.0
    for name, counts in spike_counts.items():
        if name in fans:
            synops += float(np.dot(counts, fans[name]))
    for name, counts in input_counts.items():
        if name in fans:
            synops += float(np.dot(counts, fans[name]))
    synops /= n_images
    return _row(loihi_net, synops, n_steps)


def snn_energy_from_rates(loihi_net, rates_hz, n_steps, dt):
    """Energy per inference from mean rates per layer (NengoDL results) and mean fan-outs."""
    fans = fan_outs(loihi_net)
    seconds = n_steps * dt
    synops = 0.0
    for name, fan in fans.items():
        if name in rates_hz:
            synops += float(rates_hz[name]) * seconds * float(np.sum(fan))
    row = _row(loihi_net, synops, n_steps)
    row["input_synops_excluded"] = True
    return row


def _row(loihi_net, synops, n_steps):
    neurons = sum(layer.n_neurons for layer in loihi_net.on_chip_layers)
    updates = float(neurons * n_steps)
    joules = synops * limits.LOIHI_ENERGY_PER_SYNOP + updates * limits.LOIHI_ENERGY_PER_NEURON_UPDATE
    return {"joules_per_inference": joules,
            "joules_per_inference_45nm": synops * limits.ENERGY_PER_AC_45NM,
            "synops": synops, "neuron_updates": updates, "n_steps": int(n_steps)}


def energy_table(rows):
    """Plain-text table of ``{row: {"joules_per_inference": ...}}``."""
    lines = [f"{'':16s} {'J/inference':>12s}  details"]
    for name, row in rows.items():
        details = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items() if k != "joules_per_inference")
        lines.append(f"{name:16s} {row['joules_per_inference']:12.3e}  {details}")
    return "\n".join(lines)
