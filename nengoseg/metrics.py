"""Evaluation metrics as the papers report them, and Keras metrics for training progress.

NumPy functions score finished predictions: masks are boolean or 0/1 arrays of the
same shape, boxes are ``(N, 4)`` arrays of corners ``(x1, y1, x2, y2)``. The Keras
metrics (:class:`DiceMetric`, :class:`MeanIoUBoxes`) follow training on the models'
logits.
"""

import numpy as np
import tensorflow as tf

_serializable = tf.keras.utils.register_keras_serializable(package="nengoseg")


def _masks(pred, true):
    pred, true = np.asarray(pred).astype(bool), np.asarray(true).astype(bool)
    if pred.shape != true.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth shape {true.shape}"
        )
    return pred, true


def _counts(pred, true):
    """True positives, false positives, false negatives and true negatives."""
    pred, true = _masks(pred, true)
    tp = int(np.count_nonzero(pred & true))
    fp = int(np.count_nonzero(pred & ~true))
    fn = int(np.count_nonzero(~pred & true))
    return tp, fp, fn, pred.size - tp - fp - fn


def dice(pred, true, empty=1.0):
    """Dice 2|A∩B| / (|A|+|B|) of two masks; ``empty`` when both masks are empty."""
    tp, fp, fn, _ = _counts(pred, true)
    return empty if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def f1_score(pred, true, empty=1.0):
    """F1 = 2 precision recall / (precision + recall) = 2TP / (2TP+FP+FN): on masks, the Dice."""
    return dice(pred, true, empty)


def jaccard(pred, true, empty=1.0):
    """Jaccard |A∩B| / |A∪B| of two masks; ``empty`` when both masks are empty."""
    tp, fp, fn, _ = _counts(pred, true)
    return empty if tp + fp + fn == 0 else tp / (tp + fp + fn)


def pixel_accuracy(pred, true):
    """The fraction of pixels where the masks agree."""
    tp, _, _, tn = _counts(pred, true)
    return (tp + tn) / np.asarray(true).size


def inside(pred, true, where=None):
    """``pred`` and ``true`` restricted to the pixels where ``where`` (same shape) is true,
    flattened; unchanged when ``where`` is None. Scores restricted to a region of interest
    (DRIVE's field of view) count only its pixels, true negatives included."""
    pred, true = _masks(pred, true)
    if where is None:
        return pred, true
    where = np.asarray(where, dtype=bool)
    if where.shape != pred.shape:
        raise ValueError(f"region of interest shape {where.shape} differs from the masks' {pred.shape}")
    return pred[where], true[where]


def dice_per_slice(pred, true, skip_empty_truth=True, where=None):
    """Dice of each 2D slice along the first axis of ``(N, H, W[, 1])`` masks.

    Slices whose ground truth is empty are skipped by default: the papers report Dice
    on slices that contain the structure, and counting every empty-prediction /
    empty-truth slice as a perfect 1 would inflate the mean (false positives on those
    slices still count in :func:`dice_per_subject`). When they are kept, a slice with
    both masks empty scores 1. With ``where``, only the pixels inside it count.
    """
    pred, true = _masks(pred, true)
    if where is not None:  # Dice ignores true negatives: clearing the outside is restricting
        pred, true = pred & np.asarray(where, bool), true & np.asarray(where, bool)
    pred, true = pred.reshape(len(pred), -1), true.reshape(len(true), -1)
    if skip_empty_truth:
        keep = true.any(axis=1)
        pred, true = pred[keep], true[keep]
    intersection = np.count_nonzero(pred & true, axis=1)
    sizes = np.count_nonzero(pred, axis=1) + np.count_nonzero(true, axis=1)
    return np.where(sizes > 0, 2 * intersection / np.maximum(sizes, 1), 1.0)


def dice_per_subject(pred, true, subjects, where=None):
    """3D Dice of each subject: the slices of one subject id scored as one volume.

    ``subjects`` gives the subject id of each slice (first axis). Returns
    ``{subject: dice}`` in the order subjects first appear, with plain Python keys.
    With ``where``, only the pixels inside it count.
    """
    return per_subject(dice, pred, true, subjects, where)


def per_subject(metric, pred, true, subjects, where=None):
    """``{subject: metric(pred, true)}`` with each subject's slices scored as one volume
    (see `dice_per_subject`), counting only the pixels inside ``where`` when given."""
    pred, true = _masks(pred, true)
    subjects = np.asarray(subjects)
    if subjects.shape != (len(pred),):
        raise ValueError(f"{len(pred)} slices but subject ids of shape {subjects.shape}")
    where = np.ones(pred.shape, bool) if where is None else np.asarray(where, bool)
    scores = {}
    for subject in dict.fromkeys(subjects.tolist()):
        rows = subjects == subject
        scores[subject] = metric(*inside(pred[rows], true[rows], where[rows]))
    return scores


def mean_std(values):
    """Mean and (population) standard deviation as floats; (nan, nan) for no values."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def box_iou_tensor(y_true, y_pred):
    """IoU of boxes ``(x1, y1, x2, y2)``, one per row of ``(N, 4)`` tensors; see :func:`box_iou`."""
    y_true = tf.cast(y_true, y_pred.dtype)

    def area(boxes):
        return tf.nn.relu(boxes[:, 2] - boxes[:, 0]) * tf.nn.relu(boxes[:, 3] - boxes[:, 1])

    overlap = tf.concat(
        [tf.maximum(y_pred[:, :2], y_true[:, :2]), tf.minimum(y_pred[:, 2:], y_true[:, 2:])], axis=1
    )
    intersection = area(overlap)
    union = area(y_pred) + area(y_true) - intersection
    return tf.math.divide_no_nan(intersection, union)


def box_iou(pred, true):
    """IoU of matching boxes ``(x1, y1, x2, y2)``, one value per row of ``(N, 4)`` arrays.

    A box with x2 < x1 or y2 < y1 has area 0; a pair whose union has area 0 scores 0.
    """
    pred, true = np.atleast_2d(np.asarray(pred, float)), np.atleast_2d(np.asarray(true, float))
    if pred.shape != true.shape or pred.shape[-1] != 4:
        raise ValueError(
            f"boxes must be (N, 4) arrays of one shape, got {pred.shape} and {true.shape}"
        )
    return box_iou_tensor(tf.constant(true), tf.constant(pred)).numpy()


def _images(image):
    """``image`` as float32 with a channel axis: (H, W) becomes (H, W, 1)."""
    image = np.asarray(image, dtype=np.float32)
    return image[..., None] if image.ndim == 2 else image


def psnr(pred, true, max_val=1.0):
    """Peak signal-to-noise ratio in dB (``tf.image.psnr``), one value per image.

    Images are (H, W), (H, W, C) or (N, H, W, C): a scalar for one image, (N,) for a batch.
    """
    return tf.image.psnr(_images(pred), _images(true), max_val=max_val).numpy()


def ssim(pred, true, max_val=1.0, filter_size=11):
    """Structural similarity (``tf.image.ssim``), one value per image.

    Images are as for :func:`psnr`; height and width must be at least ``filter_size``.
    """
    pred, true = _images(pred), _images(true)
    return tf.image.ssim(pred, true, max_val=max_val, filter_size=filter_size).numpy()


def foreground(y_pred, threshold=0.5, from_logits=True):
    """Boolean foreground of outputs: probability > threshold (one channel), else argmax > 0."""
    if y_pred.shape[-1] == 1:
        prob = tf.sigmoid(y_pred) if from_logits else y_pred
        return prob[..., 0] > threshold
    return tf.argmax(y_pred, axis=-1) > 0


def _true_foreground(y_true):
    """Boolean foreground of labels: > 0.5 for one channel (0/1 or class ids), else argmax > 0."""
    if y_true.shape[-1] == 1:
        return tf.cast(y_true[..., 0], tf.float32) > 0.5
    return tf.argmax(y_true, axis=-1) > 0


@_serializable
class DiceMetric(tf.keras.metrics.Metric):
    """Dice of the thresholded predictions, over all pixels seen in the epoch.

    Accumulates |A∩B| and |A|+|B| over batches, so the result is the Dice of the
    epoch's pixels taken together (1 when both are empty). Outputs with more than one
    channel are scored as foreground (argmax > 0) against background.
    """

    def __init__(self, threshold=0.5, from_logits=True, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.from_logits = from_logits
        self.intersection = self.add_weight("intersection", initializer="zeros")
        self.sizes = self.add_weight("sizes", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("DiceMetric does not support sample weights")
        pred = tf.cast(foreground(y_pred, self.threshold, self.from_logits), self.dtype)
        true = tf.cast(_true_foreground(y_true), self.dtype)
        self.intersection.assign_add(tf.reduce_sum(pred * true))
        self.sizes.assign_add(tf.reduce_sum(pred) + tf.reduce_sum(true))

    def result(self):
        dice = tf.math.divide_no_nan(2.0 * self.intersection, self.sizes)
        return tf.where(self.sizes > 0, dice, 1.0)

    def get_config(self):
        config = {"threshold": self.threshold, "from_logits": self.from_logits}
        return {**super().get_config(), **config}


@_serializable
class MeanIoUBoxes(tf.keras.metrics.MeanMetricWrapper):
    """Mean IoU of predicted and true boxes ``(x1, y1, x2, y2)`` over the epoch."""

    def __init__(self, name="iou", dtype=None):
        super().__init__(box_iou_tensor, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


# the Keras metric each task's training reports (its name is the key in the logs)
TASK_METRICS = {
    "segmentation": lambda: DiceMetric(name="dice"),
    "boxes": lambda: MeanIoUBoxes(name="iou"),
    "denoising": lambda: tf.keras.metrics.MeanAbsoluteError(name="mae"),
}


def task_metric(task):
    """The Keras metric training reports for ``task``: Dice, IoU for boxes, the mean
    absolute error of the noise map for denoising."""
    if task not in TASK_METRICS:
        raise ValueError(f"bad task {task!r}; allowed: {', '.join(TASK_METRICS)}")
    return TASK_METRICS[task]()
