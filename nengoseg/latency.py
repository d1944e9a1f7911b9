"""Accuracy against time steps, with the energy it costs: the latency report.

``nengoseg latency`` runs each spiking network of a run folder (the converted SNN,
the co-trained one) for T steps, T in ``--steps`` (default 4, 8, 16, 32, 64, 100),
each read out over *all* its T steps (the three-stage paper's early-stop
conversion: the output layer accumulated over the run, then the sigmoid), on the
evaluation examples of the config (``evaluate.split``, ``evaluate.max_subjects``),
beside the ANN on the same examples. Each row gives the Dice scores (3D per subject
and 2D per slice, mean ± std; for denoising PSNR and SSIM), the mean firing rate, the
synaptic operations and neuron updates per inference, and the energy per inference on
each device of KerasSpiking's device table (`ENERGY_DEVICES`).

How the energy is counted
-------------------------
- ANN: ``keras_spiking.ModelEnergy`` reads the Keras model itself (one synaptic
  operation per multiply-accumulate, one neuron update per activation) and prices it
  on the non-spiking devices (CPU, GPU, ARM). It has no rule for AveragePooling2D
  and Concatenate layers and counts them as free (a few per cent of the work).
- SNN: synaptic operations = the spikes each layer emits (its measured firing rate
  x the steps) x the synapses each of its neurons drives, counted on the exact
  connection matrices of the network's Loihi mapping (`nengoseg.loihi.energy`; for a
  kind that cannot go on chip, such as ``if_subtract``, the mapping of the same
  weights with Loihi's neurons); neuron updates = neurons x steps. Priced on the
  spiking devices of the same table (Loihi, SpiNNaker, SpiNNaker 2) with
  KerasSpiking's per-operation figures, as its ModelEnergy prices a spiking model.
  The input counts as spikes at ``|pixel| x input_rate_hz`` (what the Loihi input
  coder sends) times the synapses they drive. Dynamic energy only: no static power,
  no host I/O.

Writes ``RUN/latency.json``, ``RUN/latency.md`` and ``RUN/figures/dice_vs_T.png``.
``nengoseg latency-merge`` (`merge_reports`) puts the reports of several runs scored on
the same held-out subjects (e.g. the three-stage and the QCFS configs) into one table
and one figure.
"""

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np

from nengoseg import convert as nsconvert
from nengoseg import backends, evaluate, rundir
from nengoseg.atomic import write_json, write_text
from nengoseg.convert.describe import describe_conversion
from nengoseg.errors import DataError

DEFAULT_STEPS = (4, 8, 16, 32, 64, 100)
# KerasSpiking's device table (keras_spiking.ModelEnergy.devices): which devices price
# the ANN (non-spiking) and the SNN (spiking)
ANN_DEVICES = ("cpu", "gpu", "arm")
SNN_DEVICES = ("loihi", "spinnaker", "spinnaker2")
ENERGY_DEVICES = ANN_DEVICES + SNN_DEVICES
STAGE_LABELS = {"convert": "converted", "cotrain": "co-trained"}


def device_table():
    """``{device: {"energy_per_synop": J, "energy_per_neuron": J, "spiking": bool}}``."""
    from keras_spiking import ModelEnergy

    return {name: dict(ModelEnergy.devices[name]) for name in ENERGY_DEVICES}


def ann_energy(keras_model):
    """ANN energy per inference on each non-spiking device, by ``keras_spiking.ModelEnergy``."""
    from keras_spiking import ModelEnergy

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot compute stats for layer")
        energy = ModelEnergy(keras_model)
    synops = float(sum(stats["connections"] for stats in energy.layer_stats.values()))
    neurons = float(sum(stats["neurons"] for stats in energy.layer_stats.values()))
    row = {"synops": synops, "neuron_updates": neurons}
    for device in ANN_DEVICES:
        row[f"joules_{device}"] = float(energy.total_energy(device))
    return row


def snn_energy(fan_outs, rates_hz, n_neurons, n_steps, dt):
    """SNN energy per inference on each spiking device, from per-layer rates.

    ``fan_outs``: ``{layer: total synapses driven by the layer's neurons}``;
    ``rates_hz``: ``{layer: mean firing rate}``; ``n_neurons``: neurons in all.
    """
    seconds = n_steps * dt
    synops = float(sum(rates_hz.get(name, 0.0) * seconds * fan for name, fan in fan_outs.items()))
    return priced_snn(synops, float(n_neurons * n_steps))


def priced_snn(synops, updates):
    """``{"synops", "neuron_updates", "joules_<device>"}`` on each spiking device."""
    row = {"synops": float(synops), "neuron_updates": float(updates)}
    for device, spec in device_table().items():
        if spec["spiking"]:
            row[f"joules_{device}"] = (synops * spec["energy_per_synop"]
                                       + updates * spec["energy_per_neuron"])
    return row


def network_snn_energy(description, settings, rates_hz, x, n_steps, fans=None):
    """`snn_energy` of the network ``description`` run for ``n_steps`` on inputs ``x`` with
    per-layer rates ``rates_hz``: its Loihi fan-outs (``fans``: `fan_outs` of it, when
    already computed), its neurons, and the input as the Loihi input coder sends it
    (spikes at ``|pixel| x input_rate_hz``)."""
    fans, input_name = fan_outs(description) if fans is None else fans
    input_rate = float(np.mean(np.abs(x))) * settings.input_rate_hz
    n_neurons = sum(int(np.prod(layer.shape)) for layer in description.layers
                    if layer.neurons is not None)
    return snn_energy(fans, {**rates_hz, input_name: input_rate}, n_neurons, n_steps,
                      settings.dt)


def fan_outs(description):
    """``({layer: synapses its neurons drive}, input layer name)`` on the Loihi mapping of
    ``description`` (the input layer's entry: the synapses its input spikes drive)."""
    from nengoseg.loihi import energy, rewrite

    # the connectivity does not depend on the neuron kind: map the same weights with
    # Loihi's neurons when the network's own cannot go on chip
    run = dataclasses.replace(description.run, neuron_model="loihi")
    loihi_net = rewrite.from_description(dataclasses.replace(description, run=run))
    first_input = next(layer.name for layer in loihi_net.layers.values() if not layer.on_chip)
    return {name: float(np.sum(fan)) for name, fan in energy.fan_outs(loihi_net).items()}, \
        first_input


def latency_report(cfg, run_dir, data, steps=DEFAULT_STEPS, verbose=True):
    """Run the report (see the module docstring); returns the rows written to latency.json."""
    from nengoseg.snn_stage import evaluation_part

    part = evaluation_part(cfg, data)
    task = data.task
    stages = [name for name in STAGE_LABELS if rundir.finished(run_dir, name)]
    if not stages:
        from nengoseg.snn_stage import latest_conversion

        latest_conversion(run_dir)  # raises the DataError naming what to run first
    rows = []
    first = nsconvert.load_conversion(rundir.stage_dir(run_dir, stages[0]))
    ann_net = nsconvert.convert(first[0], dataclasses.replace(first[1], spiking=False))
    ann_scores = evaluate.score(task, nsconvert.run_ann(ann_net, part.x).outputs, part,
                                first[1].threshold)
    rows.append({"network": "ANN", "n_steps": None, "scores": ann_scores,
                 "energy": ann_energy(ann_net.keras_model)})
    minibatch = cfg["evaluate"]["minibatch_size"]
    simulator = cfg["evaluate"]["engine"]
    longest = max(int(n) for n in steps)
    for stage in stages:
        keras_model, settings = nsconvert.load_conversion(rundir.stage_dir(run_dir, stage))
        label = STAGE_LABELS[stage]
        if stage == "cotrain":
            label += f" ({cfg['cotrain']['method']})"
        description = describe_conversion(keras_model, settings)
        depth = description.neuron_depth()
        fans = fan_outs(description)
        # one conversion read out over all its steps; a run of T steps reads all T
        # (`ConversionSettings.window` clips readout_steps to the run)
        converted = nsconvert.convert(keras_model, dataclasses.replace(
            settings, n_steps=longest, readout_steps=longest))
        for n_steps in steps:
            start = time.perf_counter()
            result = backends.simulate(simulator, converted, part.x, minibatch, int(n_steps),
                                       verbose=False)
            scored = evaluate.run_scores(task, result, part, converted)
            row = {"network": label, "n_steps": int(n_steps), "neuron_depth": depth,
                   "scores": scored["scores"],
                   "mean_firing_rate_hz": scored.get("mean_firing_rate_hz", 0.0),
                   "energy": network_snn_energy(description, settings, result.firing_rates_hz,
                                                part.x, n_steps, fans),
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            if verbose:
                print(f"latency: {label}, T = {n_steps}: {_summary(row)}", flush=True)
    subjects = sorted({str(g) for g in part.groups.tolist()})
    payload = {"split": cfg["evaluate"]["split"], "n_subjects": len(subjects),
               "n_slices": int(len(part)), "subjects": subjects,
               "simulator": simulator, "devices": device_table(),
               "rows": rows}
    write_json(run_dir / "latency.json", payload)
    write_text(run_dir / "latency.md", latency_table(payload) + "\n")
    dice_vs_T(run_dir, rows)
    return payload


def merge_reports(run_dirs, out_dir):
    """One latency report from the ``RUN/latency.json`` of each of ``run_dirs``.

    The rows keep their figures and are labelled ``"<run folder>: <network>"`` (each
    run keeps its own ANN row). The runs must have scored the same held-out examples
    (split, subjects and slices), else DataError naming the run that differs. Writes
    ``out_dir/latency.{json,md}`` and ``out_dir/figures/dice_vs_T.png``; returns the
    payload.
    """
    reports = []
    for run_dir in map(Path, run_dirs):
        path = run_dir / "latency.json"
        if not path.is_file():
            raise DataError(f"{path} does not exist; run 'nengoseg latency --config CONFIG "
                            f"--run-dir {run_dir}' first")
        reports.append((run_dir.name, json.loads(path.read_text())))
    (first_name, first), rows = reports[0], []
    for name, report in reports:
        for key in ("split", "n_subjects", "n_slices", "subjects"):
            if key in first and key in report and report[key] != first[key]:
                raise DataError(
                    f"run '{name}' scored {key}={report[key]!r} but run '{first_name}' "
                    f"{first[key]!r}; a merged latency table needs the same held-out examples "
                    "(the same data section and evaluate.max_subjects)")
        rows += [{**row, "network": f"{name}: {row['network']}"} for row in report["rows"]]
    payload = {**first, "runs": [str(d) for d in run_dirs], "rows": rows}
    out_dir = Path(out_dir)
    write_json(out_dir / "latency.json", payload)
    write_text(out_dir / "latency.md", latency_table(payload) + "\n")
    dice_vs_T(out_dir, rows)
    return payload


def _summary(row):
    scores = row["scores"]
    if "dice_3d_mean" in scores:
        return (f"Dice 3D {scores['dice_3d_mean']:.3f} ± {scores['dice_3d_std']:.3f}, "
                f"{row.get('mean_firing_rate_hz', 0):.1f} Hz, "
                f"{row['energy'].get('joules_loihi', 0) * 1e3:.3f} mJ on Loihi")
    return evaluate.summary_line("", scores)


# the two scores of each task's table: (column, score key); means ± std
SCORE_COLUMNS = {"psnr_mean": (("PSNR (dB)", "psnr"), ("SSIM", "ssim")),
                 "dice_3d_mean": (("Dice 3D", "dice_3d"), ("Dice 2D", "dice_2d"))}


def _columns(rows):
    """The score columns of the rows' task (denoising: PSNR, SSIM; else Dice 3D, 2D)."""
    for key, columns in SCORE_COLUMNS.items():
        if any(key in row["scores"] for row in rows):
            return key, columns
    return "dice_3d_mean", SCORE_COLUMNS["dice_3d_mean"]


def latency_table(payload):
    """Markdown table of a latency report (`latency_report`'s payload)."""
    present, columns = _columns(payload["rows"])
    head = ("| network | T | " + " | ".join(name for name, _ in columns)
            + " | mean rate (Hz) | synops / inference | energy / inference |")
    lines = [f"{payload['n_subjects']} subjects ({payload['n_slices']} slices) of the "
             f"'{payload['split']}' split; SNNs simulated by the {payload['simulator']}, "
             "read out over all T steps; energy per KerasSpiking's device table "
             "(ANN: GPU / CPU; SNN: Loihi / SpiNNaker 2)." + _depth_note(payload["rows"]),
             "", head,
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in payload["rows"]:
        s, e = row["scores"], row["energy"]
        if present not in s:
            continue
        if row["n_steps"] is None:
            energy = (f"GPU {e['joules_gpu'] * 1e3:.3g} mJ, CPU {e['joules_cpu'] * 1e3:.3g} mJ")
            steps, rate = "-", "-"
        else:
            energy = (f"Loihi {e['joules_loihi'] * 1e3:.3g} mJ, SpiNNaker 2 "
                      f"{e['joules_spinnaker2'] * 1e3:.3g} mJ")
            steps, rate = str(row["n_steps"]), f"{row['mean_firing_rate_hz']:.1f}"
        cells = " | ".join(f"{s[f'{key}_mean']:.3f} ± {s[f'{key}_std']:.3f}"
                           for _, key in columns)
        lines.append(f"| {row['network']} | {steps} | {cells} | {rate} | {e['synops']:.3g} | "
                     f"{energy} |")
    return "\n".join(lines)


def _depth_note(rows):
    depths = sorted({row["neuron_depth"] for row in rows if row.get("neuron_depth")})
    if not depths:
        return ""
    return (f" Neuron layers on the longest input-output path: {', '.join(map(str, depths))} "
            "(on Loihi each delays spikes by a step, so a run needs more steps than that "
            "before its output feels the whole network).")


def dice_vs_T(run_dir, rows):
    """``RUN/figures/dice_vs_T.png``: 3D Dice against T per network, the ANN dashed."""
    from nengoseg import figures

    curves, anns = {}, []
    for row in rows:
        if "dice_3d_mean" not in row["scores"]:
            continue
        if row["n_steps"] is None:
            anns.append((row["network"], row["scores"]["dice_3d_mean"]))
        else:
            curves.setdefault(row["network"], []).append(
                (row["n_steps"], row["scores"]["dice_3d_mean"]))
    return figures.dice_vs_T(run_dir, [(label, *zip(*points)) for label, points in
                                       curves.items()], anns)
