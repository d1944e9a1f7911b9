"""Spiking-UNet's conversion ablation (its Table 3) on a run's trained ANN, by one command.

    .venv/bin/python scripts/spiking_unet_ablation.py --config configs/default.yaml \\
        [--run-dir runs/default] [--steps 10] [--epochs 2] [--method bptt] [--set KEY=VALUE]

For each normalisation across skip concatenations (``layer``-wise, ``connection``-wise;
`nengoseg.convert.skip_factors`) and each neuron (single-threshold IF with reset by
subtraction, multi-threshold IF; Spiking-UNet eq. 4-6), the run's ANN
(``RUN/ann/model.h5``, from ``nengoseg train-ann`` or ``nengoseg run``) is converted with
the paper's settings (99.9th-percentile factors from the config's calibration
examples, static input, no synapse, membranes from 0, the output accumulated over all
T steps) and scored on the config's evaluation subjects (``evaluate.max_subjects``, as the
run's own tables), then fine-tuned for ``--epochs``
epochs (0: none) and scored again, beside the ANN on the same subjects. Everything
goes through the Python API (`nengoseg.convert`, `SpikingModel.fit` / `evaluate`).

Fine-tuning: ``--method bptt`` (the three-stage paper's surrogate gradients through
time, default), ``spiking_flow`` (the paper's own method, `nengoseg.engine.flow`) or
``hybrid``, stated in the table's caption.

Writes ``RUN/ablation/ablation.md`` and ``ablation.json`` (atomically) and prints the
table.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    parser.add_argument("--steps", type=int, default=10, help="time steps T (paper: 10-50)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (0: none)")
    parser.add_argument("--method", choices=("bptt", "spiking_flow", "hybrid"), default="bptt")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-examples", type=int, default=256,
                        help="training examples per fine-tuning epoch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for nengoseg")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import tensorflow as tf

    import nengoseg as ns
    from nengoseg import config as nsconfig
    from nengoseg.atomic import write_json, write_text
    from nengoseg.errors import DataError
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.train.ann import make_loss
    from nengoseg.snn_stage import evaluation_part

    cfg = nsconfig.load_config(args.config, args.set)
    run_dir = Path(args.run_dir or Path("runs") / cfg["name"])
    ann_path = run_dir / "ann" / "model.h5"
    if not ann_path.is_file():
        raise DataError(f"{ann_path}: no trained ANN; run `nengoseg train-ann --config "
                        f"{args.config} --run-dir {run_dir}` first")
    if args.steps < 1 or args.epochs < 0:
        raise DataError("--steps must be >= 1 and --epochs >= 0")
    data = load_experiment_data(cfg)
    test, train, val = evaluation_part(cfg, data), data.train, data.val
    calibration = train.x[: cfg["evaluate"]["calibration_examples"]]
    loss = make_loss(cfg["train"], data.n_outputs)
    rows, started = [], time.time()
    ann_scores = None
    for scope in ("layer", "connection"):
        for neuron in ("if_subtract", "multi_threshold"):
            tf.keras.utils.set_random_seed(cfg["seed"])
            snn = ns.convert(str(ann_path), calibration, neuron_model=neuron, normalise="percentile",
                             percentile=99.9, skip_normalisation=scope, synapse=None,
                             n_steps=args.steps, readout_steps=args.steps, initial_voltage=0.0)
            if ann_scores is None:
                ann_scores = snn.evaluate(test, backend="ann")
            row = {"normalisation": scope, "neuron": neuron}
            row["converted"] = _scores(snn.evaluate(test))
            if args.epochs:
                snn.compile(tf.keras.optimizers.Adam(args.learning_rate), loss)
                validation = (val.x, val.y) if len(val) else None
                snn.fit(train.x, train.y, validation_data=validation, epochs=args.epochs,
                        method=args.method, max_examples=args.max_examples,
                        seed=cfg["seed"])
                row["fine_tuned"] = _scores(snn.evaluate(test))
            rows.append(row)
            print(_row_line(row), flush=True)
    result = {
        "config": args.config, "run_dir": str(run_dir), "n_steps": args.steps,
        "epochs": args.epochs, "method": args.method, "learning_rate": args.learning_rate,
        "max_examples": args.max_examples, "n_test_subjects": int(len(np.unique(test.groups))),
        "columns": columns(data.task, cfg["evaluate"]["table"]),
        "n_test_slices": int(len(test)), "ann": _scores(ann_scores), "rows": rows,
        "wall_s": round(time.time() - started, 1),
    }
    out = run_dir / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ablation.json", result)
    table = markdown(result)
    write_text(out / "ablation.md", table)
    print(table)
    print(f"written: {out / 'ablation.md'}, {out / 'ablation.json'}")


def columns(task, table="dice"):
    """``[(column name, score key)]`` of the table: PSNR and SSIM for denoising, F1 and JS
    per image for a pixel table (EM, retina), else Dice 3D and 2D."""
    if task == "denoising":
        return [("PSNR (dB)", "psnr"), ("SSIM", "ssim")]
    if table == "pixel":
        return [("F1", "dice_3d"), ("JS", "jaccard_3d")]
    return [("Dice 3D", "dice_3d"), ("Dice 2D", "dice_2d")]


def _scores(scores):
    keep = [f"{key}_{end}" for key in ("dice_2d", "dice_3d", "jaccard_3d", "psnr", "ssim")
            for end in ("mean", "std")] + ["mean_firing_rate_hz"]
    return {key: float(scores[key]) for key in keep if key in scores}


def _cell(scores, key="dice_3d"):
    return f"{scores[f'{key}_mean']:.3f} ± {scores[f'{key}_std']:.3f}"


def _row_line(row):
    tuned = f", fine-tuned {_cell(row['fine_tuned'], _first(row))}" if "fine_tuned" in row else ""
    return (f"{row['normalisation']}-wise, {row['neuron']}: converted "
            f"{_cell(row['converted'], _first(row))}{tuned}")


def _first(row):
    return "psnr" if "psnr_mean" in row["converted"] else "dice_3d"


def markdown(result):
    """The ablation table (the task's two scores, mean firing rate) as markdown."""
    tuned = result["epochs"] > 0
    cols = result.get("columns") or columns("segmentation")
    ann = ", ".join(f"{name} {_cell(result['ann'], key)}" for name, key in cols)
    caption = (f"Spiking-UNet ablation at T = {result['n_steps']} on {result['n_test_subjects']} "
               f"test subjects or images ({result['n_test_slices']} slices or tiles) of "
               f"`{result['config']}`, the ANN of `{result['run_dir']}`; ANN {ann}.")
    if tuned:
        caption += (f" Fine-tuned: {result['epochs']} epochs of {result['max_examples']} slices, "
                    f"{result['method']}, "
                    f"lr {result['learning_rate']:g}.")
    head = ("| normalisation | neuron | " + " | ".join(f"converted {n}" for n, _ in cols)
            + " | rate |")
    rule = "| --- | --- |" + " --- |" * (len(cols) + 1)
    if tuned:
        head += " " + " | ".join(f"fine-tuned {n}" for n, _ in cols) + " | rate |"
        rule += " --- |" * (len(cols) + 1)
    lines = [caption, "", head, rule]
    for row in result["rows"]:
        cells = [row["normalisation"], row["neuron"]]
        for stage in ("converted", "fine_tuned") if tuned else ("converted",):
            s = row[stage]
            cells += [_cell(s, key) for _, key in cols] + [f"{s['mean_firing_rate_hz']:.1f} Hz"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
