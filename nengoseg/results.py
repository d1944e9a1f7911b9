"""results.json of a run folder: metrics per stage, timings and versions.

The stage entries come from the stage records (`nengoseg.rundir`); commands that
make no stage (``nengoseg evaluate``) keep theirs beside them.
"""

import platform
from importlib import metadata

from nengoseg import rundir

STACK = ("tensorflow", "keras", "nengo", "nengo-dl", "nengo-loihi", "numpy", "scipy", "nibabel")


def versions():
    found = {"python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def read_results(run_dir):
    """``{"stages": {entry: payload}}`` for every finished stage and evaluation."""
    return rundir.read_results(run_dir)


def update_results(run_dir, entry, payload):
    """Set an entry that belongs to no stage (``evaluate_ann``, ``evaluate_snn``)."""
    rundir.update_extra(run_dir, entry, payload)
    return read_results(run_dir)
