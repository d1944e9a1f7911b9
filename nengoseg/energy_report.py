"""``ns.energy(snn, x)``: energy per inference of a spiking model beside its ANN.

::

    report = ns.energy(snn, x_test[:8])          # rates measured on the engine
    report.summary()                              # one line per device
    report.rows["snn"]["joules_loihi"]
    ns.energy(chip, x_test[:8]).summary()         # a compiled Loihi model: spikes counted

Counted as the latency report counts them (`nengoseg.latency`, its docstring says
how): the ANN by ``keras_spiking.ModelEnergy`` on the non-spiking devices of
KerasSpiking's device table (CPU, GPU, ARM), the spiking network from the spikes of a
run on ``x`` times the synapses each spike drives on the network's Loihi mapping,
priced on the spiking devices of the same table (Loihi, SpiNNaker, SpiNNaker 2).
On the emulator (a `nengoseg.loihi.chip.LoihiModel`, or ``backend="loihi"``) each
neuron's own spike count is used, elsewhere each layer's mean rate. Dynamic energy
only: no static power, no host I/O.
"""

import dataclasses

import numpy as np

from nengoseg import latency
from nengoseg.errors import ConfigError

DEVICE_NAMES = {"cpu": "CPU", "gpu": "GPU", "arm": "ARM", "loihi": "Loihi",
                "spinnaker": "SpiNNaker", "spinnaker2": "SpiNNaker 2"}


@dataclasses.dataclass
class EnergyReport:
    """Energy per inference: ``rows["ann"]`` and ``rows["snn"]``, each ``{"synops",
    "neuron_updates", "joules_<device>"}``; ``n_steps`` and ``backend`` of the spiking
    run, ``n_inputs`` inputs measured, ``mean_firing_rate_hz``."""

    rows: dict
    n_steps: int
    backend: str
    n_inputs: int
    mean_firing_rate_hz: float

    def ratio(self, snn_device="loihi", ann_device="gpu"):
        """ANN energy on ``ann_device`` over SNN energy on ``snn_device`` (> 1: the SNN
        is cheaper)."""
        return self.rows["ann"][f"joules_{ann_device}"] / self.rows["snn"][f"joules_{snn_device}"]

    def summary(self, print_fn=print):
        """Print (or hand ``print_fn``) the table; returns its text."""
        lines = [
            f"Energy per inference ({self.n_inputs} inputs; SNN: {self.n_steps} steps on the "
            f"{self.backend}, mean rate {self.mean_firing_rate_hz:.1f} Hz; KerasSpiking's "
            "device table, dynamic energy only)",
            f"{'network':<8} {'device':<12} {'energy (mJ)':>12} {'synaptic ops':>14} "
            f"{'neuron updates':>15}",
        ]
        for network, devices in (("ann", latency.ANN_DEVICES), ("snn", latency.SNN_DEVICES)):
            row = self.rows[network]
            for device in devices:
                lines.append(f"{network.upper():<8} {DEVICE_NAMES[device]:<12} "
                             f"{row[f'joules_{device}'] * 1e3:12.4g} {row['synops']:14.4g} "
                             f"{row['neuron_updates']:15.4g}")
        lines.append(f"ANN on GPU / SNN on Loihi: {self.ratio():.3g}x")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def energy(model, x, backend="engine", n_steps=None, batch_size=16, target="sim"):
    """The `EnergyReport` of ``model`` on inputs ``x``.

    ``model``: a `nengoseg.SpikingModel` (run on ``backend``: ``"engine"``,
    ``"nengo-dl"`` or ``"loihi"``) or a compiled `nengoseg.loihi.chip.LoihiModel`.
    ``n_steps``: the run's length (default: the conversion's).
    """
    from nengoseg import backends
    from nengoseg.loihi.chip import LoihiModel

    if isinstance(model, LoihiModel):
        chip, snn, backend = model, model.snn, "loihi"
    else:
        snn = model
        backend = backends.resolve(backend, ("engine", "nengo-dl", "loihi", backends.SNN),
                                   "backend")
        chip = None
        if backend == "loihi":
            from nengoseg.loihi.chip import compile_model

            chip = compile_model(snn, target=target)
    x = snn._inputs(x, "energy")
    if chip is not None:
        result = chip.run(x, n_steps)
        steps = result.n_steps
        snn_row = _counted(chip.loihi_net, result)
    else:
        result = snn.run(x, backend, n_steps, batch_size)
        steps = int(n_steps or snn.settings.n_steps)
        snn_row = latency.network_snn_energy(snn.description, snn.settings,
                                             result.firing_rates_hz, x, steps)
    return EnergyReport(
        rows={"ann": latency.ann_energy(snn.network.keras_model), "snn": snn_row},
        n_steps=int(steps),
        backend=backend + (f" ({chip.target})" if chip is not None else ""),
        n_inputs=len(x),
        mean_firing_rate_hz=_mean_rate(snn.description, result.firing_rates_hz),
    )


def _mean_rate(description, rates_hz):
    """The mean rate over all neurons (each layer weighted by its neurons)."""
    sizes = {layer.name: int(np.prod(layer.shape)) for layer in description.layers
             if layer.neurons is not None and layer.name in rates_hz}
    total = sum(sizes.values())
    return float(sum(rates_hz[n] * k for n, k in sizes.items()) / total) if total else 0.0


def _counted(loihi_net, result):
    """Synaptic operations from the emulator's per-neuron spike counts, priced."""
    from nengoseg.loihi import energy as loihi_energy

    if not result.spike_counts:  # the board reports no per-neuron counts here
        raise ConfigError("energy: the board reports no per-neuron spike counts; compile "
                          "with target='sim' (the emulator) to count them")
    counted = loihi_energy.snn_energy_from_counts(loihi_net, result.spike_counts,
                                                  result.input_counts, result.n_images,
                                                  result.n_steps)
    return latency.priced_snn(counted["synops"], counted["neuron_updates"])
