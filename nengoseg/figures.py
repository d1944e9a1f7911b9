"""Figures of a run folder, as PNG files, from results.json and RUN/predictions/."""

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


def firing_rates(run_dir):
    """Per-layer firing rates of the SNN stages side by side."""
    stages = read_results(run_dir)["stages"]
    rated = [(STAGES[s], stages[s]["firing_rates_hz"]) for s in STAGES
             if s in stages and stages[s].get("firing_rates_hz")]
    if not rated:
        return None
    layers = list(rated[0][1])
    width = 0.8 / len(rated)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(layers)), 3.5))
    for i, (label, rates) in enumerate(rated):
        values = [rates.get(layer, np.nan) for layer in layers]
        ax.bar(np.arange(len(layers)) + i * width, values, width, label=label)
    ax.set_xticks(np.arange(len(layers)) + width * (len(rated) - 1) / 2)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("average firing rate (Hz)")
    ax.legend(fontsize=8)
    return _save(fig, run_dir, "firing_rates.png")


def masks(run_dir, n_slices=4):
    """Input, ground truth and each stage's mask for the slices with most foreground."""
    examples = predictions.load(run_dir, predictions.EXAMPLES)
    staged = [(label, predictions.load(run_dir, s)) for s, label in STAGES.items()]
    staged = [(label, p) for label, p in staged if p is not None]
    if examples is None or not staged:
        return None
    if examples["y"].ndim == 2:  # box regression: (x1, y1, x2, y2) fractions of the image
        return boxes(run_dir, examples, staged, n_slices)
    truth = evaluate.true_masks(examples["y"])
    # a stage run on a subset (the Loihi emulator) saves the example indices it ran
    shown = np.arange(len(truth))
    for _, p in staged:
        if "indices" in p:
            shown = np.intersect1d(shown, p["indices"])
    foreground = truth[shown].reshape(len(shown), -1).sum(axis=1)
    picks = shown[np.argsort(foreground)[::-1][:n_slices]]
    columns = [("input", examples["x"][..., 0], "gray"), ("ground truth", truth, "gray")]
    columns += [(label, _full(evaluate.predicted_masks(p["outputs"]), p, len(truth)), "gray")
                for label, p in staged]
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(1.6 * len(columns), 1.8 * len(picks)),
                             squeeze=False)
    for row, index in enumerate(picks):
        for col, (title, images, cmap) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(images[index], cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
        axes[row, 0].set_ylabel(f"{examples['groups'][index]}\nslice {examples['slice_index'][index]}",
                                fontsize=6)
    return _save(fig, run_dir, "masks.png")


def boxes(run_dir, examples, staged, n_images=4):
    """Images with the true box and each stage's predicted box (box-regression runs)."""
    images = examples["x"]
    picks = np.linspace(0, len(images) - 1, min(n_images, len(images))).astype(int)
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 2.2), squeeze=False)
    height, width = images.shape[1:3]
    # example index -> box, for each stage (a stage run on a subset saved its indices)
    drawn = [("ground truth", dict(enumerate(examples["y"])))] + [
        (label, dict(zip(p["indices"] if "indices" in p else range(len(p["outputs"])),
                         p["outputs"])))
        for label, p in staged]
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
    return _save(fig, run_dir, "boxes.png")


def _full(masks, saved, n):
    """A stage's masks at the positions of the evaluation examples (blank where it did not run)."""
    if "indices" not in saved:
        return masks
    full = np.zeros((n,) + masks.shape[1:], masks.dtype)
    full[saved["indices"]] = masks
    return full


def dice_vs_threshold(run_dir):
    """Mean 2D Dice of each stage as the output threshold varies (three-stage paper, Table 2)."""
    examples = predictions.load(run_dir, predictions.EXAMPLES)
    if examples is None:
        return None
    truth = evaluate.true_masks(examples["y"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plotted = False
    for stage, label in STAGES.items():
        saved = predictions.load(run_dir, stage)
        if saved is None or saved["outputs"].shape[-1] != 1:
            continue
        rows = saved["indices"] if "indices" in saved else slice(None)
        dice = [np.mean(metrics.dice_per_slice(evaluate.predicted_masks(saved["outputs"], t), truth[rows]))
                for t in THRESHOLDS]
        ax.plot(THRESHOLDS, dice, marker=".", label=label)
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("output threshold")
    ax.set_ylabel("mean Dice 2D")
    ax.legend(fontsize=8)
    return _save(fig, run_dir, "dice_vs_threshold.png")


def dice_vs_steps(run_dir):
    """Mean 2D Dice against the number of simulation steps, for stages that saved it."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plotted = False
    for stage, label in STAGES.items():
        saved = predictions.load(run_dir, stage)
        if saved is None or "steps" not in saved:
            continue
        ax.plot(saved["steps"], saved["dice_2d_by_steps"], marker=".", label=label)
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("simulation steps")
    ax.set_ylabel("mean Dice 2D")
    ax.legend(fontsize=8)
    return _save(fig, run_dir, "dice_vs_steps.png")


def _save(fig, run_dir, name):
    path = Path(run_dir) / "figures" / name
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def all_figures(run_dir):
    made = [f(run_dir) for f in (firing_rates, masks, dice_vs_threshold, dice_vs_steps)]
    return [p for p in made if p is not None]
