"""`nengoseg run`: stages in order, reuse after an interruption between stages, bad configs."""

import json

import pytest

from nengoseg import cli, pipeline
from test_cli_snn import TINY

OFF = ["--set", "cotrain.enabled=false", "--set", "loihi.enabled=false"]


def run(cfg, run_dir, *extra):
    return cli.main(["run", "--config", str(cfg), "--run-dir", str(run_dir), *OFF, *extra])


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_interrupted_run_continues_with_the_unfinished_stage(tiny_config, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "convert_stage", interrupted)
    assert run(tiny_config, run_dir) == cli.EXIT_INTERRUPTED
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["stages"]) == ["ann"]  # the ANN finished, conversion did not
    trained_at = (run_dir / "ann" / "model.h5").stat().st_mtime_ns
    assert "run the same command again" in capsys.readouterr().err

    monkeypatch.undo()
    assert run(tiny_config, run_dir) == 0
    out = capsys.readouterr().out
    assert "ann: reusing the trained model" in out
    assert (run_dir / "ann" / "model.h5").stat().st_mtime_ns == trained_at
    results = json.loads((run_dir / "results.json").read_text())
    assert {"ann", "ann_on_snn_examples", "converted_snn"} <= set(results["stages"])
    report = (run_dir / "report.md").read_text()
    assert "| converted SNN |" in report and "## Time per stage" in report
    for figure in ("firing_rates", "masks", "dice_vs_threshold", "dice_vs_steps"):
        assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 1000
        assert f"(figures/{figure}.png)" in report
    assert set(json.loads((run_dir / "timings.json").read_text())) >= {"ann", "convert"}

    # a third run redoes nothing
    assert run(tiny_config, run_dir) == 0
    out = capsys.readouterr().out
    assert "ann: reusing" in out and "convert: reusing" in out


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=0", "train.epochs"),
        ("cotrain.enabled=maybe", "cotrain.enabled"),
        ("model.kind=resnet", "model.kind"),
        ("nonsense.key=1", "nonsense"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tiny_config, tmp_path, capsys, override, message):
    assert run(tiny_config, tmp_path / "run", "--set", override) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "results.json").exists()


def test_missing_config_file_names_it(tmp_path, capsys):
    assert cli.main(["run", "--config", str(tmp_path / "nope.yaml")]) == cli.EXIT_USER_ERROR
    assert "nope.yaml" in capsys.readouterr().err
