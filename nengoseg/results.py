"""results.json of a run folder: metrics per stage, timings and versions.

The stage entries come from the stage records (`nengoseg.rundir`); commands that
make no stage (``nengoseg evaluate``) keep theirs beside them.
"""

from nengoseg import rundir
from nengoseg._versions import STACK, versions  # noqa: F401  (re-exported)


def read_results(run_dir):
    """``{"stages": {entry: payload}}`` for every finished stage and evaluation."""
    return rundir.read_results(run_dir)


def update_results(run_dir, entry, payload):
    """Set an entry that belongs to no stage (``evaluate_ann``, ``evaluate_snn``)."""
    rundir.update_extra(run_dir, entry, payload)
    return read_results(run_dir)
