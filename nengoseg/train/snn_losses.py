"""Losses, metrics and a callback for training a spiking network over time.

A simulated network outputs arrays of shape ``(batch, n_steps, ...)``: every
probed value at every time step (NengoDL flattens the rest, a time-batched Keras
engine may not; both work here). Co-training needs two kinds of terms on them.

The task loss on the readout
    `ReadoutLoss` averages the output over the last ``window`` steps (the window
    `nengoseg.convert.read_out` reads the SNN over, ``settings.window(n_steps)``),
    reshapes it to the network's output shape and applies the ANN stage's loss
    (BCE / Dice / MSE, on logits). `ReadoutMetric` does the same for a Keras
    metric (Dice, box IoU). Targets may be given once per example, as
    ``(batch, 1, prod(output_shape))`` arrays: NengoDL does not require targets to
    have ``n_steps`` steps, and repeating them over time would only cost memory.

Firing-rate regularisation (co-training paper, section 3.1)
    `RateRegularisation` pulls each neuron's rate towards a target. A neuron
    output (NengoDL probe on ``ensemble.neurons``, no synapse) is ``amplitude / dt``
    at a spike and 0 otherwise, so its mean over the steps is ``amplitude * rate``;
    the target is given in those units (`probe_target`) and the loss is the mean
    squared difference over neurons, per example, as in NengoDL's own
    rate-regularisation examples (where ``amplitude = 1`` and the units are Hz).
    The rate's gradient flows through the hybrid neurons' rate-neuron derivative.
    Layer weights (the paper: 1 for the output layer, 0.01 for the others) are
    Keras ``loss_weights``. `FiringRate` reports ``mean output / amplitude`` in Hz.

`EpochSummary` (a Keras callback) adds the neuron-weighted mean firing rate of
all layers (``rate_hz``, ``val_rate_hz``) and short aliases of the task metric
and loss to each epoch's logs, for progress lines, history and checkpoints.
"""

import numpy as np
import tensorflow as tf


def readout(y_pred, window, output_shape):
    """Mean of the last ``window`` steps of ``(batch, n_steps, ...)``, as ``(batch, *output_shape)``."""
    flat = tf.reshape(y_pred, (tf.shape(y_pred)[0], tf.shape(y_pred)[1], -1))
    return tf.reshape(tf.reduce_mean(flat[:, -window:], axis=1), (-1, *output_shape))


def _per_example(y_true, output_shape, dtype):
    return tf.reshape(tf.cast(y_true, dtype), (-1, *output_shape))


class ReadoutLoss(tf.keras.losses.Loss):
    """``task_loss`` of the output averaged over the last ``window`` steps.

    Parameters
    ----------
    task_loss : tf.keras.losses.Loss or callable
        The loss of the ANN stage (``nengoseg.train.ann.make_loss``), on logits.
    window : int
        Final steps averaged (``ConversionSettings.window(n_steps)``).
    output_shape : tuple of int
        Shape of one output, e.g. ``(H, W, 1)`` or ``(4,)``.
    """

    def __init__(self, task_loss, window, output_shape, name=None):
        super().__init__(name=name or getattr(task_loss, "name", "task_loss"))
        self.task_loss = task_loss
        self.window = int(window)
        self.shape = tuple(int(s) for s in output_shape)

    def call(self, y_true, y_pred):
        pred = readout(y_pred, self.window, self.shape)
        loss = self.task_loss(_per_example(y_true, self.shape, pred.dtype), pred)
        # one value per example, so Keras' reduction leaves the task loss unchanged
        return tf.fill(tf.shape(pred)[:1], loss)


class ReadoutMetric(tf.keras.metrics.Metric):
    """A Keras metric (Dice, box IoU, ...) of the output averaged over the readout window."""

    def __init__(self, metric, window, output_shape, name=None, **kwargs):
        super().__init__(name=name or metric.name, **kwargs)
        self.metric = metric
        self.window = int(window)
        self.shape = tuple(int(s) for s in output_shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        pred = readout(y_pred, self.window, self.shape)
        self.metric.update_state(_per_example(y_true, self.shape, pred.dtype), pred)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()


def probe_target(rate_hz, amplitude):
    """A firing rate in Hz as the mean probe output of neurons of ``amplitude``."""
    return float(rate_hz) * float(amplitude)


class RateRegularisation(tf.keras.losses.Loss):
    """Mean squared difference of each neuron's mean output over time and ``target``.

    ``target`` is in probe units (`probe_target`: ``amplitude * rate_hz``); ``y_true``
    is ignored (give a ``(batch, 1, 1)`` array of zeros, NengoDL needs one).
    """

    def __init__(self, target, name="rate_regularisation"):
        super().__init__(name=name)
        self.target = float(target)

    def call(self, y_true, y_pred):
        flat = tf.reshape(y_pred, (tf.shape(y_pred)[0], tf.shape(y_pred)[1], -1))
        mean = tf.reduce_mean(flat, axis=1)
        return tf.reduce_mean(tf.square(mean - self.target), axis=-1)


class FiringRate(tf.keras.metrics.MeanMetricWrapper):
    """Mean firing rate in Hz of a neuron output ``(batch, n_steps, ...)`` of ``amplitude``."""

    def __init__(self, amplitude, name="rate_hz", **kwargs):
        self.amplitude = float(amplitude)
        super().__init__(self._rate, name=name, **kwargs)

    def _rate(self, y_true, y_pred):
        flat = tf.reshape(y_pred, (tf.shape(y_pred)[0], -1))
        return tf.reduce_mean(flat, axis=-1) / self.amplitude


class EpochSummary(tf.keras.callbacks.Callback):
    """Add the mean firing rate (weighted by neurons) and short metric names to epoch logs.

    Parameters
    ----------
    rate_keys : dict of {str: int}
        Log key of each layer's `FiringRate` (e.g. ``"c1.neurons_rate_hz"``) and
        its number of neurons.
    aliases : dict of {str: str}
        New key -> existing key, e.g. ``{"dice": "output_dice"}``; both are
        applied to the ``val_`` keys too.

    List it before the callbacks that read the logs (checkpoints, progress).
    """

    def __init__(self, rate_keys, aliases=None):
        super().__init__()
        self.rate_keys = dict(rate_keys)
        self.aliases = dict(aliases or {})

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            for alias, key in self.aliases.items():
                if prefix + key in logs:
                    logs[prefix + alias] = logs[prefix + key]
            keys = [prefix + key for key in self.rate_keys]
            if self.rate_keys and all(key in logs for key in keys):
                sizes = np.array(list(self.rate_keys.values()), dtype=float)
                rates = np.array([float(logs[key]) for key in keys])
                logs[prefix + "rate_hz"] = float((rates * sizes).sum() / sizes.sum())
