"""``nengoseg run``: the whole pipeline of one config, stage after stage.

ANN training -> conversion -> hybrid co-training -> Loihi emulator deployment on
a subset -> report and figures. Every stage keeps its output in its own folder of
the run (`nengoseg.rundir`) and is reused when it was made with the same settings
and data, so a rerun after an interruption continues with the stage that did not
finish (and that stage resumes from its last checkpoint). A finished stage made
with other settings stops the run before any work, naming the keys that changed,
unless ``force`` redoes it and the stages after it.
"""

import json
import time

from nengoseg import figures, rundir
from nengoseg.atomic import write_json
from nengoseg.experiment_data import load_experiment_data
from nengoseg.report import write_report
from nengoseg.snn_stage import convert_stage


def stage_names(cfg):
    """The stages ``nengoseg run`` runs for ``cfg``, in order."""
    names = ["ann", "convert"]
    if cfg["cotrain"]["enabled"]:
        names.append("cotrain")
    if cfg["loihi"].get("enabled", True):
        names.append("deploy")
    return names


def _stage_function(name):
    if name == "ann":
        from nengoseg.train.ann import train_ann

        return train_ann
    if name == "convert":
        return convert_stage
    if name == "cotrain":
        from nengoseg.train.cotrain import cotrain_stage

        return cotrain_stage
    from nengoseg.deploy import deploy_stage

    return deploy_stage


def check_stages(cfg, run_dir, data, names, forced=()):
    """Before any work: each finished stage of ``names`` was made with this config
    and data, or is in ``forced`` (raises `rundir.StageChanged` otherwise)."""
    fingerprint = rundir.data_fingerprint(data)
    for name in names:
        expected = rundir.provenance(cfg, name, fingerprint)
        rundir.check_current(run_dir, name, expected, force=name in forced)


def run_pipeline(cfg, run_dir, verbose=True, force=False, data=None):
    """Run (or continue) every stage of ``cfg`` in ``run_dir``; return the report table."""
    data = load_experiment_data(cfg) if data is None else data
    names = stage_names(cfg)
    check_stages(cfg, run_dir, data, names, forced=names if force else ())
    timings_path = run_dir / "timings.json"
    # wall seconds spent in each stage, summed over the invocations of this command (an
    # interrupted stage counts its time before and after; reusing a finished one adds ~0 s)
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for name in names:
        if verbose:
            print(f"== {name}", flush=True)
        started = time.perf_counter()
        _stage_function(name)(cfg, run_dir, data, verbose=verbose, force=force)
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 1)
        write_json(timings_path, timings)
    started = time.perf_counter()
    made = figures.all_figures(run_dir)
    table = write_report(run_dir, timings=timings, figures=made)
    timings["report"] = round(time.perf_counter() - started, 1)
    write_json(timings_path, timings)
    return table
