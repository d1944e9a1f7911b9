"""Figures of a run folder, as PNG files, from results.json and the stages' predictions.

Each figure is two functions: ``<figure>_data`` computes what is plotted from plain
inputs (results entries, saved prediction arrays), and ``<figure>(run_dir)`` reads
the run folder, draws that data and saves ``RUN/figures/<figure>.png`` (or returns
None when the run has nothing to show). Tests check the data, and that the drawn
figure shows it.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nengoseg import evaluate, metrics, predictions  # noqa: E402
from nengoseg.atomic import atomic_path  # noqa: E402
from nengoseg.results import read_results  # noqa: E402

# stage -> label, in the order the pipeline makes them
STAGES = {
    "ann_on_snn_examples": "ANN",
    "converted_snn": "converted SNN",
    "hybrid_snn": "hybrid SNN",
    "loihi": "Loihi emulator",
}
THRESHOLDS = np.round(np.arange(0.1, 0.91, 0.05), 2)


def saved_stages(run_dir):
    """``{stage: saved prediction arrays}`` of the stages of `STAGES` that saved any."""
    found = {stage: predictions.load(run_dir, stage) for stage in STAGES}
    return {stage: saved for stage, saved in found.items() if saved is not None}


# ---------------------------------------------------------------- firing rates


def firing_rates_data(stages):
    """``(layers, [(label, [rate_hz per layer])])`` of the SNN stages with rates, or None.

    ``stages`` is results.json's ``"stages"``; layers are those of the first stage
    with rates, NaN where a later stage has no rate for one.
    """
    rated = [(STAGES[s], stages[s]["firing_rates_hz"]) for s in STAGES
             if s in stages and stages[s].get("firing_rates_hz")]
    if not rated:
        return None
    layers = list(rated[0][1])
    return layers, [(label, [float(rates.get(layer, np.nan)) for layer in layers])
                    for label, rates in rated]


def firing_rates(run_dir):
    """Per-layer firing rates of the SNN stages side by side."""
    data = firing_rates_data(read_results(run_dir)["stages"])
    if data is None:
        return None
    layers, bars = data
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(layers)), 3.5))
    for i, (label, values) in enumerate(bars):
        ax.bar(np.arange(len(layers)) + i * width, values, width, label=label)
    ax.set_xticks(np.arange(len(layers)) + width * (len(bars) - 1) / 2)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("average firing rate (Hz)")
    ax.legend(fontsize=8)
    return save_figure(fig, run_dir, "firing_rates.png")


# ---------------------------------------------------------------- masks and boxes


def masks_data(examples, saved, n_slices=4):
    """``(picks, columns)`` of the masks figure, or None.

    ``examples``: the saved evaluation examples; ``saved``: `saved_stages`. Rows are
    the ``n_slices`` examples with most foreground among those every stage ran on
    (a stage run on a subset, the Loihi emulator, saves its example indices);
    ``columns`` is ``[(title, images)]`` with ``images`` indexed by example: the
    input, the ground truth, and each stage's predicted mask.
    """
    staged = [(STAGES[s], p) for s, p in saved.items() if s in STAGES]
    if examples is None or not staged:
        return None
    truth = evaluate.true_masks(examples["y"])
    shown = np.arange(len(truth))
    for _, p in staged:
        if "indices" in p:
            shown = np.intersect1d(shown, p["indices"])
    foreground = truth[shown].reshape(len(shown), -1).sum(axis=1)
    picks = shown[np.argsort(foreground, kind="stable")[::-1][:n_slices]]
    columns = [("input", examples["x"][..., 0]), ("ground truth", truth)]
    columns += [(label, _full(evaluate.predicted_masks(p["outputs"]), p, len(truth)))
                for label, p in staged]
    return picks, columns


def masks(run_dir, n_slices=4):
    """Input, ground truth and each stage's mask for the slices with most foreground."""
    examples = predictions.load(run_dir, predictions.EXAMPLES)
    saved = saved_stages(run_dir)
    if examples is None or not saved:
        return None
    if examples["y"].ndim == 2:  # box regression: (x1, y1, x2, y2) fractions of the image
        return boxes(run_dir, examples, saved, n_slices)
    denoising = examples["y"].dtype.kind == "f"  # targets are noise maps, not labels
    picks, columns = (denoised_data if denoising else masks_data)(examples, saved, n_slices)
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(1.6 * len(columns), 1.8 * len(picks)),
                             squeeze=False)
    for row, index in enumerate(picks):
        for col, (title, images) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(images[index], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
        axes[row, 0].set_ylabel(f"{examples['groups'][index]}\nslice {examples['slice_index'][index]}",
                                fontsize=6)
    return save_figure(fig, run_dir, "denoised.png" if denoising else "masks.png")


def denoised_data(examples, saved, n_tiles=4):
    """``(picks, columns)`` of the denoising figure: tiles spread over the examples; the
    noisy input, the clean image and each stage's ``noisy - predicted noise``."""
    x = examples["x"][..., 0]
    picks = np.linspace(0, len(x) - 1, min(n_tiles, len(x))).astype(int)
    columns = [("noisy input", x), ("clean", x - examples["y"][..., 0])]
    columns += [(STAGES[s], np.clip(x - _full(p["outputs"][..., 0], p, len(x)), 0, 1))
                for s, p in saved.items() if s in STAGES]
    return picks, columns


def boxes_data(examples, saved, n_images=4):
    """``(picks, drawn)`` of the boxes figure: the example indices shown (spread over
    the examples) and ``[(label, {example index: (x1, y1, x2, y2)})]``, the ground truth
    first, then each stage (a stage run on a subset saved its indices)."""
    images = examples["x"]
    picks = np.linspace(0, len(images) - 1, min(n_images, len(images))).astype(int)
    drawn = [("ground truth", dict(enumerate(examples["y"])))] + [
        (STAGES[s], dict(zip(p["indices"] if "indices" in p else range(len(p["outputs"])),
                             p["outputs"])))
        for s, p in saved.items() if s in STAGES]
    return picks, drawn


def boxes(run_dir, examples, saved, n_images=4):
    """Images with the true box and each stage's predicted box (box-regression runs)."""
    images = examples["x"]
    picks, drawn = boxes_data(examples, saved, n_images)
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 2.2), squeeze=False)
    height, width = images.shape[1:3]
    for col, index in enumerate(picks):
        ax = axes[0, col]
        image = images[index]
        ax.imshow(np.clip(image, 0, 1) if image.shape[-1] == 3 else image[..., 0], cmap="gray")
        for k, (label, by_index) in enumerate(drawn):
            if index not in by_index:
                continue
            x1, y1, x2, y2 = by_index[index]
            ax.add_patch(plt.Rectangle((x1 * width - 0.5, y1 * height - 0.5),
                                       (x2 - x1) * width, (y2 - y1) * height, fill=False,
                                       color=f"C{k}", lw=1.2, label=label))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(examples["groups"][index]), fontsize=7)
    axes[0, -1].legend(fontsize=6, loc="lower right")
    return save_figure(fig, run_dir, "boxes.png")


def _full(masks, saved, n):
    """A stage's masks at the positions of the evaluation examples (blank where it did not run)."""
    if "indices" not in saved:
        return masks
    full = np.zeros((n,) + masks.shape[1:], masks.dtype)
    full[saved["indices"]] = masks
    return full


# ---------------------------------------------------------------- Dice curves


def dice_vs_threshold_data(examples, saved, thresholds=THRESHOLDS):
    """``[(label, thresholds, mean 2D Dice at each)]`` of the one-channel stages in ``saved``
    (`saved_stages`), scored on the examples each ran on."""
    if examples is None or examples["y"].dtype.kind == "f":  # no masks: denoising
        return []
    truth = evaluate.true_masks(examples["y"])
    roi = examples.get("roi")  # DRIVE's field of view: scores count only inside it
    curves = []
    for stage, p in saved.items():
        if stage not in STAGES or p["outputs"].shape[-1] != 1:
            continue
        rows = p["indices"] if "indices" in p else slice(None)
        where = None if roi is None else roi[rows]
        dice = [float(np.mean(metrics.dice_per_slice(evaluate.predicted_masks(p["outputs"], t),
                                                     truth[rows], where=where)))
                for t in thresholds]
        curves.append((STAGES[stage], np.asarray(thresholds), np.asarray(dice)))
    return curves


def dice_vs_threshold(run_dir):
    """Mean 2D Dice of each stage as the output threshold varies (three-stage paper, Table 2)."""
    curves = dice_vs_threshold_data(predictions.load(run_dir, predictions.EXAMPLES),
                                    saved_stages(run_dir))
    return _curves(run_dir, curves, "output threshold", "dice_vs_threshold.png")


def dice_vs_steps_data(saved):
    """``[(label, steps, mean 2D Dice after that many steps)]`` of the stages that saved it."""
    return [(STAGES[s], np.asarray(p["steps"]), np.asarray(p["dice_2d_by_steps"]))
            for s, p in saved.items() if s in STAGES and "steps" in p]


def dice_vs_T(run_dir, curves, anns=()):
    """``RUN/figures/dice_vs_T.png`` (`nengoseg.latency`): 3D Dice against the number of
    steps, ``[(network, steps, dice)]``, each ANN's Dice ``[(label, dice)]`` dashed across."""
    return _curves(run_dir, curves, "time steps T", "dice_vs_T.png", "mean Dice 3D",
                   list(anns), log2_x=True)


def dice_vs_steps(run_dir):
    """Mean 2D Dice against the number of simulation steps, for stages that saved it."""
    return _curves(run_dir, dice_vs_steps_data(saved_stages(run_dir)), "simulation steps",
                   "dice_vs_steps.png")


def _curves(run_dir, curves, xlabel, name, ylabel="mean Dice 2D", references=(),
            log2_x=False):
    """Draw ``[(label, x, y)]`` as lines, with each of ``references`` ``[(label, y)]``
    dashed across."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, x, y in curves:
        ax.plot(x, y, marker=".", label=label)
    styles = ["--", ":", "-."]
    for i, (label, y) in enumerate(references):
        ax.axhline(y, color="k", linestyle=styles[i % len(styles)], label=label)
    if log2_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return save_figure(fig, run_dir, name)


def save_figure(fig, run_dir, name):
    """Save ``fig`` as ``RUN/figures/<name>`` (atomically), close it, return the path."""
    path = Path(run_dir) / "figures" / name
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def all_figures(run_dir):
    made = [f(run_dir) for f in (firing_rates, masks, dice_vs_threshold, dice_vs_steps)]
    return [p for p in made if p is not None]
