"""The ``nengoseg`` command.

Each subcommand reads a config (``--config FILE``) and works in a run folder
(``--run-dir``, by default ``runs/<config name>``). User errors print one line
and exit with status 2; an interrupted command exits 130 and continues where it
stopped when run again.
"""

import argparse
import os
import sys
from pathlib import Path

from nengoseg.backends import CHOICES as SEGMENT_ENGINES
from nengoseg.backends import SIMULATORS, SNN
from nengoseg.errors import NengosegError
from nengoseg.rundir import stage_dir
from nengoseg.sweep.commands import add_sweep_commands

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


def _prepare(args, stages=(), forced=()):
    """Load and check the config, the run folder and the data, then record config.yaml.

    Everything that can be checked before work starts is: the whole config (every
    section), the memory and disk the run needs, the run folder, and whether the
    finished ``stages`` were made with this config and data (``forced`` ones may
    differ: they will be redone). config.yaml is written only when all of it passes.
    """
    from nengoseg import preflight, rundir
    from nengoseg.atomic import write_text
    from nengoseg.config import dump_config, load_config

    cfg = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg["name"]
    rundir.check_writable(run_dir)
    _quiet_tensorflow()
    size = preflight.check_config(cfg)
    preflight.check_resources(cfg, run_dir, size)
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.pipeline import check_stages

    data = load_experiment_data(cfg)
    check_stages(cfg, run_dir, data, stages, forced)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_config(cfg))
    return cfg, run_dir, data


def cmd_run(args):
    from nengoseg.config import load_config
    from nengoseg.pipeline import run_pipeline, stage_names

    names = stage_names(load_config(args.config, args.set))
    cfg, run_dir, data = _prepare(args, names, names if args.force else ())
    table = run_pipeline(cfg, run_dir, force=args.force, data=data)
    print(table)
    print(f"report: {run_dir / 'report.md'}  (figures in {run_dir / 'figures'})")


def cmd_train_ann(args):
    cfg, run_dir, data = _prepare(args, ["ann"], ["ann"] if args.force else ())
    from nengoseg.train import train_ann

    results = train_ann(cfg, run_dir, data, force=args.force)
    print(f"results: {run_dir / 'results.json'}")
    return results


def cmd_convert(args):
    if args.engine:
        args.set = [*args.set, f"evaluate.engine={args.engine}"]
    upstream = [] if args.checkpoint else ["ann"]
    cfg, run_dir, data = _prepare(args, upstream + ["convert"], ["convert"] if args.force else ())
    from nengoseg.report import write_report
    from nengoseg.snn_stage import convert_stage

    convert_stage(cfg, run_dir, data, checkpoint=args.checkpoint, force=args.force)
    print(write_report(run_dir))
    print(f"results: {run_dir / 'results.json'}, conversion: {stage_dir(run_dir, 'convert')}")


def cmd_cotrain(args):
    if args.engine:
        args.set = [*args.set, f"cotrain.engine={args.engine}"]
    upstream = [] if args.checkpoint else ["ann", "convert"]
    cfg, run_dir, data = _prepare(args, upstream + ["cotrain"], ["cotrain"] if args.force else ())
    from nengoseg.report import write_report
    from nengoseg.train.cotrain import cotrain_stage

    cotrain_stage(cfg, run_dir, data, checkpoint=args.checkpoint, force=args.force)
    print(write_report(run_dir))
    print(f"results: {run_dir / 'results.json'}, co-trained SNN: "
          f"{stage_dir(run_dir, 'cotrain')}")


def cmd_evaluate(args):
    from nengoseg import preflight, rundir
    from nengoseg.config import load_config
    from nengoseg.errors import ConfigError

    if args.engine in SIMULATORS:
        args.set = [*args.set, f"evaluate.engine={args.engine}"]
    if args.n_steps is not None:
        if args.n_steps < 1:
            raise ConfigError(f"--n-steps must be an integer >= 1, got {args.n_steps}")
        args.set = [*args.set, f"convert.n_steps={args.n_steps}"]
    cfg = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg["name"]
    rundir.check_writable(run_dir)
    _use_trained_preprocessing(cfg, run_dir)
    if args.data:
        cfg["data"]["root"] = args.data
        cfg["data"]["images_dir"] = cfg["data"]["labels_dir"] = None
    _quiet_tensorflow()
    preflight.check_resources(cfg, run_dir, preflight.check_config(cfg))
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.report import write_report
    from nengoseg.snn_stage import evaluate_checkpoint

    data = load_experiment_data(cfg)
    evaluate_checkpoint(
        cfg, run_dir, data, "ann" if args.engine == "ann" else "snn", checkpoint=args.checkpoint,
        n_steps=args.n_steps,
    )
    print(write_report(run_dir))
    print(f"results: {run_dir / 'results.json'}")


# the data keys that define how inputs are prepared for a trained network
PREPROCESSING = ("dataset", "normalise", "task", "slice_axis", "size")


def _use_trained_preprocessing(cfg, run_dir):
    """Prepare inputs as the run's ANN was trained (its own record), not as a later edit says."""
    from nengoseg import rundir

    record = rundir.read_record(run_dir, "ann")
    if record is None:
        return
    trained = record["provenance"]["config"]["data"]
    for key in PREPROCESSING:
        if cfg["data"][key] != trained[key]:
            print(f"nengoseg: note: data.{key}={trained[key]!r} as the run's ANN was trained "
                  f"(the config says {cfg['data'][key]!r})", file=sys.stderr)
            cfg["data"][key] = trained[key]


def cmd_latency(args):
    from nengoseg import preflight, rundir
    from nengoseg.config import load_config
    from nengoseg.errors import ConfigError

    if any(t < 1 for t in args.steps):
        raise ConfigError(f"--steps must be integers >= 1, got {args.steps}")
    cfg = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg["name"]
    rundir.check_writable(run_dir)
    _use_trained_preprocessing(cfg, run_dir)
    _quiet_tensorflow()
    preflight.check_resources(cfg, run_dir, preflight.check_config(cfg))
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.latency import latency_report, latency_table

    data = load_experiment_data(cfg)
    payload = latency_report(cfg, run_dir, data, steps=args.steps)
    print(latency_table(payload))
    print(f"latency report: {run_dir / 'latency.md'}, {run_dir / 'latency.json'}, "
          f"{run_dir / 'figures' / 'dice_vs_T.png'}")


def cmd_latency_merge(args):
    from nengoseg.latency import latency_table, merge_reports

    payload = merge_reports(args.runs, Path(args.out))
    print(latency_table(payload))
    print(f"merged latency report: {Path(args.out) / 'latency.md'}, "
          f"{Path(args.out) / 'figures' / 'dice_vs_T.png'}")


def cmd_deploy(args):
    from nengoseg.loihi.run import check_target

    if args.target is not None:
        check_target(args.target)  # a bad or unavailable target fails before any work
        args.set = [*args.set, f"loihi.target={args.target}"]
    if args.n_images is not None:
        if args.n_images < 1:
            from nengoseg.errors import ConfigError

            raise ConfigError(f"--n-images must be an integer >= 1, got {args.n_images}")
        args.set = [*args.set, f"loihi.n_images={args.n_images}"]
    cfg, run_dir, data = _prepare(args, ["ann", "convert", "deploy"],
                                  ["deploy"] if args.force else ())
    from nengoseg.deploy import deploy_stage
    from nengoseg.report import write_report

    deploy_stage(cfg, run_dir, data, force=args.force)
    print(write_report(run_dir))
    print(f"results: {run_dir / 'results.json'} (stage 'loihi'), resource report: "
          f"{stage_dir(run_dir, 'deploy') / 'resources.md'}")


def cmd_segment(args):
    _quiet_tensorflow()
    from nengoseg.segment import segment_paths

    segment_paths(args.model, args.input, args.output, engine=args.engine,
                  overwrite=args.overwrite, skip_existing=args.skip_existing, overlap=args.overlap)


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_config_args(parser, force=True):
    parser.add_argument("--config", required=True, help="experiment YAML file (see configs/)")
    parser.add_argument(
        "--run-dir", help="run folder for outputs and checkpoints (default: runs/<config name>)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )
    if force:
        parser.add_argument(
            "--force", action="store_true",
            help="redo finished stages that were made with other settings, and the stages "
            "after them (without it, such a run stops and names the keys that changed)",
        )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nengoseg",
        description="Keras segmentation networks as spiking networks: "
        "ANN training, NengoDL conversion, hybrid co-training, Loihi deployment.",
    )
    from nengoseg import __version__

    parser.add_argument("--version", action="version", version=f"nengoseg {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="the whole pipeline: ANN, conversion, co-training, Loihi emulator, report",
        description="Train the config's ANN, convert it to a spiking network, co-train "
        "it (spikes forward, rate gradients backward), score all three, deploy it on the "
        "Loihi emulator for a subset and write report.md with the table and figures. "
        "Each stage reuses what a previous run of the same command already finished, so "
        "rerunning after an interruption continues where it stopped.",
    )
    _add_config_args(run)
    run.set_defaults(func=cmd_run)

    train = commands.add_parser(
        "train-ann",
        help="train the config's Keras network (resumes an interrupted run)",
        description="Train the Keras network a config describes, with a checkpoint per "
        "epoch; rerunning the same command resumes from the last finished epoch. "
        "Prints and writes the test metrics (results.json in the run folder).",
    )
    _add_config_args(train)
    train.set_defaults(func=cmd_train_ann)

    conv = commands.add_parser(
        "convert",
        help="convert the trained ANN to a spiking network and score both",
        description="Convert the run's ANN (or --checkpoint) with the NengoDL Converter "
        "and the config's `convert` settings, save the spiking network's description in "
        "RUN/snn/, simulate it (the time-batched engine, or NengoDL with --engine nengo-dl) and "
        "write the ANN vs SNN table (results.json, report.md).",
    )
    _add_config_args(conv)
    conv.add_argument("--checkpoint", help="a Keras .h5 model (default: RUN/ann/model.h5)")
    conv.add_argument(
        "--engine", choices=SIMULATORS,
        help="the SNN simulator that scores it (default: the config's evaluate.engine)",
    )
    conv.set_defaults(func=cmd_convert)

    cot = commands.add_parser(
        "cotrain",
        help="fine-tune the converted SNN: spikes forward, rate gradients (or BPTT) backward",
        description="Hybrid ANN-SNN co-training: the forward pass runs the spiking network "
        "(cotrain.n_steps steps, the synapse), the backward pass the rate neurons' gradients "
        "(cotrain.method: bptt instead backpropagates through time with the triangle surrogate, "
        "in the engine); "
        "optional firing-rate regularisation, ReduceLROnPlateau, early stopping and a "
        "checkpoint per epoch (rerunning the command resumes). Starts from RUN/snn (nengoseg "
        "convert), else RUN/ann/model.h5 converted on the fly, or --checkpoint; writes the "
        "co-trained SNN to RUN/hybrid (score it with `nengoseg evaluate --checkpoint RUN/hybrid`).",
    )
    _add_config_args(cot)
    cot.add_argument(
        "--checkpoint", help="a Keras .h5 ANN or a conversion folder (default: RUN/snn, else RUN/ann/model.h5)"
    )
    cot.add_argument(
        "--engine", choices=SIMULATORS,
        help="the simulator trained (default: the config's cotrain.engine)",
    )
    cot.set_defaults(func=cmd_cotrain)

    ev = commands.add_parser(
        "evaluate",
        help="score an ANN or a converted SNN on a data folder",
        description="Score the ANN (a Keras .h5 file) or the SNN (a conversion folder "
        "written by `nengoseg convert`) on the config's evaluation split, or on the "
        "data in --data; writes results.json and report.md in the run folder.",
    )
    _add_config_args(ev, force=False)
    ev.add_argument(
        "--engine", choices=("ann", SNN, *SIMULATORS), default=SNN,
        help="what to run: the ANN, or the SNN (snn: with the config's evaluate.engine; "
        "engine / nengo-dl: with that simulator) (default: snn)",
    )
    ev.add_argument(
        "--checkpoint",
        help="ANN: a Keras .h5 file (default RUN/ann/model.h5); SNN: a conversion folder (default RUN/snn)",
    )
    ev.add_argument("--data", help="data folder to score instead of the config's data.root")
    ev.add_argument("--n-steps", type=int, help="simulation steps (default: the conversion's n_steps)")
    ev.set_defaults(func=cmd_evaluate)

    lat = commands.add_parser(
        "latency",
        help="Dice, firing rate and energy against the number of time steps",
        description="Run the run's converted and co-trained SNNs for each number of steps T "
        "(read out over all T steps) on the config's evaluation examples, beside the ANN: Dice "
        "3D and 2D, mean firing rate, synaptic operations and energy per inference on "
        "KerasSpiking's devices (ANN on CPU/GPU, SNN on Loihi/SpiNNaker). Writes "
        "RUN/latency.md, RUN/latency.json and RUN/figures/dice_vs_T.png.",
    )
    _add_config_args(lat, force=False)
    lat.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32, 64, 100],
                     metavar="T", help="numbers of time steps (default: 4 8 16 32 64 100)")
    lat.set_defaults(func=cmd_latency)

    merge = commands.add_parser(
        "latency-merge",
        help="one latency table and figure from the latency reports of several runs",
        description="Merge RUN/latency.json of each run folder (made by 'nengoseg latency' on "
        "the same held-out subjects) into OUT/latency.md, OUT/latency.json and "
        "OUT/figures/dice_vs_T.png; rows are labelled with their run folder's name.",
    )
    merge.add_argument("runs", nargs="+", metavar="RUN", help="run folders with latency.json")
    merge.add_argument("--out", required=True, help="folder for the merged report")
    merge.set_defaults(func=cmd_latency_merge)

    dep = commands.add_parser(
        "deploy",
        help="run the latest SNN on nengo-loihi (emulator by default) and compare with NengoDL",
        description="Rewrite the run's co-trained (else converted) SNN for nengo-loihi, choose "
        "block shapes, run --n-images evaluation examples on the Loihi emulator (target sim) "
        "or the board (target loihi, needs NxSDK) and in NengoDL, and write results.json "
        "(stage 'loihi': scores, agreement, firing rates, energy) and RUN/loihi/resources.md.",
    )
    _add_config_args(dep)
    dep.add_argument("--target", help="sim (the emulator, default) or loihi (the board)")
    dep.add_argument("--n-images", type=int, help="evaluation examples to run (default: loihi.n_images)")
    dep.set_defaults(func=cmd_deploy)

    add_sweep_commands(commands)

    seg = commands.add_parser(
        "segment",
        help="segment NIfTI volumes (hippocampus runs) or 2D images (drive, isbi2012 runs) "
        "with a trained run",
        description="Segment what the run was trained on, prepared as its ANN was trained, "
        "with overlapping tiles of the training size (inputs of any size, nothing cropped). "
        "hippocampus runs: a .nii/.nii.gz volume, slice by slice, into a uint8 NIfTI mask "
        "with the input's shape, affine and header (marked 'nengoseg mask' in its descrip). "
        "drive and isbi2012 runs: a 2D .png/.tif/.tiff/.gif/.jpg/.jpeg image (e.g. the DRIVE "
        "test half's images/NN_test.tif) into a uint8 PNG mask of the image's size, 0 = "
        "background and 255 = the class trained for (DRIVE: vessel; ISBI: data.foreground), "
        "marked 'nengoseg mask' in its Description text; a DRIVE image with mask/NN_test_mask.gif "
        "next to its images/ folder is cleared outside that field of view. INPUT may be a "
        "folder; OUTPUT is then a folder (created if missing; 2D images NAME.ext become "
        "NAME.png): every file is tried and failures are listed at the end. Outputs are never "
        "written into data folders, and only masks nengoseg wrote are ever replaced "
        "(--overwrite) or kept (--skip-existing).",
    )
    seg.add_argument("input", metavar="INPUT",
                     help="a .nii/.nii.gz volume (hippocampus runs), a 2D image (drive, "
                     "isbi2012 runs), or a folder of them")
    seg.add_argument("output", metavar="OUTPUT",
                     help="the mask file to write (.nii.gz/.nii, or .png for 2D images), or a "
                     "folder")
    seg.add_argument("--model", required=True, metavar="RUN_DIR", help="a run folder")
    seg.add_argument(
        "--engine", choices=SEGMENT_ENGINES, default="ann",
        help="ann: the Keras network; snn: the co-trained (else converted) spiking network on "
        "the time-batched engine (engine; nengo-dl: on NengoDL, the reference); loihi: on the "
        "Loihi emulator (default: ann). The backend used is printed.",
    )
    existing = seg.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace existing masks that nengoseg wrote (never other files)")
    existing.add_argument("--skip-existing", action="store_true",
                          help="keep existing masks this engine and model wrote (resume a folder)")
    seg.add_argument("--overlap", type=float, default=0.5, metavar="FRACTION",
                     help="overlap of neighbouring tiles, 0 <= FRACTION < 1 (default: 0.5)")
    seg.set_defaults(func=cmd_segment)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()  # before anything imports TensorFlow
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("nengoseg: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # every error one line; the traceback behind --debug
        if args.debug:
            raise
        message, status = describe_error(err)
        print(f"nengoseg: error: {message}", file=sys.stderr)
        return status
    # a command may return its exit status (sweep, cv: 1 when a trial failed)
    return status if type(status) is int else 0


def describe_error(err):
    """``(one-line message, exit status)`` for an exception that reached the CLI."""
    if isinstance(err, NengosegError):
        return _one_line(str(err)), EXIT_USER_ERROR
    if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
        return ("out of memory"
                + (f" ({_one_line(str(err))[:160]})" if str(err) else "")
                + "; use smaller minibatches (train.batch_size, evaluate.minibatch_size, "
                "cotrain.batch_size), fewer steps or a smaller data.size", EXIT_USER_ERROR)
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}", EXIT_USER_ERROR
    return (f"internal error {type(err).__name__}: {_one_line(str(err))[:300]} "
            "(rerun with --debug for the traceback, and please report it)", EXIT_INTERNAL_ERROR)


def _one_line(text):
    return " ".join(str(text).split())


if __name__ == "__main__":
    sys.exit(main())
