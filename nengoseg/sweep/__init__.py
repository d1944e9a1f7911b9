"""Sweeps and cross-validation: many ``nengoseg run`` trials, on Ray or one by one.

``nengoseg sweep --config FILE --grid KEY=V1,V2 [--grid ...]`` runs the whole pipeline
once per point of the grids' cross product; ``nengoseg cv --config FILE --folds K`` is
the sweep ``data.fold=0..K-1`` with ``data.split=kfold`` and ``data.n_folds=K``. A grid
value is read as YAML, like a ``--set`` value (``0.01``, ``true``, ``kfold``,
``[24, 24]``), and ``A..B`` is the integers A to B inclusive (``data.fold=0..4``).

Each trial is ``python -m nengoseg run --config FILE --run-dir SWEEP/trials/<slug>
--set ...`` (the sweep's ``--set`` overrides, then the trial's grid values) in a
process of its own, so every trial gets a fresh TensorFlow; its stdout and stderr go
to ``trial.log`` in its folder, and when it ends it writes ``trial.json`` there (status,
overrides, exit code, wall seconds, the last lines of stderr when it failed), one
atomic write. TensorFlow in a trial uses ``--cpus-per-trial`` threads (OMP_NUM_THREADS
and TF_NUM_INTRAOP_THREADS are set to it), on either backend.

Backends: ``ray`` (the default when Ray imports; ``pip install 'nengoseg[distributed]'``)
makes each trial one Ray core task asking for ``--cpus-per-trial`` CPUs, so Ray decides
how many run at once, and gathers them with ``ray.wait`` as they end (progress: finished,
running, failed, and an ETA from the mean trial time). Without ``--address`` (or
``RAY_ADDRESS``) it starts a new local Ray instance with every core of this machine, even
when ``ray start`` runs here (``--address auto`` joins that one). ``local`` runs the trials
one after another here, the same way.

Joining a cluster: start Ray on the nodes (``ray start --head`` on one, ``ray start
--address HEAD:6379`` on the others) and pass ``--address HEAD:6379`` (or set
``RAY_ADDRESS``); nothing else changes. Trials run on whichever node Ray picks, in the
driver's working folder and with the paths the driver gave, and write into the sweep
folder, where the driver reads their records back: on a cluster the sweep folder, the
config, the data and the working folder must be on a file system shared by every node,
at the same paths, and nengoseg must be installed in the same Python environment on
each node (a trial runs ``python -m nengoseg`` with the Python of the Ray worker).

Resume: rerunning the same sweep skips trials whose ``trial.json`` says ``ok`` (for the
same config file contents and overrides, with their ``results.json`` present) and runs
the others again; an unfinished ``nengoseg run`` continues from its finished stages.

Report (written atomically when the trials have ended, also after failures):
``SWEEP/sweep.json``, ``sweep.md`` and ``sweep.csv``: one row per trial with its grid
values and each stage's scores from its ``results.json`` (ANN: ``stages.ann.test``;
``converted_snn``, ``hybrid_snn``, ``loihi``: their ``scores``; the metrics among
Dice 2D/3D, IoU, PSNR and SSIM that the runs have), and the mean ± population standard
deviation of each stage's metrics over folds, for each combination of the grid values
other than ``data.fold`` (the three-stage paper's Table 1 layout). A failed trial is
listed with its exit code and error; the command then exits with status 1.
"""

from nengoseg.sweep.grid import FOLD_KEY, check_config_key, parse_grid, plan, yaml_text
from nengoseg.sweep.report import aggregate, aggregate_markdown, failure_line, stage_scores
from nengoseg.sweep.run import choose_backend, run_cv, run_sweep, run_trial

__all__ = ["FOLD_KEY", "aggregate", "aggregate_markdown", "check_config_key", "choose_backend",
           "failure_line", "parse_grid", "plan", "run_cv", "run_sweep", "run_trial",
           "stage_scores", "yaml_text"]
