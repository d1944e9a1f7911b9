"""Score predictions the way the papers report them.

Segmentation: Dice per 2D slice and per 3D subject (mean and std), F1, Jaccard and
pixel accuracy over all pixels, and Jaccard and pixel accuracy per subject (or image:
the groups of the examples; mean and std, as the Spiking-UNet paper reports them, its
F1 being the Dice per subject). Boxes: mean IoU. The predictions are the network's output logits
(the ANN's, or the SNN readout), so the same function scores every stage.
"""

import numpy as np

from nengoseg import metrics


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))


def predicted_masks(logits, threshold=0.5):
    """Foreground masks from logits: sigmoid > threshold (one channel) or argmax > 0."""
    logits = np.asarray(logits)
    if logits.shape[-1] == 1:
        return sigmoid(logits[..., 0]) > threshold
    return np.argmax(logits, axis=-1) > 0


def true_masks(y):
    y = np.asarray(y)
    return y[..., 0] > 0 if y.shape[-1] == 1 else np.argmax(y, axis=-1) > 0


def score(task, predictions, part, threshold=0.5):
    """Metrics of ``predictions`` against the targets of an experiment ``Part``."""
    if task == "boxes":
        iou = metrics.box_iou(np.asarray(predictions), part.y)
        mean, std = metrics.mean_std(iou)
        return {"iou_mean": mean, "iou_std": std, "n_images": int(len(iou))}
    pred = predicted_masks(predictions, threshold)
    true = true_masks(part.y)
    d2_mean, d2_std = metrics.mean_std(metrics.dice_per_slice(pred, true))
    per_subject = metrics.dice_per_subject(pred, true, part.groups)
    d3_mean, d3_std = metrics.mean_std(list(per_subject.values()))
    js_mean, js_std = metrics.mean_std(list(
        metrics.per_subject(metrics.jaccard, pred, true, part.groups).values()))
    acc_mean, acc_std = metrics.mean_std(list(
        metrics.per_subject(metrics.pixel_accuracy, pred, true, part.groups).values()))
    return {
        "dice_2d_mean": d2_mean,
        "dice_2d_std": d2_std,
        "dice_3d_mean": d3_mean,
        "dice_3d_std": d3_std,
        "f1": float(metrics.f1_score(pred, true)),
        "jaccard": float(metrics.jaccard(pred, true)),
        "pixel_accuracy": float(metrics.pixel_accuracy(pred, true)),
        # per subject or image, as the Spiking-UNet paper averages F1 (= Dice 3D), JS, ACC
        "jaccard_3d_mean": js_mean,
        "jaccard_3d_std": js_std,
        "accuracy_3d_mean": acc_mean,
        "accuracy_3d_std": acc_std,
        "threshold": threshold,
        "n_slices": int(len(pred)),
        "n_subjects": len(per_subject),
        "dice_3d_per_subject": {k: float(v) for k, v in per_subject.items()},
    }


def run_scores(task, result, part, converted):
    """What a run of ``converted`` (a `nengoseg.convert.ConvertedNetwork`) scores on
    ``part``: ``{"scores", "settings"}``, and for a spiking run its firing rates (per
    layer and the network's neuron-weighted mean); what the stages record."""
    threshold = converted.settings.threshold
    payload = {
        "scores": score(task, result.outputs, part, threshold),
        "settings": converted.settings.to_dict(),
    }
    if result.firing_rates_hz:
        sizes = {
            name: probe.target.ensemble.n_neurons
            for name, probe in converted.neuron_probes.items()
        }
        payload["firing_rates_hz"] = result.firing_rates_hz
        payload["mean_firing_rate_hz"] = float(
            sum(result.firing_rates_hz[n] * sizes[n] for n in sizes) / sum(sizes.values())
        )
        payload["neurons_per_layer"] = sizes
    return payload


def summary_line(name, scores):
    if "iou_mean" in scores:
        return f"{name}: mean IoU {scores['iou_mean']:.4f} ± {scores['iou_std']:.4f} ({scores['n_images']} images)"
    return (
        f"{name}: Dice 2D {scores['dice_2d_mean']:.4f} ± {scores['dice_2d_std']:.4f}, "
        f"Dice 3D {scores['dice_3d_mean']:.4f} ± {scores['dice_3d_std']:.4f} "
        f"({scores['n_subjects']} subjects, {scores['n_slices']} slices)"
    )
