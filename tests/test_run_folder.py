"""A run folder that never lies: provenance, atomic stages, fail-fast checks, one-line errors."""

import json
import os
import signal
import time

import numpy as np
import pytest
import yaml

from nengoseg import atomic, cli, rundir
from nengoseg.errors import NengosegError
from test_cli_snn import TINY
from test_train_ann import nengoseg

OFF = ["--set", "cotrain.enabled=false", "--set", "loihi.enabled=false"]


def main(*args):
    return cli.main([str(a) for a in args])


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("nengoseg: error:") and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run with its ANN and conversion finished (`nengoseg run` without co-training)."""
    tmp = tmp_path_factory.mktemp("runfolder")
    cfg, run = tmp / "tiny.yaml", tmp / "run"
    cfg.write_text(TINY)
    assert main("run", "--config", cfg, "--run-dir", run, *OFF) == 0
    return cfg, run


def snapshot(run):
    """What a command must not change: config.yaml and every stage record."""
    files = [run / "config.yaml", run / "results.json"] + sorted(run.glob("*/stage.json"))
    return {str(p): p.read_bytes() for p in files}


# ---------------------------------------------------------------- provenance


def test_changed_preprocessing_stops_before_work_and_keeps_config(finished_run, capsys):
    cfg, run = finished_run
    before = snapshot(run)
    status = main("train-ann", "--config", cfg, "--run-dir", run,
                  "--set", "data.normalise=zero_mean", "--set", "train.epochs=3")
    assert status == cli.EXIT_USER_ERROR
    err = one_line_error(capsys, "data.normalise", "zero_mean", "train.epochs", "--force")
    assert "the trained ANN" in err
    assert snapshot(run) == before  # config.yaml and the records untouched


def test_later_stage_checks_the_stages_it_builds_on(finished_run, capsys):
    cfg, run = finished_run
    before = snapshot(run)
    assert main("convert", "--config", cfg, "--run-dir", run, "--set", "data.size=[16,16]") == 2
    one_line_error(capsys, "data.size", "the trained ANN")
    assert main("convert", "--config", cfg, "--run-dir", run, "--set", "convert.n_steps=ten") == 2
    one_line_error(capsys, "n_steps")
    assert snapshot(run) == before


def test_bad_keys_anywhere_fail_before_any_work(finished_run, tmp_path, capsys):
    cfg, _ = finished_run
    fresh = tmp_path / "fresh"
    for override, word in (("loihi.bogus=1", "loihi.bogus"), ("convert.bogus=2", "bogus"),
                           ("model.options={filterz: 3}", "filterz"), ("name=../escape", "name")):
        assert main("train-ann", "--config", cfg, "--run-dir", fresh, "--set", override) == 2
        one_line_error(capsys, word)
        assert not fresh.exists()  # nothing written, not even config.yaml


def test_reuse_records_the_stage_that_made_it(finished_run):
    _, run = finished_run
    results = json.loads((run / "results.json").read_text())
    convert = rundir.read_record(run, "convert")
    assert convert["provenance"]["inputs"] == {"ann": rundir.stage_id(run, "ann")}
    assert results["stage_ids"] == {"ann": rundir.stage_id(run, "ann"), "convert": convert["id"]}
    assert results["stages"]["converted_snn"] == convert["results"]["converted_snn"]
    saved = json.loads((run / "snn" / "conversion.json").read_text())["settings"]
    assert results["stages"]["converted_snn"]["settings"] == saved


def test_force_redoes_the_stage_and_removes_what_was_made_from_it(finished_run, tmp_path, capsys):
    import shutil

    cfg, run = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    old_ann = rundir.stage_id(copy, "ann")
    assert main("train-ann", "--config", cfg, "--run-dir", copy, "--set", "train.epochs=1",
                "--force") == 0
    assert rundir.stage_id(copy, "ann") != old_ann
    assert not rundir.finished(copy, "convert")  # made from the old ANN: gone
    results = json.loads((copy / "results.json").read_text())["stages"]
    assert set(results) == {"ann"} and results["ann"]["epochs_run"] == 1
    assert yaml.safe_load((copy / "config.yaml").read_text())["train"]["epochs"] == 1
    # the original run is untouched by what happened in its copy
    assert rundir.finished(run, "convert")


def test_evaluate_prepares_inputs_as_the_ann_was_trained(finished_run, capsys):
    cfg, run = finished_run
    assert main("evaluate", "--config", cfg, "--run-dir", run, "--engine", "ann",
                "--set", "data.normalise=zero_mean") == 0
    assert "data.normalise='unit' as the run's ANN was trained" in capsys.readouterr().err
    stages = json.loads((run / "results.json").read_text())["stages"]
    assert stages["evaluate_ann"]["scores"]["dice_3d_mean"] == pytest.approx(
        stages["ann_on_snn_examples"]["scores"]["dice_3d_mean"])


# ---------------------------------------------------------------- atomic stages


def test_killed_convert_leaves_scores_and_artefacts_together(finished_run, tmp_path):
    import shutil

    cfg, run = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    before = rundir.read_record(copy, "convert")
    proc = nengoseg("convert", "--config", str(cfg), "--run-dir", str(copy), "--force",
                    "--set", "convert.n_steps=5000", "--engine", "nengo-dl")
    time.sleep(12)  # past the imports and the conversion: it is simulating 5000 steps
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    after = rundir.read_record(copy, "convert")
    assert after == before
    results = json.loads((copy / "results.json").read_text())
    saved = json.loads((copy / "snn" / "conversion.json").read_text())["settings"]
    assert results["stages"]["converted_snn"]["settings"] == saved
    assert saved["n_steps"] == 8
    # a later run refuses the changed setting rather than reporting stale scores
    proc = nengoseg("run", "--config", str(cfg), "--run-dir", str(copy), *OFF,
                    "--set", "convert.n_steps=5000")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "convert.n_steps=8 (now 5000)" in err


@pytest.mark.parametrize("fail_at", range(1, 5))
def test_folder_swap_survives_a_kill_at_any_step(tmp_path, monkeypatch, fail_at):
    target = tmp_path / "stage"
    with atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "f").write_text("old")
    calls = {"n": 0}
    real_replace, real_symlink = os.replace, os.symlink

    def dying(real):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise KeyboardInterrupt  # the process dies here
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(atomic.os, "replace", dying(real_replace))
    monkeypatch.setattr(atomic.os, "symlink", dying(real_symlink))
    try:
        with atomic.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "f").write_text("new")
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert (target / "f").read_text() in ("old", "new")  # never missing, never half
    with atomic.atomic_path(target) as tmp:  # and the next swap cleans up
        tmp.mkdir()
        (tmp / "f").write_text("next")
    assert (target / "f").read_text() == "next"
    assert len(list((tmp_path / atomic.VERSIONS).iterdir())) == 1


# ---------------------------------------------------------------- fail fast


@pytest.mark.parametrize(
    "override, words",
    [
        ("convert.n_steps=1000000000", ["convert.n_steps=1000000000", "largest convert.n_steps"]),
        ("data.size=[100000,100000]", ["data.size"]),
        ("model.options={filters: 100000, depth: 2}", ["weights", "fewer filters"]),
    ],
)
def test_sizes_that_cannot_fit_fail_before_any_work(tmp_path, capsys, override, words):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    started = time.perf_counter()
    assert main("run", "--config", cfg, "--run-dir", tmp_path / "run", "--set", override) == 2
    one_line_error(capsys, "memory", *words)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "run").exists()


def test_largest_fitting_value_is_offered_and_fits(tmp_path):
    from nengoseg import preflight
    from nengoseg.config import load_config

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = load_config(cfg_path, ["convert.n_steps=1000000000"])
    with pytest.raises(preflight.ResourceError) as info:
        preflight.check_resources(cfg, tmp_path, memory=8 * preflight.GB)
    fits = int(str(info.value).rsplit(" ", 1)[-1])
    assert fits > 100
    preflight.check_resources(load_config(cfg_path, [f"convert.n_steps={fits}"]), tmp_path,
                              memory=8 * preflight.GB)
    with pytest.raises(preflight.ResourceError):
        preflight.check_resources(load_config(cfg_path, [f"convert.n_steps={fits + 50}"]),
                                  tmp_path, memory=8 * preflight.GB)


def test_disk_shortage_is_named(tmp_path):
    from nengoseg import preflight
    from nengoseg.config import load_config

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    with pytest.raises(preflight.ResourceError, match="GB free"):
        preflight.check_resources(load_config(cfg_path), tmp_path, disk=1000)


# ---------------------------------------------------------------- one-line errors


def test_run_dir_that_is_a_file(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    (tmp_path / "afile").write_text("x")
    assert main("train-ann", "--config", cfg, "--run-dir", tmp_path / "afile") == 2
    one_line_error(capsys, "is a file")


def test_unwritable_run_dir(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)  # root ignores chmod: refuse every write
    assert main("train-ann", "--config", cfg, "--run-dir", tmp_path / "run") == 2
    one_line_error(capsys, "cannot write in the run folder", "Permission denied")


def test_unexpected_errors_are_one_line_with_debug_for_the_traceback(tmp_path, capsys,
                                                                     monkeypatch):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)

    def broken(*args, **kwargs):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr("nengoseg.preflight.check_config", broken)
    assert main("train-ann", "--config", cfg, "--run-dir", tmp_path / "run") == 1
    one_line_error(capsys, "internal error RuntimeError: something unexpected", "--debug")
    with pytest.raises(RuntimeError):
        main("--debug", "train-ann", "--config", cfg, "--run-dir", tmp_path / "run")


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 156. TiB")

    monkeypatch.setattr("nengoseg.experiment_data.load_experiment_data", no_memory)
    assert main("train-ann", "--config", cfg, "--run-dir", tmp_path / "run") == 2
    one_line_error(capsys, "out of memory", "156. TiB", "batch_size")


def test_truncated_state_files_are_one_line(finished_run, tmp_path, capsys):
    import shutil

    cfg, run = finished_run
    for name in ("results.json", "snn/stage.json", "ann/stage.json"):
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(run, copy, symlinks=False)
        path = copy / name
        path.write_bytes(path.read_bytes()[:40])
        status = main("run", "--config", cfg, "--run-dir", copy, *OFF)
        assert status == 2, name
        one_line_error(capsys, str(path.name))


# ---------------------------------------------------------------- training that dies


def dead_relu_network(input_shape):
    """Every ReLU dead (zero kernels, bias -30): the output no longer depends on the input."""
    import tensorflow as tf

    dead = {"kernel_initializer": "zeros",
            "bias_initializer": tf.keras.initializers.Constant(-30.0)}
    inputs = tf.keras.Input(input_shape)
    hidden = tf.keras.layers.Conv2D(2, 3, padding="same", activation="relu", **dead)(inputs)
    out = tf.keras.layers.Conv2D(1, 1, name="out", **dead)(hidden)
    return tf.keras.Model(inputs, out)


def test_collapse_guard_detects_a_dead_network():
    from nengoseg.train.guards import CollapseGuard, is_dead

    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    model = dead_relu_network((8, 8, 1))
    model.compile("sgd", "mse")
    guard = CollapseGuard(x[:4], "dice")
    model.fit(x, y, epochs=5, verbose=0, callbacks=[guard])
    assert guard.collapse and "constant" in guard.collapse and "epoch 3" in guard.collapse
    assert is_dead(np.full((4, 8, 8, 1), -30.0), 0.0)
    live = np.random.default_rng(1).normal(size=(4, 8, 8, 1))
    assert not is_dead(live, 0.0) and not is_dead(live, 0.5)


def test_dead_training_restarts_then_stops_with_one_line(tmp_path, capsys, monkeypatch):
    from nengoseg import models

    monkeypatch.setattr(models, "build_model", lambda kind, shape, **o: dead_relu_network(shape))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    status = main("train-ann", "--config", cfg, "--run-dir", tmp_path / "run",
                  "--set", "train.epochs=4")
    assert status == 2
    out = capsys.readouterr()
    assert out.out.count("training collapsed") == 2  # two restarts, then the error
    assert "training collapsed in 3 attempts" in out.err and len(out.err.splitlines()) == 1
    assert not rundir.finished(tmp_path / "run", "ann")  # nothing dead passed on


def test_error_classes_are_nengoseg_errors():
    from nengoseg.preflight import ResourceError
    from nengoseg.train.guards import TrainingCollapsed

    for cls in (ResourceError, TrainingCollapsed, rundir.StageChanged):
        assert issubclass(cls, NengosegError)


def test_resume_after_an_architecture_change_starts_afresh(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    state = run / "work" / "ann" / "checkpoint" / "state.json"
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run),
                    "--set", "train.epochs=30")
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert state.exists()
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run),
                    "--set", "model.options={filters: 6, depth: 2, dropout: 0.0}")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "discarding the unfinished run" in out and "resuming" not in out
    assert rundir.read_record(run, "ann")["provenance"]["config"]["model"]["options"]["filters"] == 6


def test_a_model_for_other_inputs_is_one_line(finished_run, tmp_path, capsys):
    cfg, run = finished_run
    status = main("evaluate", "--config", cfg, "--run-dir", tmp_path / "other", "--engine", "ann",
                  "--checkpoint", run / "ann" / "model.h5", "--set", "data.size=[16,16]")
    assert status == 2
    one_line_error(capsys, "model.h5", "(24, 24, 1)", "(16, 16, 1)")
