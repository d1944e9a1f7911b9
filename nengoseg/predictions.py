"""Predictions of each stage on the evaluation examples, kept for figures and reports.

``RUN/predictions/examples.npz`` holds the evaluation examples once (x, y, groups,
slice_index); ``RUN/predictions/<stage>.npz`` the stage's output logits for them
(and, where a stage has them, the outputs after each number of steps).
"""

from pathlib import Path

import numpy as np

from nengoseg.atomic import atomic_path

FOLDER = "predictions"
EXAMPLES = "examples"


def _path(run_dir, name):
    return Path(run_dir) / FOLDER / f"{name}.npz"


def _save(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def save_examples(run_dir, part):
    _save(_path(run_dir, EXAMPLES), x=part.x, y=part.y, groups=part.groups,
          slice_index=part.slice_index)


def save_predictions(run_dir, stage, outputs, **extra):
    _save(_path(run_dir, stage), outputs=np.asarray(outputs), **extra)


def load(run_dir, name):
    """The arrays saved under ``name`` (a stage or "examples"), or None."""
    path = _path(run_dir, name)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
