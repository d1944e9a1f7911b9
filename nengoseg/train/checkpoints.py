"""Per-epoch checkpoints, written atomically, from which an interrupted run resumes.

A checkpoint folder holds the model and optimizer variables (a TensorFlow
checkpoint, so Adam's moments and the learning rate come back too) and
``state.json``: the epochs done, the history so far, and the counters of the
callbacks that steer training (ReduceLROnPlateau and EarlyStopping), which Keras
itself would reset on a new ``fit``. The folder is replaced as a whole, so a run
killed while writing leaves the previous epoch's checkpoint intact.
"""

import json
import math
import sys
import time
from pathlib import Path

import tensorflow as tf

from nengoseg.atomic import atomic_path, write_json

STATE = "state.json"
TF_PREFIX = "variables"
# the attributes of Keras callbacks that carry over epochs
CALLBACK_FIELDS = ("best", "wait", "cooldown_counter", "best_epoch")


def read_state(folder):
    path = Path(folder) / STATE
    return json.loads(path.read_text()) if path.exists() else None


def restore(folder, model, optimizer):
    """Load model and optimizer variables of a checkpoint folder; return its state."""
    state = read_state(folder)
    if state is None:
        return None
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer).read(
        str(Path(folder) / TF_PREFIX)
    ).assert_existing_objects_matched().expect_partial()
    return state


def mark_finished(folder, **info):
    state = read_state(folder)
    state.update(finished=True, **info)
    write_json(Path(folder) / STATE, state)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Write a checkpoint after every epoch and the best weights so far.

    ``steering`` are the callbacks whose counters are saved and, on resume,
    put back after their own ``on_train_begin`` has reset them: list this
    callback after them.
    """

    def __init__(self, folder, best_weights, monitor, steering, state=None):
        super().__init__()
        self.folder = Path(folder)
        self.best_weights = Path(best_weights)
        self.monitor = monitor
        self.steering = steering
        self.state = state or {
            "epochs_done": 0, "history": {}, "best": None, "callbacks": {}, "train_seconds": 0.0
        }

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_train_begin(self, logs=None):
        for cb in self.steering:
            for name, value in self.state["callbacks"].get(type(cb).__name__, {}).items():
                setattr(cb, name, value)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["lr"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        current = logs.get(self.monitor)
        best = self.state["best"]
        if current is not None and (best is None or current < best):
            self.state["best"] = float(current)
            self.state["best_epoch"] = epoch + 1
            with atomic_path(self.best_weights) as tmp:
                self.model.save_weights(str(tmp), save_format="h5")
        self.state["epochs_done"] = epoch + 1
        self.state["train_seconds"] += time.perf_counter() - self._epoch_start
        self.state["callbacks"] = {
            type(cb).__name__: {
                f: _plain(getattr(cb, f)) for f in CALLBACK_FIELDS if hasattr(cb, f)
            }
            for cb in self.steering
        }
        self.save()

    def save(self):
        with atomic_path(self.folder) as tmp:
            tmp.mkdir()
            tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(
                str(tmp / TF_PREFIX)
            )
            write_json(tmp / STATE, self.state)


def _plain(value):
    value = float(value) if hasattr(value, "__float__") else value
    if isinstance(value, float) and math.isinf(value):
        return value  # json writes Infinity, which json reads back
    return value


class Progress(tf.keras.callbacks.Callback):
    """One line per epoch and a few per epoch for batches, readable in logs and CI."""

    def __init__(self, epochs, lines_per_epoch=4, stream=sys.stdout):
        super().__init__()
        self.epochs = epochs
        self.lines_per_epoch = lines_per_epoch
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.start = time.perf_counter()
        steps = self.params.get("steps") or 1
        self.every = max(1, steps // self.lines_per_epoch)

    def on_train_batch_end(self, batch, logs=None):
        steps = self.params.get("steps") or 0
        if (batch + 1) % self.every == 0 and batch + 1 < steps:
            self._print(f"  epoch {self.epoch + 1}/{self.epochs} batch {batch + 1}/{steps}", logs)

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self.start
        self._print(f"epoch {epoch + 1}/{self.epochs} ({took:.1f} s)", logs)

    def _print(self, head, logs):
        items = " ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items() if k != "batch" and k != "size")
        print(f"{head} {items}", file=self.stream, flush=True)
