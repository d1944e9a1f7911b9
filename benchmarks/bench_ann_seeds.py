"""Does the ANN stage of a config reach a live network for every seed?

Runs ``nengoseg train-ann`` for each seed in its own run folder (a process each,
so TensorFlow starts clean) and prints one row per seed: the attempts the
collapse guard needed, whether any collapsed, and the validation and test Dice.

    .venv/bin/python benchmarks/bench_ann_seeds.py --config configs/hippocampus_unet.yaml \
        --seeds 0 1 2 3 4 --epochs 5 --out runs/seeds
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def train(config, seed, epochs, out, extra):
    run_dir = Path(out) / f"seed{seed}"
    command = [sys.executable, "-m", "nengoseg.cli", "train-ann", "--config", config,
               "--run-dir", str(run_dir), "--set", f"seed={seed}",
               "--set", f"train.epochs={epochs}", *sum((["--set", e] for e in extra), [])]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return {"seed": seed, "error": proc.stderr.strip().splitlines()[-1], "seconds": seconds}
    record = json.loads((run_dir / "ann" / "stage.json").read_text())["results"]["ann"]
    return {
        "seed": seed,
        "attempts": len(record["attempts"]),
        "collapses": [a["collapse"] for a in record["attempts"] if a["collapse"]],
        "epochs": record["epochs_run"],
        "val_dice_2d": record.get("val", {}).get("dice_2d_mean"),
        "test_dice_3d": record["test"]["dice_3d_mean"],
        "seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    print(f"{args.config}: ANN stage, {args.epochs} epochs, seeds {args.seeds}")
    print("seed  attempts  collapsed attempts                epochs  val Dice 2D  test Dice 3D  seconds")
    rows = []
    for seed in args.seeds:
        row = train(args.config, seed, args.epochs, args.out, args.set)
        rows.append(row)
        if "error" in row:
            print(f"{seed:>4}  failed: {row['error']}", flush=True)
            continue
        collapses = "; ".join(row["collapses"]) or "none"
        print(f"{seed:>4}  {row['attempts']:>8}  {collapses[:32]:<32}  {row['epochs']:>6}  "
              f"{row['val_dice_2d'] or float('nan'):>11.4f}  {row['test_dice_3d']:>12.4f}  "
              f"{row['seconds']:>7.0f}", flush=True)
    live = [r for r in rows if "error" not in r and r["test_dice_3d"] > 0.1]
    print(f"live networks: {len(live)} of {len(rows)}")
    return 0 if len(live) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
