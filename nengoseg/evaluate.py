"""Score predictions the way the papers report them.

Segmentation: Dice per 2D slice and per 3D subject (mean and std), F1, Jaccard and
pixel accuracy over all pixels (inside the part's region of interest, DRIVE's field of
view, when it has one), and Jaccard and pixel accuracy per subject (or image:
the groups of the examples; mean and std, as the Spiking-UNet paper reports them, its
F1 being the Dice per subject). Boxes: mean IoU. Denoising: PSNR and SSIM of whole
test images per noise level. The predictions are the network's output logits
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
    if task == "denoising":
        return denoising_scores(predictions, part)
    if task == "boxes":
        iou = metrics.box_iou(np.asarray(predictions), part.y)
        mean, std = metrics.mean_std(iou)
        return {"iou_mean": mean, "iou_std": std, "n_images": int(len(iou))}
    pred = predicted_masks(predictions, threshold)
    true = true_masks(part.y)
    roi = part.roi  # DRIVE's field of view: only its pixels count; None: every pixel
    d2_mean, d2_std = metrics.mean_std(metrics.dice_per_slice(pred, true, where=roi))
    per_subject = metrics.dice_per_subject(pred, true, part.groups, roi)
    d3_mean, d3_std = metrics.mean_std(list(per_subject.values()))
    js_mean, js_std = metrics.mean_std(list(
        metrics.per_subject(metrics.jaccard, pred, true, part.groups, roi).values()))
    acc_mean, acc_std = metrics.mean_std(list(
        metrics.per_subject(metrics.pixel_accuracy, pred, true, part.groups, roi).values()))
    flat_pred, flat_true = metrics.inside(pred, true, roi)
    return {
        "dice_2d_mean": d2_mean,
        "dice_2d_std": d2_std,
        "dice_3d_mean": d3_mean,
        "dice_3d_std": d3_std,
        "f1": float(metrics.f1_score(flat_pred, flat_true)),
        "jaccard": float(metrics.jaccard(flat_pred, flat_true)),
        "pixel_accuracy": float(metrics.pixel_accuracy(flat_pred, flat_true)),
        # per subject or image, as the Spiking-UNet paper averages F1 (= Dice 3D), JS, ACC
        "jaccard_3d_mean": js_mean,
        "jaccard_3d_std": js_std,
        "accuracy_3d_mean": acc_mean,
        "accuracy_3d_std": acc_std,
        "threshold": threshold,
        "scored_pixels": "field of view" if roi is not None else "all",
        "n_slices": int(len(pred)),
        "n_subjects": len(per_subject),
        "dice_3d_per_subject": {k: float(v) for k, v in per_subject.items()},
    }


def denoised_images(predictions, part):
    """``{group: (denoised, clean, noisy)}``: each image of a denoising part put back
    together from its tiles (`Part.layout`; without one, each example is an image), with
    ``denoised = clip(noisy - predicted noise, 0, 1)`` and ``clean = noisy - noise``."""
    from nengoseg.data.denoising import untile

    predictions, x, y = np.asarray(predictions), np.asarray(part.x), np.asarray(part.y)
    if part.layout is None:
        groups = [(str(i), np.array([i]), None) for i in range(len(x))]
    else:
        groups = [(g, np.nonzero(part.groups == g)[0], part.layout[g]["shape"])
                  for g in dict.fromkeys(part.groups.tolist())]
    images = {}
    for group, rows, shape in groups:
        rows = rows[np.argsort(part.slice_index[rows], kind="stable")]
        whole = [a[rows] if shape is None else untile(a[rows], shape)[None]
                 for a in (predictions, x, y)]
        noisy = whole[1]
        images[group] = (np.clip(noisy - whole[0], 0, 1), np.clip(noisy - whole[2], 0, 1), noisy)
    return images


def _ssim(denoised, clean, window=11):
    """SSIM of one image (1, H, W, C); NaN for an image smaller than SSIM's 11-pixel
    window (training patches scored one by one)."""
    if min(clean.shape[1:3]) < window:
        return float("nan")
    return float(metrics.ssim(denoised, clean, filter_size=window)[0])


def denoising_scores(predictions, part):
    """PSNR (dB) and SSIM of the denoised test images against the clean ones, per image,
    for all images and for each noise level (`tf.image.psnr` / `ssim` on the [0, 1]
    scale, the whole image), and the noisy inputs' PSNR for reference."""
    images = denoised_images(predictions, part)
    per_image = {g: (float(metrics.psnr(d, c)[0]), _ssim(d, c),
                     float(metrics.psnr(np.clip(n, 0, 1), c)[0]))
                 for g, (d, c, n) in images.items()}
    sigma_of = {g: (part.layout or {}).get(g, {}).get("sigma") for g in per_image}
    out = {}
    for i, name in enumerate(("psnr", "ssim", "psnr_noisy")):
        out[f"{name}_mean"], out[f"{name}_std"] = metrics.mean_std(
            [v[i] for v in per_image.values()])
        by_sigma = {}
        for sigma in dict.fromkeys(s for s in sigma_of.values() if s is not None):
            by_sigma[str(sigma)] = metrics.mean_std(
                [v[i] for g, v in per_image.items() if sigma_of[g] == sigma])[0]
        out[f"{name}_by_sigma"] = by_sigma
    out["n_images"] = len(per_image)
    out["psnr_per_image"] = {g: v[0] for g, v in per_image.items()}
    return out


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
    if "psnr_mean" in scores:
        levels = ", ".join(f"σ{s} {v:.2f} dB / {scores['ssim_by_sigma'][s]:.3f}"
                           for s, v in scores["psnr_by_sigma"].items())
        return (f"{name}: PSNR {scores['psnr_mean']:.2f} dB, SSIM {scores['ssim_mean']:.3f} "
                f"({scores['n_images']} images{'; ' + levels if levels else ''})")
    if "iou_mean" in scores:
        return f"{name}: mean IoU {scores['iou_mean']:.4f} ± {scores['iou_std']:.4f} ({scores['n_images']} images)"
    return (
        f"{name}: Dice 2D {scores['dice_2d_mean']:.4f} ± {scores['dice_2d_std']:.4f}, "
        f"Dice 3D {scores['dice_3d_mean']:.4f} ± {scores['dice_3d_std']:.4f} "
        f"({scores['n_subjects']} subjects, {scores['n_slices']} slices)"
    )
