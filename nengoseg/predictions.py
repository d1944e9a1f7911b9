"""Predictions of each stage on the evaluation examples, kept for figures and reports.

A stage keeps its outputs in its own folder (`nengoseg.rundir`), so they are
swapped in with its scores: ``RUN/snn/predictions/examples.npz`` holds the
evaluation examples (x, y, groups, slice_index), ``RUN/snn/predictions/
converted_snn.npz`` the converted SNN's output logits for them (and, where a stage
has them, the outputs after each number of steps), and so on for each stage.
"""

from pathlib import Path

import numpy as np

from nengoseg import rundir
from nengoseg.atomic import atomic_path

EXAMPLES = "examples"
# the stage whose folder holds each entry; "examples" is kept by every scoring stage
OWNER = {
    "ann_on_snn_examples": "convert",
    "converted_snn": "convert",
    "hybrid_snn": "cotrain",
    "loihi": "deploy",
}


def _save(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def save_examples(stage_folder, part):
    """Keep the evaluation examples in a stage folder being written."""
    roi = getattr(part, "roi", None)  # where scores count (DRIVE's FOV); None: everywhere
    roi = {} if roi is None else {"roi": roi}
    _save(Path(stage_folder) / rundir.PREDICTIONS / f"{EXAMPLES}.npz", x=part.x, y=part.y,
          groups=part.groups, slice_index=part.slice_index, **roi)


def save_predictions(stage_folder, name, outputs, **extra):
    """Keep a stage's outputs (entry ``name``) in the stage folder being written."""
    _save(Path(stage_folder) / rundir.PREDICTIONS / f"{name}.npz",
          outputs=np.asarray(outputs), **extra)


def load(run_dir, name):
    """The arrays saved under ``name`` (a results entry or "examples"), or None."""
    owners = [OWNER[name]] if name in OWNER else ["convert", "cotrain"]
    for owner in owners:
        path = rundir.predictions_path(run_dir, owner, name)
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
    return None
