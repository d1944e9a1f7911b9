"""Keras callbacks that keep ANN training from dying silently.

`CollapseGuard` watches for a dead network: a loss that is not finite, a
network whose output no longer depends on its input (constant over a fixed
probe batch), or one whose sigmoid output is saturated at one answer while its
quality metric (Dice or IoU) stays at zero, two epochs in a row. It then stops training and says so in ``collapse``; the ANN
stage restarts from a new initialisation with a lower learning rate, or stops
with `TrainingCollapsed`. `Warmup` ramps the learning rate up linearly over the
first batches, which keeps the first large Adam steps from killing every ReLU.
"""

import json
import math

import numpy as np
import tensorflow as tf

from nengoseg.atomic import read_json, remove_folder, write_json
from nengoseg.errors import DataError, NengosegError

ATTEMPTS = "attempts.json"

DEAD_METRIC = 0.005  # Dice / IoU below this counts as "predicts nothing"
DEAD_SPREAD = 1e-3  # std of the sigmoid of the outputs below this: saturated, one answer
CONSTANT = 1e-6  # std of the raw outputs below this: the input plays no part at all


class TrainingCollapsed(NengosegError):
    """Training produced a dead network and the retries did not help."""


def is_dead(outputs, metric_value, logits=True):
    """Whether a network is dead: its output does not depend on the input at all, or
    (for ``logits``) its sigmoid is saturated at one answer while the metric is zero."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if not np.all(np.isfinite(outputs)) or float(np.std(outputs)) < CONSTANT:
        return True
    metric_dead = metric_value is None or not (metric_value >= DEAD_METRIC)
    if not logits:
        return False
    saturated = float(np.std(1.0 / (1.0 + np.exp(-np.clip(outputs, -60, 60))))) < DEAD_SPREAD
    return saturated and metric_dead


class CollapseGuard(tf.keras.callbacks.Callback):
    """Stop training when the network is dead for ``patience`` epochs in a row.

    ``probe``: a few inputs whose outputs are checked for being constant;
    ``metric``: the name of the quality metric in the logs ("dice", "iou");
    ``logits``: the outputs are logits of a sigmoid (segmentation); ``grace``: epochs
    not judged at the start.
    After training, ``collapse`` is None or a sentence saying what happened.
    """

    def __init__(self, probe, metric, patience=2, logits=True, grace=1):
        super().__init__()
        self.grace = grace
        self.logits = logits
        self.probe = probe
        self.metric = metric
        self.patience = patience
        self.dead_epochs = 0
        self.collapse = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.collapse = f"the loss became {float(loss)} at batch {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.grace:
            return  # the first epoch may still be finding its feet
        logs = logs or {}
        value = logs.get("val_" + self.metric, logs.get(self.metric))
        outputs = self.model.predict(self.probe, verbose=0)
        if is_dead(outputs, None if value is None else float(value), self.logits):
            self.dead_epochs += 1
        else:
            self.dead_epochs = 0
        if self.dead_epochs >= self.patience:
            self.collapse = (
                f"the output is constant over its inputs and {self.metric} is "
                f"{0.0 if value is None else float(value):.3g} after epoch {epoch + 1}"
            )
            self.model.stop_training = True


class Warmup(tf.keras.callbacks.Callback):
    """Raise the learning rate linearly from 1/``steps`` of its value over ``steps`` batches."""

    def __init__(self, steps):
        super().__init__()
        self.steps = int(steps)
        self.seen = 0
        self.target = None

    def on_train_begin(self, logs=None):
        self.target = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        if self.seen < self.steps:
            self.seen += 1
            tf.keras.backend.set_value(
                self.model.optimizer.learning_rate, self.target * self.seen / self.steps
            )


def read_attempts(work):
    """The collapsed attempts recorded in a stage's work folder (oldest first)."""
    try:
        return list(read_json(work / ATTEMPTS, "record of collapsed attempts")["attempts"])
    except (DataError, KeyError, TypeError):
        return []


def restart(work, attempts):
    """Forget the collapsed attempt's checkpoints; remember that it collapsed."""
    remove_folder(work / "checkpoint")
    (work / "best.weights.h5").unlink(missing_ok=True)
    write_json(work / ATTEMPTS, {"attempts": json.loads(json.dumps(attempts))})
