"""report.md: the papers' table from results.json, with stage timings and figures.

Columns: model, Dice 2D, Dice 3D (mean IoU for box regression; with ``evaluate.table:
pixel``, the Spiking-UNet paper's F1, JS and ACC per image or subject), average firing
rate and the energy estimate per inference that the Loihi stage computes
(``results["stages"]["loihi"]["energy"]``, see `nengoseg.loihi`).
"""

from pathlib import Path

from nengoseg.atomic import write_text
from nengoseg.results import read_results

# stage name in results.json -> row label, in table order
ROWS = {
    "ann": "pure ANN (all test examples)",
    "ann_on_snn_examples": "pure ANN",
    "converted_snn": "converted SNN",
    "hybrid_snn": "hybrid SNN (co-trained)",
    "loihi": "Loihi",
    "evaluate_ann": "ANN (nengoseg evaluate)",
    "evaluate_snn": "SNN (nengoseg evaluate)",
}
# the co-trained row's label for the fine-tuning methods other than hybrid
METHOD_ROWS = {
    "bptt": "BPTT SNN (fine-tuned through time)",
    "spiking_flow": "spiking-flow SNN (fine-tuned)",
}
# row -> key of the Loihi stage's energy estimates
ENERGY_KEYS = {
    "ann": "ann",
    "ann_on_snn_examples": "ann",
    "converted_snn": "converted_snn",
    "hybrid_snn": "hybrid_snn",
    "loihi": "loihi",
}


def _scores(payload):
    # the ANN stage keeps its scores per split; the others under "scores"
    return payload.get("scores") or payload.get("test")


def _rate(payload):
    rate = payload.get("mean_firing_rate_hz")
    return "N/A" if rate is None else f"{rate:.1f} Hz"


def _joules(value):
    for unit, factor in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if value >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.3g} J"


def _energy(results, name, key="joules_per_inference"):
    estimates = results["stages"].get("loihi", {}).get("energy") or {}
    estimate = estimates.get(ENERGY_KEYS.get(name, ""))
    if not estimate or estimate.get(key) is None:
        return "N/A"
    return _joules(estimate[key])


def _label(name, payload):
    if name == "loihi":
        target = payload.get("target", "sim")
        return f"Loihi {'emulator' if target == 'sim' else 'board'} (target {target!r})"
    if name == "hybrid_snn" and payload.get("cotrain_method") in METHOD_ROWS:
        return METHOD_ROWS[payload["cotrain_method"]]
    return ROWS[name]


# evaluate.table: "pixel" -> (column, score key prefix): each the mean ± std per subject
PIXEL_COLUMNS = (("F1", "dice_3d"), ("JS", "jaccard_3d"), ("ACC", "accuracy_3d"))


def table(results, columns="dice"):
    """The papers' table of every stage in ``results`` (markdown); ``columns``: "dice",
    or "pixel" for F1, JS and ACC (`PIXEL_COLUMNS`)."""
    names = [name for name in ROWS if name in results["stages"] and _scores(results["stages"][name])]
    if not names:
        return "(no results yet)\n"
    first = _scores(results["stages"][names[0]])
    boxes = "iou_mean" in first
    sigmas = list(first.get("psnr_by_sigma") or ["all"]) if "psnr_mean" in first else None
    pixel = columns == "pixel" and not boxes and sigmas is None
    metric = (["mean IoU"] if boxes else [c for c, _ in PIXEL_COLUMNS] if pixel
              else [f"PSNR σ{s} (dB)" for s in sigmas] + [f"SSIM σ{s}" for s in sigmas]
              if sigmas else ["Dice 2D", "Dice 3D"])
    head = ["model", *metric, "avg. firing rate", "energy / inference (Loihi)",
            "energy (45 nm)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

    def row(label, s, rate, name):
        if boxes:
            cells = [f"{s['iou_mean']:.4f} ± {s['iou_std']:.4f}"]
        elif sigmas:
            cells = [f"{s['psnr_by_sigma'].get(k, s['psnr_mean']):.2f}" for k in sigmas] + [
                f"{s['ssim_by_sigma'].get(k, s['ssim_mean']):.4f}" for k in sigmas]
        elif pixel:
            cells = [f"{s[f'{key}_mean']:.4f} ± {s[f'{key}_std']:.4f}" if f"{key}_mean" in s
                     else "N/A" for _, key in PIXEL_COLUMNS]
        else:
            cells = [
                f"{s['dice_2d_mean']:.4f} ± {s['dice_2d_std']:.4f}",
                f"{s['dice_3d_mean']:.4f} ± {s['dice_3d_std']:.4f}",
            ]
        cells += [rate, _energy(results, name), _energy(results, name, "joules_per_inference_45nm")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for name in names:
        payload = results["stages"][name]
        row(_label(name, payload), _scores(payload), _rate(payload), name)
        if name == "loihi" and payload.get("nengo_dl_scores"):
            # the same network in NengoDL on Loihi's examples (Loihi runs a subset)
            rates = payload.get("nengo_dl_firing_rates_hz") or {}
            sizes = payload.get("neurons_per_layer") or {}
            mean = (sum(rates[k] * sizes[k] for k in sizes if k in rates) / sum(sizes.values())
                    if rates and sizes else None)
            row("same SNN in NengoDL (Loihi's examples)", payload["nengo_dl_scores"],
                "N/A" if mean is None else f"{mean:.1f} Hz", "")
    return "\n".join(lines) + "\n"


def _notes(results):
    """Where each row's numbers come from (examples, steps, engine)."""
    stages = results["stages"]
    notes = []
    if "ann" in stages:
        s = _scores(stages["ann"])
        count = s.get("n_subjects") or s.get("n_images")
        notes.append(f"pure ANN (all test examples): the whole test split ({count} subjects or images).")
    for name in ("converted_snn", "hybrid_snn"):
        if name in stages:
            payload = stages[name]
            settings = payload.get("settings", {})
            engine = payload.get("engine")
            notes.append(
                f"{ROWS[name]}: {settings.get('n_steps', '?')} steps of {settings.get('dt', 0.001)} s, "
                f"synapse {settings.get('synapse')}"
                + (f", simulated by {engine}" if engine else "")
                + "; scored on the evaluation examples, like 'pure ANN'."
            )
    if "loihi" in stages:
        payload = stages["loihi"]
        notes.append(
            f"Loihi: target {payload.get('target')!r}, {payload.get('n_images')} examples, "
            f"{payload.get('n_steps')} steps; agreement with the NengoDL SNN on the same examples "
            f"(Dice between the two masks): {payload.get('agreement_dice', float('nan')):.4f}."
        )
        if payload.get("energy_method"):
            notes.append(f"Energy: {payload['energy_method']}")
    return notes


def _columns(run_dir):
    """``evaluate.table`` of the run's config.yaml ("dice" where it has none)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return "dice"
    from nengoseg.config import load_config

    return load_config(path)["evaluate"]["table"]


def write_report(run_dir, timings=None, figures=None):
    """Write RUN/report.md from RUN/results.json (plus stage timings and figures); return the table."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    text = table(results, _columns(run_dir))
    parts = [f"# {run_dir.name}\n", text]
    notes = _notes(results)
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes) + "\n")
    if timings:
        rows = ["| stage | wall time |", "| --- | --- |"]
        rows += [f"| {name} | {seconds:.0f} s |" for name, seconds in timings.items()]
        parts.append("## Time per stage\n\n" + "\n".join(rows) + "\n")
    if figures:
        links = [f"![{Path(f).stem}]({Path(f).relative_to(run_dir).as_posix()})" for f in figures]
        parts.append("## Figures\n\n" + "\n\n".join(links) + "\n")
    write_text(run_dir / "report.md", "\n".join(parts))
    return text
