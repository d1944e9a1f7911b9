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

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from nengoseg.atomic import atomic_path, read_json, write_json
from nengoseg.errors import DataError

STATE = "state.json"
TF_PREFIX = "variables"
# the attributes of Keras callbacks that carry over epochs
CALLBACK_FIELDS = ("best", "wait", "cooldown_counter", "best_epoch")


def read_state(folder):
    """The training state of a checkpoint folder, or None when it has none yet.

    A state.json that is damaged (truncated, not UTF-8, not a JSON object) or whose
    fields have the wrong type is a DataError naming the file (and the key) and the
    folder to delete to start the training over.
    """
    path = Path(folder) / STATE
    if not path.exists() and not path.is_symlink():
        return None
    again = f"delete {Path(folder).parent} to start this training over"
    try:
        state = read_json(path, "training state")
    except RecursionError:  # read_json (nengoseg.atomic) lets json's through
        raise DataError(f"{path}: the training state is nested too deeply; {again}") from None
    for key, (check, allowed) in _STATE_FIELDS.items():
        if key not in state:
            if key in _OPTIONAL_STATE_FIELDS:
                continue
            raise DataError(f"{path}: the training state has no '{key}'; {again}")
        if not check(state[key]):
            raise DataError(
                f"{path}: bad value {_short(state[key])} for '{key}' in the training state "
                f"(allowed: {allowed}); {again}"
            )
    for key, values in state["history"].items():
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise DataError(
                f"{path}: bad value {_short(values)} for 'history.{_name(key)}' in the training "
                f"state (allowed: a list of numbers); {again}"
            )
    for name, fields in state["callbacks"].items():
        bad = [f for f, v in fields.items() if not (v is None or _is_number(v))] if isinstance(
            fields, dict) else None
        if bad is None or bad:
            where = f"callbacks.{_name(name)}" + (f".{_name(bad[0])}" if bad else "")
            value = fields[bad[0]] if bad else fields
            raise DataError(
                f"{path}: bad value {_short(value)} for '{where}' in the training state "
                f"(allowed: {'a number or null' if bad else 'a mapping of counters'}); {again}"
            )
    return state


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _name(key):
    """A key as written in a message: as is when printable, else JSON-quoted (one line)."""
    return key if key.isprintable() and len(key) <= 40 else _short(key)


def _short(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# the fields of state.json that training and resuming read: key -> (check, allowed)
_STATE_FIELDS = {
    "epochs_done": (_is_count, "an integer >= 0"),
    "history": (lambda v: isinstance(v, dict), "a mapping of metric: list of numbers"),
    "best": (lambda v: v is None or _is_number(v), "a number or null"),
    "callbacks": (lambda v: isinstance(v, dict), "a mapping of callback: counters"),
    "train_seconds": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "best_epoch": (lambda v: v is None or _is_count(v), "an integer >= 0 or null"),
    "finished": (lambda v: isinstance(v, bool), "true or false"),
}
_OPTIONAL_STATE_FIELDS = ("best_epoch", "finished")


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


def steering(section, monitor):
    """The learning-rate schedule and early stopping of a training config section
    (``train`` or ``cotrain``: ``reduce_lr_factor``, ``reduce_lr_patience``,
    ``min_lr``, ``early_stopping_patience``, 0 for none), watching ``monitor``; the
    callbacks whose counters `EpochCheckpoint` saves."""
    callbacks = [
        tf.keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            factor=section["reduce_lr_factor"],
            patience=section["reduce_lr_patience"],
            min_lr=section["min_lr"],
        )
    ]
    if section["early_stopping_patience"]:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor=monitor, patience=section["early_stopping_patience"]))
    return callbacks


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Write a checkpoint after every epoch and the best weights so far.

    Given the ``state`` of a checkpoint in ``folder`` (`read_state`), training resumes
    from it: when training begins, the model and optimizer variables are read back
    (`restore`) and the counters of ``steering`` (the callbacks whose counters are
    saved) are put back after their own ``on_train_begin`` has reset them: list this
    callback after them. When training ends, the model gets the best weights so far.
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

    @property
    def wants_baseline(self):
        """Whether `set_baseline` would use the starting network's scores: a fresh fit
        that monitors a validation score (otherwise the extra validation pass is skipped)."""
        return not self.state["epochs_done"] and self.monitor.startswith("val_")

    def set_baseline(self, logs, model):
        """The starting network's validation scores, before a fresh fit: it is the
        best so far (epoch 0; its trainable variables saved beside the best weights),
        so an epoch must beat it to replace it, and a fit that never does ends with
        the starting network."""
        current = logs.get(self.monitor)
        if not self.wants_baseline or current is None:
            return
        self.state.update(best=float(current), best_epoch=0, baseline=dict(logs))
        values = {f"{i}": v.numpy() for i, v in enumerate(model.trainable_weights)}
        with atomic_path(self.start_weights) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **values)

    @property
    def start_weights(self):
        return self.best_weights.with_name("start.weights.npz")

    def on_train_begin(self, logs=None):
        if self.state["epochs_done"]:
            restore(self.folder, self.model, self.model.optimizer)
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

    def on_train_end(self, logs=None):
        if self.state.get("best_epoch") == 0 and self.start_weights.exists():
            with np.load(self.start_weights) as saved:
                variables = self.model.trainable_weights
                if len(saved.files) != len(variables):
                    raise ValueError(f"{self.start_weights}: {len(saved.files)} arrays for "
                                     f"{len(variables)} trainable variables")
                for i, variable in enumerate(variables):
                    variable.assign(saved[f"{i}"])
        elif self.best_weights.exists():
            self.model.load_weights(str(self.best_weights))

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
    """Training progress: tqdm bars with ETA on a terminal, one line per epoch always.

    On a terminal, two bars on stderr: epochs (with the time left) and the batches
    of the current epoch (with its time left and the running metrics). Where
    stderr is not a terminal (CI logs, pipes, notebooks without widgets) the bars
    are off (tqdm's ``disable=None``). Either way each finished epoch writes one
    line to ``stream`` (default: ``sys.stdout`` at that moment, so pytest and
    notebooks that redirect stdout see it)::

        epoch 3/20 (4.1 s, ETA 01:10) loss=0.3127 dice=0.6911 val_loss=0.3342 ...

    ``_metrics`` picks what goes on the line; subclasses narrow it.
    """

    def __init__(self, epochs, stream=None):
        super().__init__()
        self.epochs = epochs
        self.stream = stream
        self._epoch_bar = None
        self._batch_bar = None

    def _metrics(self, logs):
        return {k: v for k, v in (logs or {}).items() if k not in ("batch", "size")}

    @staticmethod
    def _format(metrics):
        return " ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())

    def on_train_begin(self, logs=None):
        self._close()
        self._first_epoch = None
        self._train_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch_bar is None:  # the first epoch of this fit (later after a resume)
            self._first_epoch = epoch
            self._train_start = time.perf_counter()
            self._epoch_bar = tqdm(total=self.epochs, initial=epoch, desc="epochs", unit="epoch",
                                   disable=None, dynamic_ncols=True)
        self.epoch = epoch
        self.start = time.perf_counter()
        self._batch_bar = tqdm(total=self.params.get("steps"), desc=f"epoch {epoch + 1}/{self.epochs}",
                               unit="batch", leave=False, disable=None, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._batch_bar is not None:
            self._batch_bar.set_postfix_str(self._format(self._metrics(logs)), refresh=False)
            self._batch_bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        took = now - self.start
        done = epoch + 1 - self._first_epoch
        left = (now - self._train_start) / max(1, done) * max(0, self.epochs - epoch - 1)
        metrics = self._format(self._metrics(logs))
        if self._batch_bar is not None:
            self._batch_bar.close()
            self._batch_bar = None
        tqdm.write(f"epoch {epoch + 1}/{self.epochs} ({took:.1f} s, ETA {tqdm.format_interval(left)}) "
                   f"{metrics}".rstrip(), file=self.stream or sys.stdout)
        (self.stream or sys.stdout).flush()
        self._epoch_bar.set_postfix_str(metrics, refresh=False)
        self._epoch_bar.update(1)

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        for bar in (self._batch_bar, self._epoch_bar):
            if bar is not None:
                bar.close()
        self._batch_bar = self._epoch_bar = None
