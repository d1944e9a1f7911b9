"""`nengoseg convert` and `nengoseg evaluate` end to end on a tiny network."""

import json

import pytest

from test_train_ann import nengoseg

TINY = """
name: tiny_snn
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
train:
  learning_rate: 0.01
  epochs: 2
  batch_size: 8
  monitor: loss
convert:
  scale_firing_rates: 50
  synapse: 0.005
  n_steps: 8
evaluate:
  max_subjects: 1
  minibatch_size: 8
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("snn")
    cfg, run = tmp / "tiny.yaml", tmp / "run"
    cfg.write_text(TINY)
    proc = nengoseg("train-ann", "--config", str(cfg), "--run-dir", str(run))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return cfg, run


def run_ok(*args):
    proc = nengoseg(*args)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out


def test_convert_then_evaluate(trained):
    cfg, run = trained
    out = run_ok("convert", "--config", str(cfg), "--run-dir", str(run))
    assert "| converted SNN |" in out
    conversion = json.loads((run / "snn" / "conversion.json").read_text())
    assert conversion["settings"]["n_steps"] == 8
    assert conversion["settings"]["layer_scales"]  # the scales it decided are recorded
    results = json.loads((run / "results.json").read_text())["stages"]
    snn = results["converted_snn"]
    assert snn["scores"]["n_subjects"] == 1
    assert set(snn["firing_rates_hz"]) == set(snn["neurons_per_layer"])
    assert snn["mean_firing_rate_hz"] > 0
    assert "firing_rates_hz" not in results["ann_on_snn_examples"]

    out = run_ok("evaluate", "--config", str(cfg), "--run-dir", str(run), "--engine", "snn",
                 "--n-steps", "4")
    stage = json.loads((run / "results.json").read_text())["stages"]["evaluate_snn"]
    assert stage["n_steps"] == 4 and stage["mean_firing_rate_hz"] > 0
    run_ok("evaluate", "--config", str(cfg), "--run-dir", str(run), "--engine", "ann")
    report = (run / "report.md").read_text()
    for row in ("| pure ANN |", "| converted SNN |", "| SNN (nengoseg evaluate) |", "| ANN (nengoseg evaluate) |"):
        assert row in report

    # segment --engine snn runs the time-batched engine, and says so (mark included)
    from nengoseg.mask_files import mark_of
    from test_segment import IMAGE

    for engine, backend in (("snn", "engine"), ("nengo-dl", "nengo-dl")):
        mask = run.parent / f"mask_{engine}.nii.gz"
        out = run_ok("segment", str(IMAGE), str(mask), "--model", str(run), "--engine", engine)
        assert f"backend: {backend} (" in out
        assert f"engine={backend} model=convert:" in mark_of(mask)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--set", "convert.n_steps=0"], "convert: n_steps=0 is not allowed"),
        (["--set", "convert.scale_firing_rates=-1"], "scale_firing_rates=-1 is not allowed"),
        (["--set", "convert.scale_firing_rates={nope: 10}"], "nope"),
        (["--checkpoint", "/no/model.h5"], "/no/model.h5"),
    ],
)
def test_convert_errors(trained, tmp_path, extra, expected):
    cfg, run = trained
    proc = nengoseg("convert", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), *extra,
                    *([] if "--checkpoint" in extra else ["--checkpoint", str(run / "ann" / "model.h5")]))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err
    assert expected in err and "Traceback" not in err


def test_evaluate_missing_conversion(trained, tmp_path):
    cfg, _ = trained
    proc = nengoseg("evaluate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2 and "conversion.json" in err
