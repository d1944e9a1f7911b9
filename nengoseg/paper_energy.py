"""The Spiking-UNet paper's energy comparison (its Table 5) for a finished run.

The paper (section 4.4.3, eq. 13, after its reference [44]) counts the operations of
one inference and prices them on one 45 nm process (Horowitz 2014):

- U-Net (ANN): FLOPs = its multiply-accumulates (MACs), at 4.6 pJ each.
- Spiking-UNet: FLOPs = the spikes of the whole network + the first layer's MACs (the
  analog input is a current, so the first layer multiplies); spikes at 0.9 pJ (an
  accumulate), the first layer's MACs at 4.6 pJ. The input is presented at each of
  the T steps, so the first layer's MACs are counted T times here (hardware that
  noticed the constant input could do them once; the difference is stated in the
  table's rows). A multi-threshold neuron's spikes are the thresholds it passes (its
  output spikes, eq. 4-6), as the run's firing rates count them.

Counting spikes rather than the synapses they drive undercounts an SNN's work: every
spike is an accumulate at each of its targets. The table therefore gives beside it the
synaptic operations (spikes x fan-out on the network's exact connection matrices,
`nengoseg.latency.fan_outs`) at the same 0.9 pJ, and the device figures of
KerasSpiking's table that the rest of nengoseg reports (ANN on a GPU, SNN on Loihi:
synaptic operations and neuron updates). Spikes are the run's measured rates on its
test split (``results.json``) x T; dynamic energy only.
"""

import dataclasses

from nengoseg import latency, rundir
from nengoseg.errors import DataError
from nengoseg.loihi import limits

STAGES = {"converted_snn": "Spiking-UNet, converted", "hybrid_snn": "Spiking-UNet, fine-tuned"}


@dataclasses.dataclass
class Row:
    model: str
    metric: float
    flops: float  # the paper's eq. 13 (ANN: MACs)
    joules_paper: float  # the paper's pricing of those FLOPs
    synops: float  # ANN: MACs; SNN: spikes x fan-out
    joules_synops_45nm: float  # SNN: synaptic ops at 0.9 pJ + first layer MACs at 4.6 pJ
    joules_device: float  # KerasSpiking: ANN on a GPU, SNN on Loihi
    device: str


def primary_metric(scores):
    """``(name, value)`` of what a run's table leads with: PSNR, box IoU, or the per-image
    F1 / per-subject Dice 3D."""
    if "psnr_mean" in scores:
        return "PSNR (dB)", scores["psnr_mean"]
    if "iou_mean" in scores:
        return "mean IoU", scores["iou_mean"]
    return "F1 / Dice 3D", scores["dice_3d_mean"]


def first_layer_macs(keras_model):
    """MACs of the first layer that has weights (KerasSpiking's ModelEnergy count)."""
    import warnings

    from keras_spiking import ModelEnergy

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot compute stats for layer")
        stats = ModelEnergy(keras_model).layer_stats
    for layer in keras_model.layers:
        if stats.get(layer, {}).get("connections", 0) > 0:
            return float(stats[layer]["connections"])
    raise DataError(f"{keras_model.name}: no layer with weights")


def table5(run_dir):
    """``{"metric", "rows": [Row, ...], "n_steps"}`` for the ANN and each spiking stage of
    the run that recorded firing rates."""
    from nengoseg import spiking_model
    from nengoseg.snn_stage import latest_conversion, load_keras

    stages = rundir.read_results(run_dir)["stages"]
    if "ann" not in stages:
        raise DataError(f"{run_dir}: no ANN results; run `nengoseg run` first")
    keras_model = load_keras(rundir.model_path(run_dir))
    ann = latency.ann_energy(keras_model)
    name, ann_metric = primary_metric(stages["ann"]["test"])
    rows = [Row("U-Net (ANN)", ann_metric, ann["synops"],
                ann["synops"] * limits.ANN_ENERGY_PER_MAC, ann["synops"],
                ann["synops"] * limits.ANN_ENERGY_PER_MAC, ann["joules_gpu"], "GPU")]
    snn = spiking_model.load(latest_conversion(run_dir))
    fans, _ = latency.fan_outs(snn.description)
    first = first_layer_macs(keras_model)
    for stage, label in STAGES.items():
        payload = stages.get(stage) or {}
        rates, sizes = payload.get("firing_rates_hz"), payload.get("neurons_per_layer")
        if not rates or not sizes:
            continue
        settings = payload["settings"]
        seconds = settings["n_steps"] * settings["dt"]
        spikes = sum(rates[k] * seconds * sizes[k] for k in sizes if k in rates)
        synops = sum(rates[k] * seconds * fans[k] for k in fans if k in rates)
        input_macs = first * settings["n_steps"]
        loihi = latency.priced_snn(synops, float(sum(sizes.values()) * settings["n_steps"]))
        rows.append(Row(
            label, primary_metric(payload["scores"])[1], spikes + input_macs,
            spikes * limits.ENERGY_PER_AC_45NM + input_macs * limits.ANN_ENERGY_PER_MAC,
            synops,
            synops * limits.ENERGY_PER_AC_45NM + input_macs * limits.ANN_ENERGY_PER_MAC,
            loihi["joules_loihi"], "Loihi"))
    steps = next((stages[s]["settings"]["n_steps"] for s in STAGES if s in stages), None)
    return {"metric": name, "rows": rows, "n_steps": steps, "first_layer_macs": first}


def markdown(table):
    """The table as markdown, the paper's columns first."""
    head = ["model", table["metric"], "FLOPs (paper, eq. 13)", "energy (J, paper)",
            "synaptic ops", "energy (J, synaptic ops at 45 nm)", "energy (J, device)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in table["rows"]:
        lines.append(f"| {row.model} | {row.metric:.4g} | {row.flops:.3e} | "
                     f"{row.joules_paper:.3e} | {row.synops:.3e} | "
                     f"{row.joules_synops_45nm:.3e} | {row.joules_device:.3e} ({row.device}) |")
    lines.append("")
    lines.append(
        f"T = {table['n_steps']}. Paper's method: ANN MACs x 4.6 pJ; SNN spikes x 0.9 pJ + "
        f"first-layer MACs ({table['first_layer_macs']:.3e} per step, counted at each "
        "step) x 4.6 pJ. Synaptic ops: spikes x fan-out (what an SNN accumulates), same "
        "prices. Device: KerasSpiking's table (ANN on a GPU; SNN on Loihi, synaptic ops "
        "and neuron updates). Dynamic energy only.")
    return "\n".join(lines) + "\n"
