"""`nengoseg sweep` and `nengoseg cv` (nengoseg/sweep/): grids, the mean ± std table,
Ray and local backends, resume and failing trials.

Most tests run trials with a stand-in for `nengoseg run` (FAKE_RUN, a few lines that
write a results.json from the trial's overrides), so Ray, resume and failures are
checked in seconds; the last two run the real pipeline on a tiny network.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nengoseg import cli, sweep
from nengoseg.sweep import run as sweep_run
from nengoseg.errors import ConfigError, NengosegError

# ----------------------------------------------------------------------------- grids


def test_grid_values_are_yaml_scalars_ranges_and_flow_collections():
    grid = sweep.parse_grid([
        "data.fold=0..2", "train.learning_rate=0.01,0.1", "data.split=kfold",
        "cotrain.enabled=true,false", "data.size=[16, 16],[24,24]",
        "model.options={filters: 4, depth: 1}", "data.root='a,b'", "seed=-1..0",
    ])
    assert grid == {
        "data.fold": [0, 1, 2], "train.learning_rate": [0.01, 0.1], "data.split": ["kfold"],
        "cotrain.enabled": [True, False], "data.size": [[16, 16], [24, 24]],
        "model.options": [{"filters": 4, "depth": 1}], "data.root": ["a,b"], "seed": [-1, 0],
    }
    trials = sweep.plan({"data.fold": [0, 1], "data.size": [[16, 16], [24, 24]]})
    assert [slug for slug, _ in trials] == [
        "data.fold=0__data.size=16_16", "data.fold=0__data.size=24_24",
        "data.fold=1__data.size=16_16", "data.fold=1__data.size=24_24"]
    assert trials[1][1] == {"data.fold": 0, "data.size": [24, 24]}
    # what a trial is given round-trips through --set's YAML reading
    assert [sweep.yaml_text(v) for v in ("1", 1, 0.001, True, [16, 16], "kfold")] == [
        "'1'", "1", "0.001", "true", "[16, 16]", "kfold"]


@pytest.mark.parametrize("item, says", [
    ("data.fold", "expected KEY=V1,V2"),
    ("=1,2", "expected KEY=V1,V2"),
    ("data.fold=", "an empty value"),
    ("data.fold=0,,1", "an empty value"),
    ("data.fold=3..1", "the range 3..1 is empty"),
    ("data.fold=1,1", "the value 1 is given twice"),
    ("data.size=[16, 16", "unbalanced brackets"),
    ("data.root=[a: b", "unbalanced brackets"),
    ("train.lr=0.1", "unknown config key 'train.lr' (allowed keys in train: loss"),
    ("data.fold.x=1", "'data.fold' is a value, not a section"),
    ("data.root=@x", "is not valid YAML"),
])
def test_a_bad_grid_is_one_line_naming_the_argument(item, says):
    with pytest.raises(ConfigError) as err:
        sweep.parse_grid([item])
    message = str(err.value)
    assert message.startswith(f"--grid {item!r}: ") and says in message
    assert "\n" not in message


def test_a_key_given_twice_and_keys_inside_free_sections():
    with pytest.raises(ConfigError, match=r"--grid 'data.fold=2': data.fold is given twice"):
        sweep.parse_grid(["data.fold=1", "data.fold=2"])
    # convert, loihi and model.options are checked by the trial itself
    assert sweep.parse_grid(["convert.n_steps=4,8", "loihi.enabled=false"])


def test_bad_grid_through_the_cli_exits_2_with_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("name: c\n")
    status = cli.main(["sweep", "--config", str(config), "--grid", "data.fold=2..0",
                       "--sweep-dir", str(tmp_path / "s"), "--backend", "local"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("nengoseg: error: --grid 'data.fold=2..0': the range 2..0 is empty")
    assert not (tmp_path / "s").exists()
    assert cli.main(["cv", "--config", str(config), "--folds", "1", "--backend", "local"]) == 2
    assert "--folds must be an integer >= 2, got 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the table


def _fake_results(ann, converted, hybrid=None, loihi=None):
    stages = {"ann": {"test": ann, "val": {"dice_2d_mean": -1.0}},
              "ann_on_snn_examples": {"scores": {"dice_2d_mean": 0.66}},
              "converted_snn": {"scores": converted, "mean_firing_rate_hz": 3.0}}
    if hybrid is not None:
        stages["hybrid_snn"] = {"scores": hybrid}
    if loihi is not None:
        stages["loihi"] = {"scores": loihi}
    return {"stages": stages, "stage_ids": {}, "extra": {}, "versions": {}}


def test_stage_scores_read_the_run_layout():
    results = _fake_results(
        {"dice_2d_mean": 0.7, "dice_3d_mean": 0.8, "dice_2d_std": 0.1, "n_subjects": 2},
        {"dice_2d_mean": 0.4, "dice_3d_mean": 0.5}, loihi={"dice_2d_mean": 0.3},
    )
    assert sweep.stage_scores(results) == {
        "ann": {"dice_2d_mean": 0.7, "dice_3d_mean": 0.8},
        "ann_on_snn_examples": {"dice_2d_mean": 0.66},  # the ANN beside the SNN rows
        "converted_snn": {"dice_2d_mean": 0.4, "dice_3d_mean": 0.5},
        "loihi": {"dice_2d_mean": 0.3},
    }
    denoising = {"stages": {"ann": {"test": {"psnr_mean": 28.5, "ssim_mean": 0.81}}}}
    assert sweep.stage_scores(denoising) == {"ann": {"psnr_mean": 28.5, "ssim_mean": 0.81}}


def test_aggregate_is_mean_and_population_std_over_folds_per_group(tmp_path):
    ann = {(lr, fold): 0.5 + 0.1 * fold + lr for lr in (0.01, 0.1) for fold in range(3)}
    rows = []
    for (lr, fold), value in ann.items():
        results = _fake_results({"dice_2d_mean": value, "dice_3d_mean": value ** 2},
                                {"dice_2d_mean": value / 2, "dice_3d_mean": 0.25},
                                hybrid={"dice_2d_mean": 0.9} if fold < 2 else None)
        path = tmp_path / f"{lr}_{fold}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(results))
        status = "failed" if (lr, fold) == (0.1, 2) else "ok"
        rows.append({"overrides": {"train.learning_rate": lr, "data.fold": fold},
                     "status": status,
                     "scores": sweep.stage_scores(json.loads(path.read_text()))})
    table = sweep.aggregate(rows, ["train.learning_rate", "data.fold"])
    got = {(e["group"]["train.learning_rate"], e["stage"]): e for e in table}
    assert list(got) == [(lr, stage) for lr in (0.01, 0.1) for stage in (
        "ann", "ann_on_snn_examples", "converted_snn", "hybrid_snn")]
    a = [ann[0.01, f] for f in range(3)]
    mean = sum(a) / 3
    std = (sum((x - mean) ** 2 for x in a) / 3) ** 0.5  # population std (ddof 0)
    assert got[0.01, "ann"]["metrics"]["dice_2d_mean"]["mean"] == pytest.approx(mean, abs=1e-12)
    assert got[0.01, "ann"]["metrics"]["dice_2d_mean"]["std"] == pytest.approx(std, abs=1e-12)
    squares = [x ** 2 for x in a]
    assert got[0.01, "ann"]["metrics"]["dice_3d_mean"]["std"] == pytest.approx(np.std(squares))
    assert got[0.01, "ann"]["n"] == 3 and got[0.01, "ann"]["folds"] == [0, 1, 2]
    # the failed fold is left out of its group (two folds: std is half the difference)
    b = [ann[0.1, 0], ann[0.1, 1]]
    assert got[0.1, "ann"]["n"] == 2 and got[0.1, "ann"]["failed"] == 1
    assert got[0.1, "ann"]["metrics"]["dice_2d_mean"]["mean"] == pytest.approx(sum(b) / 2)
    assert got[0.1, "ann"]["metrics"]["dice_2d_mean"]["std"] == pytest.approx(abs(b[0] - b[1]) / 2)
    assert got[0.1, "converted_snn"]["metrics"]["dice_3d_mean"] == {
        "mean": 0.25, "std": 0.0, "values": [0.25, 0.25]}
    assert got[0.01, "hybrid_snn"]["n"] == 2  # only the folds that have the stage
    # one group when data.fold is the only grid key (cross-validation)
    one = sweep.aggregate(rows[:3], ["data.fold"])
    assert [e["group"] for e in one] == [{}] * 4 and one[0]["n"] == 3


# ----------------------------------------------------------------------------- sweeps

FAKE_RUN = '''
import json, sys, time
from pathlib import Path
args = sys.argv[1:]
assert args[0] == "run" and Path(args[args.index("--config") + 1]).is_file()
run = Path(args[args.index("--run-dir") + 1])
sets = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--set")
with open(run / "calls.txt", "a") as f:
    f.write("call\\n")
print("training", sets)
if sets.get("train.learning_rate") == "bad":
    print("some traceback line", file=sys.stderr)
    print("nengoseg: error: bad value 'bad' for 'train.learning_rate'", file=sys.stderr)
    sys.exit(2)
fold, lr = int(sets["data.fold"]), float(sets["train.learning_rate"])
scores = lambda d2, d3: {"dice_2d_mean": d2, "dice_3d_mean": d3, "n_subjects": 1}
stages = {"ann": {"test": scores(0.5 + 0.1 * fold + lr, 0.6 + 0.05 * fold)},
          "converted_snn": {"scores": scores(0.2 * fold + lr, 0.3)},
          "hybrid_snn": {"scores": scores(0.4 + lr, 0.5 - 0.1 * fold)}}
(run / "results.json").write_text(json.dumps({"stages": stages}))
'''
GRID = {"data.fold": [0, 1], "train.learning_rate": [0.01, 0.1]}


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny_fake\n")
    return config, [sys.executable, str(script)]


def calls(sweep_dir):
    return {p.parent.name: p.read_text().count("call")
            for p in sorted((sweep_dir / "trials").glob("*/calls.txt"))}


def expected_table():
    """The fake runner's scores, averaged here: {(lr, stage): {metric: (mean, std)}}."""
    table = {}
    for lr in (0.01, 0.1):
        per_fold = {
            "ann": [(0.5 + 0.1 * f + lr, 0.6 + 0.05 * f) for f in (0, 1)],
            "converted_snn": [(0.2 * f + lr, 0.3) for f in (0, 1)],
            "hybrid_snn": [(0.4 + lr, 0.5 - 0.1 * f) for f in (0, 1)],
        }
        for stage, pairs in per_fold.items():
            table[lr, stage] = {
                metric: ((pairs[0][i] + pairs[1][i]) / 2, abs(pairs[0][i] - pairs[1][i]) / 2)
                for i, metric in enumerate(("dice_2d_mean", "dice_3d_mean"))}
    return table


def as_table(report):
    return {(e["group"]["train.learning_rate"], e["stage"]):
            {m: (v["mean"], v["std"]) for m, v in e["metrics"].items()}
            for e in report["aggregate"]}


def test_sweep_on_ray_and_local_give_the_same_table_and_resume(fake, tmp_path):
    pytest.importorskip("ray")
    config, runner = fake
    lines = []
    on_ray = sweep.run_sweep(config, GRID, sweep_dir=tmp_path / "ray", backend="ray",
                             num_cpus=2, runner=runner, out=lines.append)
    assert on_ray["backend"] == "ray" and on_ray["failed"] == []
    assert any("4 trials to run on Ray (2 CPUs on 1 node, 1 per trial: 2 at a time)" in line
               for line in lines)
    assert sum("sweep: [" in line for line in lines) == 4 and "ETA" in lines[-2]
    local = sweep.run_sweep(config, GRID, sweep_dir=tmp_path / "local", backend="local",
                            runner=runner, out=lines.append)
    assert as_table(on_ray) == as_table(local)
    expected = expected_table()
    assert as_table(on_ray).keys() == expected.keys()
    for key, metrics in expected.items():
        for metric, (mean, std) in metrics.items():
            assert as_table(on_ray)[key][metric] == pytest.approx((mean, std), abs=1e-12)
    assert all(e["n"] == 2 and e["folds"] == [0, 1] for e in on_ray["aggregate"])

    folder = tmp_path / "ray"
    trial = folder / "trials" / "data.fold=1__train.learning_rate=0.01"
    record = json.loads((trial / "trial.json").read_text())
    assert record["status"] == "ok" and record["exit_code"] == 0
    assert record["overrides"] == {"data.fold": 1, "train.learning_rate": 0.01}
    assert record["wall_seconds"] > 0 and "training" in (trial / "trial.log").read_text()
    for name in ("sweep.json", "sweep.md", "sweep.csv"):
        assert (folder / name).is_file()
    md = (folder / "sweep.md").read_text()
    assert "| train.learning_rate | stage | Dice 2D | Dice 3D | folds |" in md
    assert "| 0.01 | ANN | 0.5600 ± 0.0500 | 0.6250 ± 0.0250 | 2 |" in md
    assert "| 0.1 | fine-tuned SNN | 0.5000 ± 0.0000 | 0.4500 ± 0.0500 | 2 |" in md
    csv = (folder / "sweep.csv").read_text().splitlines()
    assert csv[0].startswith("trial,data.fold,train.learning_rate,status,exit_code,wall_seconds,"
                             "ann.dice_2d_mean,ann.dice_3d_mean,converted_snn.dice_2d_mean")
    assert len(csv) == 5

    # resume: a trial without its record (killed) runs again, the others are skipped
    (trial / "trial.json").unlink()
    lines.clear()
    again = sweep.run_sweep(config, GRID, sweep_dir=folder, backend="local", runner=runner,
                            out=lines.append)
    assert calls(folder) == {**{name: 1 for name in calls(folder)}, trial.name: 2}
    assert "3 finished before (skipped), 1 to run" in lines[0]
    assert as_table(again) == as_table(on_ray)
    # other --set overrides for every trial: none of the old records counts
    sweep.run_sweep(config, GRID, sweep_dir=folder, backend="local", runner=runner,
                    overrides=["seed=3"], out=lines.append)
    assert sorted(calls(folder).values()) == [2, 2, 2, 3]


def test_a_failing_trial_is_reported_while_the_others_finish(fake, tmp_path, monkeypatch,
                                                               capsys):
    config, runner = fake
    real_run_trial = sweep.run_trial
    monkeypatch.setattr(sweep_run, "run_trial", lambda spec: real_run_trial({**spec, "runner": runner}))
    folder = tmp_path / "s"
    argv = ["sweep", "--config", str(config), "--grid", "data.fold=0..1",
            "--grid", "train.learning_rate=0.01,bad", "--sweep-dir", str(folder),
            "--backend", "local"]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("nengoseg: error: 2 of 4 trials failed: ")
    assert "(exit 2: bad value 'bad' for 'train.learning_rate')" in err
    assert "| 0.01 | ANN | 0.5600 ± 0.0500 |" in out  # the table of what finished
    assert "| bad | no trial finished | N/A | N/A | 0 (2 failed) |" in out
    report = json.loads((folder / "sweep.json").read_text())
    assert report["failed"] == ["data.fold=0__train.learning_rate=bad",
                                "data.fold=1__train.learning_rate=bad"]
    rows = {row["trial"]: row for row in report["trials"]}
    bad = rows["data.fold=1__train.learning_rate=bad"]
    assert bad["status"] == "failed" and bad["exit_code"] == 2
    assert bad["error"] == "bad value 'bad' for 'train.learning_rate'"
    record = json.loads((folder / "trials" / bad["trial"] / "trial.json").read_text())
    assert record["stderr_tail"][-2:] == [
        "some traceback line", "nengoseg: error: bad value 'bad' for 'train.learning_rate'"]
    assert rows["data.fold=1__train.learning_rate=0.01"]["status"] == "ok"
    assert [(e["group"]["train.learning_rate"], e["stage"], e["n"], e["failed"])
            for e in report["aggregate"]] == [
        (0.01, "ann", 2, 0), (0.01, "converted_snn", 2, 0), (0.01, "hybrid_snn", 2, 0),
        ("bad", None, 0, 2)]
    md = (folder / "sweep.md").read_text()
    assert "## Failed or unfinished trials" in md and "failed (exit 2): bad value" in md
    # a rerun tries the failed trials again, and only them
    assert cli.main(argv) == 1
    assert calls(folder) == {"data.fold=0__train.learning_rate=0.01": 1,
                             "data.fold=0__train.learning_rate=bad": 2,
                             "data.fold=1__train.learning_rate=0.01": 1,
                             "data.fold=1__train.learning_rate=bad": 2}


def test_cv_is_a_sweep_over_the_folds(fake, tmp_path, monkeypatch, capsys):
    config, runner = fake
    real_run_trial = sweep.run_trial
    monkeypatch.setattr(sweep_run, "run_trial", lambda spec: real_run_trial({**spec, "runner": runner}))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["cv", "--config", str(config), "--folds", "3", "--backend", "local",
                     "--set", "train.learning_rate=0.1"]) == 0
    folder = tmp_path / "runs" / "tiny_fake_cv"
    report = json.loads((folder / "sweep.json").read_text())
    assert report["kind"] == "cv" and report["grid"] == {"data.fold": [0, 1, 2]}
    assert report["set"] == ["train.learning_rate=0.1", "data.split=kfold", "data.n_folds=3"]
    record = json.loads((folder / "trials" / "data.fold=2" / "trial.json").read_text())
    assert record["set"] == [*report["set"], "data.fold=2"]
    (ann,) = [e for e in report["aggregate"] if e["stage"] == "ann"]
    values = [0.6, 0.7, 0.8]
    assert ann["group"] == {} and ann["n"] == 3
    assert ann["metrics"]["dice_2d_mean"]["mean"] == pytest.approx(0.7)
    assert ann["metrics"]["dice_2d_mean"]["std"] == pytest.approx((0.02 / 3) ** 0.5)
    assert ann["metrics"]["dice_2d_mean"]["std"] == pytest.approx(np.std(values))
    assert "| stage | Dice 2D | Dice 3D | folds |" in capsys.readouterr().out


def test_an_address_where_no_cluster_answers_fails_at_once(fake, tmp_path):
    pytest.importorskip("ray")
    config, runner = fake
    with pytest.raises(NengosegError, match=r"^--address 127.0.0.1:1: no Ray cluster answers"):
        sweep.run_sweep(config, GRID, sweep_dir=tmp_path / "s", backend="ray",
                        address="127.0.0.1:1", runner=runner, out=lambda line: None)
    with pytest.raises(ConfigError, match="--address joins a Ray cluster: it needs --backend ray"):
        sweep.run_sweep(config, GRID, backend="local", address="127.0.0.1:1")


def test_without_ray_the_sweep_runs_locally_and_ray_is_optional(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert sweep.choose_backend(None, print) == "local"
    assert "Ray is not installed" in capsys.readouterr().err
    with pytest.raises(NengosegError, match="--backend ray needs Ray"):
        sweep.choose_backend("ray", print)
    import subprocess

    code = ("import sys, nengoseg.cli, nengoseg.sweep, nengoseg.__main__; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- real trials

TINY = """
name: tiny_sweep
seed: 2
data:
  root: sample:hippocampus
  size: [16, 16]
  max_subjects: 4
  split: kfold
  n_folds: 2
  val_fraction: 0.0
model:
  kind: unet
  options: {filters: 4, depth: 1, dropout: 0.0}
train:
  learning_rate: 0.03
  epochs: 3
  batch_size: 8
  monitor: loss
convert:
  scale_firing_rates: 200
  synapse: 0.005
  n_steps: 8
cotrain:
  enabled: false
loihi:
  enabled: false
evaluate:
  max_subjects: 1
  minibatch_size: 8
"""


@pytest.fixture
def tiny(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    return config


def test_real_trials_one_ok_one_failing(tiny, tmp_path, capsys):
    """`python -m nengoseg run` per trial; a bad config value fails only its trial."""
    folder = tmp_path / "s"
    status = cli.main(["sweep", "--config", str(tiny), "--grid", "train.epochs=3,0",
                       "--sweep-dir", str(folder), "--backend", "local"])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert "1 of 2 trials failed: train.epochs=0 (exit 2: " in err
    assert "bad value 0 for 'train.epochs' (allowed: an integer >= 1)" in err
    report = json.loads((folder / "sweep.json").read_text())
    ok, bad = report["trials"]
    assert ok["status"] == "ok" and bad["status"] == "failed" and bad["exit_code"] == 2
    results = json.loads((folder / "trials" / "train.epochs=3" / "results.json").read_text())
    assert ok["scores"]["ann"]["dice_3d_mean"] == results["stages"]["ann"]["test"]["dice_3d_mean"]
    # co-training and Loihi are off
    assert set(ok["scores"]) == {"ann", "ann_on_snn_examples", "converted_snn"}
    assert 0 < ok["scores"]["ann"]["dice_2d_mean"] <= 1
    assert "| 3 | ANN |" in out and "| 3 | converted SNN |" in out


@pytest.mark.slow
def test_real_cv_on_ray_matches_local_and_resumes(tiny, tmp_path, capsys):
    """2 folds x 2 learning rates of the real pipeline on Ray (2 CPUs) and locally."""
    ray = pytest.importorskip("ray")
    grid = ["--grid", "data.fold=0..1", "--grid", "train.learning_rate=0.03,0.05"]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert cli.main(["sweep", "--config", str(tiny), *grid, "--sweep-dir",
                         str(tmp_path / "ray"), "--backend", "ray"]) == 0
        # resume: a killed trial (no trial.json) runs again; its finished stages are reused
        killed = tmp_path / "ray" / "trials" / "data.fold=1__train.learning_rate=0.05"
        (killed / "trial.json").unlink()
        assert cli.main(["sweep", "--config", str(tiny), *grid, "--sweep-dir",
                         str(tmp_path / "ray"), "--backend", "ray"]) == 0
    finally:
        ray.shutdown()
    assert cli.main(["sweep", "--config", str(tiny), *grid, "--sweep-dir",
                     str(tmp_path / "local"), "--backend", "local"]) == 0
    out = capsys.readouterr().out
    assert "3 finished before (skipped), 1 to run" in out
    attempts = {p.parent.name: p.read_text().count("=== ")
                for p in (tmp_path / "ray" / "trials").glob("*/trial.log")}
    assert attempts == {**{name: 1 for name in attempts}, killed.name: 2}
    on_ray = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    local = json.loads((tmp_path / "local" / "sweep.json").read_text())
    assert on_ray["aggregate"] == local["aggregate"]  # the same values, digit for digit
    assert [(e["group"]["train.learning_rate"], e["stage"], e["n"]) for e in local["aggregate"]] == [
        (0.03, "ann", 2), (0.03, "converted_snn", 2), (0.05, "ann", 2), (0.05, "converted_snn", 2)]
    ann = [row["scores"]["ann"]["dice_2d_mean"] for row in local["trials"]
           if row["overrides"]["train.learning_rate"] == 0.03]
    assert local["aggregate"][0]["metrics"]["dice_2d_mean"]["std"] == pytest.approx(np.std(ann))
    md_ray = (tmp_path / "ray" / "sweep.md").read_text().split("## Trials")[0]
    md_local = (tmp_path / "local" / "sweep.md").read_text().split("## Trials")[0]
    strip = lambda md: [l for l in md.splitlines() if l.startswith("|")]  # noqa: E731
    assert strip(md_ray) == strip(md_local)


def test_from_run_starts_every_trial_from_one_trained_ann(fake, tmp_path):
    config, runner = fake
    base = tmp_path / "base"
    with pytest.raises(ConfigError, match=r"--from-run .*base: no trained ANN there"):
        sweep.run_sweep(config, {"convert.n_steps": [4, 8]}, sweep_dir=tmp_path / "s",
                        backend="local", runner=runner, from_run=base, out=print)
    (base / "ann").mkdir(parents=True)
    (base / "ann" / "stage.json").write_text(json.dumps({"results": {}, "provenance": {}}))
    (base / "ann" / "model.h5").write_bytes(b"weights")
    with pytest.raises(ConfigError, match=r"--grid data.fold: .* share one trained ANN"):
        sweep.run_sweep(config, {"data.fold": [0, 1]}, sweep_dir=tmp_path / "s",
                        backend="local", runner=runner, from_run=base, out=print)
    lines = []
    report = sweep.run_sweep(config, {"convert.n_steps": [4, 8]}, sweep_dir=tmp_path / "s",
                             overrides=["data.fold=0", "train.learning_rate=0.01"],
                             backend="local", runner=runner, from_run=base,
                             out=lines.append)
    assert report["failed"] == [] and "copied into 2 trial folders" in " ".join(lines)
    for n in (4, 8):
        copy = tmp_path / "s" / "trials" / f"convert.n_steps={n}" / "ann"
        assert (copy / "model.h5").read_bytes() == b"weights"
    assert (base / "ann" / "model.h5").read_bytes() == b"weights"  # the source is untouched


def test_scaleout_schedules_the_measured_trials_on_n_workers():
    from nengoseg.sweep.report import makespan, scaleout

    assert makespan([3, 1, 1, 1], 2) == 3 and makespan([3, 1, 1, 1], 1) == 6
    assert makespan([2, 2, 2], 4) == 2 and makespan([], 3) == 0
    rows = [{"trial": f"t{i}", "wall_seconds": t} for i, t in enumerate([10, 10, 10, 10])]
    report = {"trials": rows, "ran": [r["trial"] for r in rows], "slots": 2,
              "wall_seconds": 23.0}
    found = scaleout(report)
    assert found["overhead_seconds"] == pytest.approx(3.0)  # 23 s against 2 waves of 10 s
    assert [(e["workers"], e["seconds"]) for e in found["estimates"]] == [
        (1, 43.0), (2, 23.0), (4, 13.0)]
    assert scaleout({**report, "ran": ["t0"]}) is None  # the others ran earlier


def test_a_rerun_with_nothing_to_run_keeps_the_scaleout_measured_before(fake, tmp_path):
    config, runner = fake
    grid = {"data.fold": [0, 1], "train.learning_rate": [0.01]}
    first = sweep.run_sweep(config, grid, sweep_dir=tmp_path / "s", backend="local",
                            runner=runner, out=print)
    assert first["scaleout"]["trials"] == 2 and first["scaleout"]["slots"] == 1
    again = sweep.run_sweep(config, grid, sweep_dir=tmp_path / "s", backend="local",
                            runner=runner, out=print)
    assert again["ran"] == [] and again["scaleout"] == first["scaleout"]
    assert "Measured here: 2 trials" in (tmp_path / "s" / "sweep.md").read_text()
