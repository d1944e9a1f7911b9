"""The ``nengoseg sweep`` and ``nengoseg cv`` subcommands (added to the CLI's parser)."""

import sys
from pathlib import Path

EXIT_TRIAL_FAILED = 1  # the CLI's status for an internal error: a trial failed


def cmd_sweep(args):
    from nengoseg.sweep import parse_grid, run_sweep

    report = run_sweep(args.config, parse_grid(args.grid), from_run=args.from_run,
                       **_sweep_options(args))
    return _sweep_status(report)


def cmd_cv(args):
    from nengoseg.sweep import run_cv

    report = run_cv(args.config, args.folds, **_sweep_options(args))
    return _sweep_status(report)


def _sweep_options(args):
    return {"sweep_dir": args.sweep_dir, "overrides": args.set, "backend": args.backend,
            "address": args.address, "cpus_per_trial": args.cpus_per_trial}


def _sweep_status(report):
    """Print the mean ± std table; 1 (after one line naming them) when trials failed."""
    from nengoseg.sweep import aggregate_markdown, failure_line

    print(aggregate_markdown(report))
    print(f"sweep report: {Path(report['sweep_dir']) / 'sweep.md'} (and sweep.json, sweep.csv)")
    failed = failure_line(report)
    if failed:
        print(f"nengoseg: error: {failed}", file=sys.stderr)
        return EXIT_TRIAL_FAILED
    return 0


def _add_sweep_args(parser, default_dir):
    parser.add_argument("--config", required=True, help="experiment YAML file (see configs/)")
    parser.add_argument("--sweep-dir", help=f"folder for the trials and the report "
                        f"(default: {default_dir})")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value in every trial, e.g. --set train.epochs=5 (repeatable)",
    )
    parser.add_argument("--backend", choices=("ray", "local"),
                        help="ray: one Ray task per trial; local: one trial after another "
                        "here (default: ray when it is installed, else local)")
    parser.add_argument("--address", help="join the Ray cluster at this address (default: "
                        "RAY_ADDRESS, else start Ray on this machine)")
    parser.add_argument("--cpus-per-trial", type=int, default=1, metavar="N",
                        help="CPUs Ray reserves for each trial, and TensorFlow's threads in "
                        "it (default: 1)")


def add_sweep_commands(commands):
    """Add ``sweep`` and ``cv`` to the CLI's subparsers."""
    sweep = commands.add_parser(
        "sweep",
        help="'nengoseg run' for every point of a grid of config values, on Ray or one by one",
        description="Run the whole pipeline ('nengoseg run', each in its own process and run "
        "folder SWEEP_DIR/trials/<key=value...>) for every combination of the --grid values, "
        "as Ray tasks (--backend ray, the default when Ray is installed: a local Ray instance "
        "on every core, or the cluster at --address / RAY_ADDRESS, whose nodes must share the "
        "sweep folder, config and data) or one after another (--backend local). Rerunning "
        "skips the trials that finished (trial.json) and continues the others. Writes "
        "SWEEP_DIR/sweep.md, sweep.json and sweep.csv: each trial's scores and their mean ± "
        "std over data.fold for each combination of the other grid values; exits 1 when a "
        "trial failed (listed with its error).",
    )
    _add_sweep_args(sweep, "runs/<config name>_sweep")
    sweep.add_argument(
        "--grid", action="append", required=True, metavar="KEY=V1,V2,...",
        help="a config key and its values (YAML, as --set; A..B for the integers A to B), "
        "e.g. --grid data.fold=0..4 --grid train.learning_rate=0.001,0.01 (repeatable: the "
        "trials are the cross product)",
    )
    sweep.add_argument(
        "--from-run", metavar="RUN",
        help="start every trial from a copy of RUN's trained ANN (grid over convert, "
        "evaluate, cotrain or loihi keys: thresholds, time steps, neuron models, ...)",
    )
    sweep.set_defaults(func=cmd_sweep)

    cv = commands.add_parser(
        "cv",
        help="k-fold cross-validation: 'nengoseg sweep' over data.fold=0..K-1",
        description="K-fold cross-validation by subject: 'nengoseg run' for each fold "
        "(data.split=kfold, data.n_folds=K, data.fold=0..K-1), on Ray or one after another "
        "as 'nengoseg sweep' does, and the mean ± std over folds of each stage's scores in "
        "SWEEP_DIR/sweep.md (and sweep.json, sweep.csv).",
    )
    _add_sweep_args(cv, "runs/<config name>_cv")
    cv.add_argument("--folds", type=int, default=5, metavar="K",
                    help="number of folds, K >= 2 (default: 5)")
    cv.set_defaults(func=cmd_cv)
