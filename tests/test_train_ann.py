"""The ANN stage through the CLI: a short real training, resume after a kill, user errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = """
name: tiny
seed: 1
data:
  dataset: hippocampus
  root: sample:hippocampus
  size: [24, 24]
  max_subjects: 8
  test_fraction: 0.25
  val_fraction: 0.15
model:
  kind: unet
  options: {{filters: 4, depth: 2, dropout: 0.0}}
train:
  loss: dice
  learning_rate: 0.01
  epochs: {epochs}
  batch_size: {batch}
"""


def nengoseg(*args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "nengoseg.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )


def write_config(tmp_path, epochs, batch=4):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(epochs=epochs, batch=batch))
    return path


def test_train_improves_dice_and_writes_artefacts(tmp_path):
    cfg = write_config(tmp_path, epochs=6, batch=8)
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(tmp_path / "run"))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    # no terminal here: tqdm's bars are off, one line per epoch with its time and ETA remains
    assert "epoch 6/6 (" in out and "ETA 00:00) loss=" in out and "dice=" in out
    assert "batch" not in err and "epochs:" not in err
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    ann = results["stages"]["ann"]
    history = json.loads((run / "ann" / "history.json").read_text())
    assert len(history["loss"]) == ann["epochs_run"] == 6
    assert history["loss"][-1] < history["loss"][0]
    assert history["dice"][-1] > history["dice"][0]
    assert ann["test"]["dice_3d_mean"] > 0.2  # a real, if tiny, segmentation
    assert (run / "ann" / "model.h5").exists() and (run / "config.yaml").exists()
    assert results["versions"]["nengo-dl"] == "3.6.0"
    # a rerun reuses the finished stage instead of training again
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "reusing" in out


def test_resume_after_kill_mid_epoch(tmp_path):
    cfg = write_config(tmp_path, epochs=4, batch=2)
    run = tmp_path / "run"
    state = run / "work" / "ann" / "checkpoint" / "state.json"
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run))
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 4, "the run was not killed mid-training"
    assert not (run / "ann" / "model.h5").exists()

    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"resuming after epoch {done}" in out
    assert f"epoch {done + 1}/4" in out and f"epoch {done}/4" not in out
    history = json.loads((run / "ann" / "history.json").read_text())
    assert len(history["loss"]) == 4
    assert json.loads((run / "results.json").read_text())["stages"]["ann"]["epochs_run"] == 4


@pytest.mark.parametrize(
    "content, expected",
    [
        ("train:\n  epochz: 3\n", "unknown key 'train.epochz'"),
        ("train:\n  loss: focal\n", "bad value 'focal' for 'train.loss'"),
        ("data:\n  root: /no/such/folder\n", "/no/such/folder does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, content, expected):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(tmp_path / "r"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("nengoseg")]
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in err


def test_help_everywhere():
    for args in (["--help"], ["train-ann", "--help"]):
        proc = nengoseg(*args)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "usage: nengoseg" in out
