"""``nengoseg run``: the whole pipeline of one config, stage after stage.

ANN training -> conversion -> hybrid co-training -> Loihi emulator deployment on
a subset -> report and figures. Every stage keeps its output in the run folder
and is skipped when that output is already complete, so a rerun after an
interruption continues with the stage that did not finish (and that stage
resumes from its last checkpoint).
"""

import json
import time

from nengoseg import figures
from nengoseg.atomic import write_json
from nengoseg.experiment_data import load_experiment_data
from nengoseg.report import write_report
from nengoseg.snn_stage import convert_stage


def _stages(cfg):
    from nengoseg.train.ann import train_ann

    stages = [
        ("ann", lambda run_dir, data: train_ann(cfg, run_dir, data)),
        ("convert", lambda run_dir, data: convert_stage(cfg, run_dir, data, reuse=True)),
    ]
    if cfg["cotrain"]["enabled"]:
        from nengoseg.train.cotrain import cotrain_stage

        stages.append(("cotrain", lambda run_dir, data: cotrain_stage(cfg, run_dir, data)))
    if cfg["loihi"].get("enabled", True):
        from nengoseg.deploy import deploy_stage

        stages.append(
            ("deploy", lambda run_dir, data: deploy_stage(cfg, run_dir, data, reuse=True))
        )
    return stages


def run_pipeline(cfg, run_dir, verbose=True):
    """Run (or continue) every stage of ``cfg`` in ``run_dir``; return the report table."""
    data = load_experiment_data(cfg)
    timings_path = run_dir / "timings.json"
    # wall seconds spent in each stage, summed over the invocations of this command (an
    # interrupted stage counts its time before and after; reusing a finished one adds ~0 s)
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for name, stage in _stages(cfg):
        if verbose:
            print(f"== {name}", flush=True)
        started = time.perf_counter()
        stage(run_dir, data)
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 1)
        write_json(timings_path, timings)
    started = time.perf_counter()
    made = figures.all_figures(run_dir)
    table = write_report(run_dir, timings=timings, figures=made)
    timings["report"] = round(time.perf_counter() - started, 1)
    write_json(timings_path, timings)
    return table
