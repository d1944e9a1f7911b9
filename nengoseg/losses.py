"""Keras losses for the segmentation and box networks, which output logits.

Binary segmentation (one output channel): binary cross-entropy, soft Dice, and
their weighted sum (the papers use 0.5/0.5 and 0.3/0.7). Multi-class segmentation
(``n_classes`` > 1 output channels): softmax cross-entropy and the mean soft Dice
over the foreground classes (every class but 0); labels are either integer class
ids with one channel, ``(N, H, W, 1)``, or one-hot, ``(N, H, W, n_classes)``.
Boxes: mean squared or absolute error (Keras built-ins).

All losses work with ``model.compile`` and can be saved with the model.
"""

import tensorflow as tf

from nengoseg.errors import ConfigError

_serializable = tf.keras.utils.register_keras_serializable(package="nengoseg")


@_serializable
class BinaryCrossentropy(tf.keras.losses.BinaryCrossentropy):
    """Keras' binary cross-entropy with ``from_logits=True`` by default."""

    def __init__(self, from_logits=True, name="bce", **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)


def one_hot_labels(y_true, n_classes, dtype=tf.float32):
    """Labels as one-hot ``dtype``: integer class ids (last axis 1) are expanded, one-hot kept."""
    if y_true.shape[-1] == 1:
        return tf.one_hot(tf.cast(y_true[..., 0], tf.int32), n_classes, dtype=dtype)
    return tf.cast(y_true, dtype)


@_serializable
class SoftmaxCrossentropy(tf.keras.losses.Loss):
    """Softmax cross-entropy of logits against integer or one-hot labels, mean over pixels."""

    def __init__(self, n_classes, name="softmax_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes = n_classes

    def call(self, y_true, y_pred):
        true = one_hot_labels(y_true, self.n_classes, y_pred.dtype)
        return tf.keras.losses.categorical_crossentropy(true, y_pred, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}


def _crossentropy(n_classes=1):
    """Binary cross-entropy for one output channel, softmax cross-entropy for more."""
    return BinaryCrossentropy() if n_classes == 1 else SoftmaxCrossentropy(n_classes)


def _dice_ratio(true, prob, axes, smooth):
    """Soft Dice (2 sum(s r) + eps) / (sum(s) + sum(r) + eps), summed over ``axes``."""
    intersection = tf.reduce_sum(true * prob, axis=axes)
    sizes = tf.reduce_sum(true, axis=axes) + tf.reduce_sum(prob, axis=axes)
    return (2.0 * intersection + smooth) / (sizes + smooth)


@_serializable
class DiceLoss(tf.keras.losses.Loss):
    """1 - soft Dice (three-stage paper, eq. 7), over the whole batch by default.

    ``per_sample`` False (default): one Dice over every pixel of the batch. True: a
    Dice per sample, averaged over the batch. Per-sample Dice is a poor loss for
    volumes cut into slices: a slice without the structure scores
    eps / (sum(s) + eps), about 0 unless every probability is 0, so such slices
    (38% of the MSD hippocampus axis-0 slices) pull the whole network towards
    background; a batch Dice keeps them as ordinary false-positive pixels. Measured
    here: the default U-Net collapsed to an all-background output within 7 epochs
    with per-sample Dice.

    ``n_classes`` = 1: probabilities are ``sigmoid(y_pred)`` (or ``y_pred`` when
    ``from_logits`` is False) and the sums run over height, width and channels.
    ``n_classes`` > 1: probabilities are the softmax over channels, Dice is computed per
    class over height and width and averaged over the foreground classes 1..n-1.
    ``smooth`` (the paper's eps, 1e-5) makes an empty prediction of an empty mask score 1.
    """

    def __init__(
        self, from_logits=True, smooth=1e-5, n_classes=1, per_sample=False, name="dice", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.per_sample = per_sample
        self.smooth = smooth
        self.n_classes = n_classes

    def call(self, y_true, y_pred):
        first = 1 if self.per_sample else 0
        if self.n_classes == 1:
            prob = tf.sigmoid(y_pred) if self.from_logits else y_pred
            axes = list(range(first, len(y_pred.shape)))
            dice = _dice_ratio(tf.cast(y_true, prob.dtype), prob, axes, self.smooth)
        else:
            prob = tf.nn.softmax(y_pred, axis=-1) if self.from_logits else y_pred
            axes = list(range(first, len(y_pred.shape) - 1))
            true = one_hot_labels(y_true, self.n_classes, prob.dtype)
            dice = tf.reduce_mean(_dice_ratio(true, prob, axes, self.smooth)[..., 1:], axis=-1)
        if not self.per_sample:  # one value for the batch, given to every sample
            dice = tf.fill(tf.shape(y_pred)[:1], dice)
        return 1.0 - dice

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "smooth": self.smooth,
            "n_classes": self.n_classes,
            "per_sample": self.per_sample,
        }


@_serializable
class BCEDiceLoss(tf.keras.losses.Loss):
    """``bce_weight`` x cross-entropy + ``dice_weight`` x Dice loss, on logits.

    Cross-entropy is binary for ``n_classes`` = 1 and softmax otherwise; both terms are
    per-sample means, so the batch loss is the weighted sum of the two batch losses.
    """

    def __init__(self, bce_weight=0.5, dice_weight=0.5, smooth=1e-5, n_classes=1,
                 name="bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.n_classes = n_classes
        self._crossentropy = _crossentropy(n_classes)
        self._dice = DiceLoss(smooth=smooth, n_classes=n_classes)

    def call(self, y_true, y_pred):
        per_pixel = self._crossentropy.call(y_true, y_pred)
        crossentropy = tf.reduce_mean(per_pixel, axis=list(range(1, len(per_pixel.shape))))
        return self.bce_weight * crossentropy + self.dice_weight * self._dice.call(y_true, y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            "bce_weight": self.bce_weight,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
            "n_classes": self.n_classes,
        }


# name -> (factory, the options get_loss accepts for it)
LOSSES = {
    "bce": (_crossentropy, ("n_classes",)),
    "dice": (DiceLoss, ("smooth", "n_classes")),
    "bce_dice": (BCEDiceLoss, ("bce_weight", "dice_weight", "smooth", "n_classes")),
    "mse": (lambda: tf.keras.losses.MeanSquaredError(name="mse"), ()),
    "mae": (lambda: tf.keras.losses.MeanAbsoluteError(name="mae"), ()),
}


def get_loss(name, **options):
    """The loss called ``name`` (one of :data:`LOSSES`) for a model that outputs logits.

    ``n_classes`` > 1 selects the multi-class (softmax) versions of "bce", "dice" and
    "bce_dice". An unknown name or option, or a bad value, raises ConfigError.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r} (allowed: {', '.join(LOSSES)})")
    factory, allowed = LOSSES[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for loss {name!r} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    _check_options(options)
    return factory(**options)


def _check_options(options):
    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    n_classes = options.get("n_classes", 1)
    if not is_number(n_classes) or not isinstance(n_classes, int) or n_classes < 1:
        raise ConfigError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    smooth = options.get("smooth", 1.0)
    if not is_number(smooth) or smooth <= 0:
        raise ConfigError(f"smooth must be a number > 0, got {smooth!r}")
    for key in ("bce_weight", "dice_weight"):
        weight = options.get(key, 0.0)
        if not is_number(weight) or weight < 0:
            raise ConfigError(f"{key} must be a number >= 0, got {weight!r}")
