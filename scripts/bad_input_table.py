"""Print the README's "Bad input" table: each bad input, the exit status and the message.

Makes a tiny run on the shipped sample in a temporary folder (about a minute),
then runs every case as a user would, through the ``nengoseg`` command, and prints
one markdown row per case with the test that checks it.

    .venv/bin/python scripts/bad_input_table.py
"""

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = """name: tiny
seed: 2
data:
  root: sample:hippocampus
  size: [24, 24]
  max_subjects: 6
  test_fraction: 0.34
  val_fraction: 0.0
model:
  kind: unet
  options: {filters: 4, depth: 2, dropout: 0.0}
train: {learning_rate: 0.01, epochs: 2, batch_size: 8, monitor: loss}
convert: {scale_firing_rates: 50, synapse: 0.005, n_steps: 8}
cotrain: {enabled: false}
loihi: {enabled: false}
evaluate: {max_subjects: 1, minibatch_size: 8}
"""


def nengoseg(*args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "nengoseg.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("nengoseg:")]
    return proc.returncode, (lines[-1] if lines else proc.stderr.strip()[-200:])


def cases(tmp, cfg, run):
    """(what the user did, command arguments, the test that checks it)."""
    sample = REPO / "nengoseg/data/sample/hippocampus"
    volume = sample / "imagesTr" / "hippocampus_001.nii.gz"
    (tmp / "afile").write_text("x")
    (tmp / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp / "broken.yaml").write_text("name: tiny\ndata: [1, 2\n")
    truncated = tmp / "truncated_run"
    shutil.copytree(run, truncated)
    record = truncated / "snn" / "stage.json"
    record.write_bytes(record.read_bytes()[:50])
    (tmp / "in").mkdir()
    half = tmp / "in" / "half.nii.gz"
    half.write_bytes(gzip.compress(gzip.decompress(volume.read_bytes())[:400]))
    rf = "test_run_folder.py::"
    same = ["--config", cfg, "--run-dir", run]
    return [
        ("config change on a finished stage (data.normalise, train.epochs)",
         ["train-ann", *same, "--set", "data.normalise=zero_mean", "--set", "train.epochs=3"],
         rf + "test_changed_preprocessing_stops_before_work_and_keeps_config"),
        ("a later stage after a data.size change", ["convert", *same, "--set", "data.size=[16,16]"],
         rf + "test_later_stage_checks_the_stages_it_builds_on"),
        ("a bad value for a conversion setting", ["convert", *same, "--set", "convert.n_steps=ten"],
         rf + "test_later_stage_checks_the_stages_it_builds_on"),
        ("deploying to the board without NxSDK", ["deploy", *same, "--target", "loihi"],
         "test_deploy.py::test_cli_deploy_bad_target_is_one_line"),
        ("1e9 simulation steps", ["convert", *same, "--set", "convert.n_steps=1000000000"],
         rf + "test_sizes_that_cannot_fit_fail_before_any_work"),
        ("a 100000 x 100000 input", ["run", "--config", cfg, "--run-dir", tmp / "big",
                                    "--set", "data.size=[100000,100000]"],
         rf + "test_sizes_that_cannot_fit_fail_before_any_work"),
        ("100000 filters", ["run", "--config", cfg, "--run-dir", tmp / "big",
                            "--set", "model.options={filters: 100000, depth: 2}"],
         rf + "test_sizes_that_cannot_fit_fail_before_any_work"),
        ("an unknown key in a section only a later stage reads",
         ["train-ann", "--config", cfg, "--run-dir", tmp / "fresh", "--set", "loihi.bogus=1"],
         rf + "test_bad_keys_anywhere_fail_before_any_work"),
        ("an unknown model option", ["train-ann", "--config", cfg, "--run-dir", tmp / "fresh",
                                     "--set", "model.options={filterz: 3}"],
         rf + "test_bad_keys_anywhere_fail_before_any_work"),
        ("a run name that leaves runs/", ["train-ann", "--config", cfg, "--set", "name=../x"],
         rf + "test_bad_keys_anywhere_fail_before_any_work"),
        ("--run-dir that is a file", ["train-ann", "--config", cfg, "--run-dir", tmp / "afile"],
         rf + "test_run_dir_that_is_a_file"),
        ("a truncated stage record", ["run", "--config", cfg, "--run-dir", truncated],
         rf + "test_truncated_state_files_are_one_line"),
        ("a model trained for other inputs",
         ["evaluate", "--config", cfg, "--run-dir", tmp / "other", "--engine", "ann",
          "--checkpoint", run / "ann" / "model.h5", "--set", "data.size=[16,16]"],
         rf + "test_a_model_for_other_inputs_is_one_line"),
        ("a config that is not UTF-8", ["train-ann", "--config", tmp / "latin1.yaml"],
         "test_fuzz_config.py"),
        ("a YAML syntax error", ["train-ann", "--config", tmp / "broken.yaml"],
         "test_fuzz_config.py"),
        ("a truncated NIfTI volume", ["segment", half, tmp / "out.nii.gz", "--model", run],
         "test_fuzz_loaders.py"),
        ("segmenting into the data folder",
         ["segment", volume, sample / "labelsTr" / "new.nii.gz", "--model", run],
         "test_segment.py"),
    ]


def main():
    tmp = Path(tempfile.mkdtemp(prefix="nengoseg-bad-input-"))
    try:
        cfg, run = tmp / "tiny.yaml", tmp / "run"
        cfg.write_text(TINY)
        status, message = nengoseg("run", "--config", cfg, "--run-dir", run)
        if status != 0:
            sys.exit(f"the tiny run failed: {message}")
        print("| bad input | exit | message | test |")
        print("| --- | --- | --- | --- |")
        for what, args, test in cases(tmp, cfg, run):
            status, message = nengoseg(*args, cwd=tmp)
            message = message.replace(str(tmp), "TMP").replace(str(REPO), "REPO")
            message = message.replace("|", "\\|")
            print(f"| {what} | {status} | `{message}` | `{test}` |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
