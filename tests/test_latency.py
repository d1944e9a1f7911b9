"""The latency report: synaptic operations counted by hand, and `nengoseg latency` on a run."""

import json

import numpy as np
import pytest
import tensorflow as tf

from nengoseg import cli
from nengoseg import convert as nsconvert
from nengoseg.latency import ANN_DEVICES, SNN_DEVICES, ann_energy, device_table, fan_outs, snn_energy
from test_cli_snn import TINY

L = tf.keras.layers


def three_layers():
    """input (4) -> dense (3, relu) -> dense (2, relu) -> dense (1) output, one weight zero."""
    tf.keras.utils.set_random_seed(0)
    inp = L.Input((4,), name="x")
    a = L.Dense(3, activation="relu", name="a")(inp)
    b = L.Dense(2, activation="relu", name="b")(a)
    out = L.Dense(1, name="out")(b)
    model = tf.keras.Model(inp, out)
    kernel, bias = model.get_layer("a").get_weights()
    kernel[0, 0] = 0.0  # input neuron 0 drives 2 synapses of layer a, not 3
    model.get_layer("a").set_weights([np.where(kernel == 0, 0, np.abs(kernel) + 0.1), bias])
    return model


def test_synaptic_operations_are_spikes_times_the_synapses_they_drive():
    settings = nsconvert.ConversionSettings(neuron_model="loihi", scale_firing_rates=100.0,
                                            readout="regression")
    description = nsconvert.convert(three_layers(), settings).description
    fans, input_name = fan_outs(description)
    # by hand: 4 x 3 input synapses less the zero weight, through the input's positive
    # ("on") and negative ("off") relays of signed input; a drives 3 x 2; b drives the
    # output layer, which the host computes from b's spikes (no on-chip synapses)
    assert input_name == "x.on"
    assert fans == {"x.on": 11, "x.off": 11, "a": 6}
    rates = {input_name: 200.0, "a": 50.0, "b": 10.0}
    row = snn_energy(fans, rates, n_neurons=5, n_steps=20, dt=0.001)
    by_hand = 200 * 0.02 * 11 + 50 * 0.02 * 6
    assert row["synops"] == pytest.approx(by_hand)
    assert row["neuron_updates"] == 5 * 20
    devices = device_table()
    for device in SNN_DEVICES:
        spec = devices[device]
        assert row[f"joules_{device}"] == pytest.approx(
            by_hand * spec["energy_per_synop"] + 100 * spec["energy_per_neuron"])
    ann = ann_energy(three_layers())
    assert ann["synops"] == 4 * 3 + 3 * 2 + 2 * 1  # ModelEnergy counts every weight
    for device in ANN_DEVICES:
        spec = devices[device]
        assert ann[f"joules_{device}"] == pytest.approx(
            ann["synops"] * spec["energy_per_synop"] + ann["neuron_updates"] * spec["energy_per_neuron"])


def test_latency_command_scores_each_network_at_each_number_of_steps(tmp_path, capsys):
    cfg, run_dir = tmp_path / "tiny.yaml", tmp_path / "run"
    cfg.write_text(TINY)
    off = ["--set", "cotrain.enabled=false", "--set", "loihi.enabled=false"]
    assert cli.main(["run", "--config", str(cfg), "--run-dir", str(run_dir), *off]) == 0
    config_before = (run_dir / "config.yaml").read_bytes()
    capsys.readouterr()
    assert cli.main(["latency", "--config", str(cfg), "--run-dir", str(run_dir),
                     "--steps", "2", "6"]) == 0
    out = capsys.readouterr().out
    assert "| converted | 6 |" in out and "| ANN | - |" in out
    payload = json.loads((run_dir / "latency.json").read_text())
    rows = {(row["network"], row["n_steps"]): row for row in payload["rows"]}
    assert set(rows) == {("ANN", None), ("converted", 2), ("converted", 6)}
    assert rows[("ANN", None)]["energy"]["joules_gpu"] > 0
    six, two = rows[("converted", 6)], rows[("converted", 2)]
    # three times the steps: three times the neuron updates, more synaptic operations
    assert six["energy"]["neuron_updates"] == 3 * two["energy"]["neuron_updates"]
    assert six["energy"]["synops"] > two["energy"]["synops"] > 0
    assert 0 <= six["scores"]["dice_3d_mean"] <= 1
    assert (run_dir / "figures" / "dice_vs_T.png").stat().st_size > 1000
    assert (run_dir / "config.yaml").read_bytes() == config_before
    assert cli.main(["latency", "--config", str(cfg), "--run-dir", str(run_dir),
                     "--steps", "0"]) == cli.EXIT_USER_ERROR
    # two runs' reports in one table and figure; a run on other examples is refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "latency.json").write_text(json.dumps(payload))
    capsys.readouterr()
    assert cli.main(["latency-merge", str(run_dir), str(other), "--out",
                     str(tmp_path / "merged")]) == 0
    assert "| other: converted | 6 |" in capsys.readouterr().out
    merged = json.loads((tmp_path / "merged" / "latency.json").read_text())
    assert len(merged["rows"]) == 2 * len(payload["rows"])
    assert (tmp_path / "merged" / "figures" / "dice_vs_T.png").stat().st_size > 1000
    (other / "latency.json").write_text(json.dumps({**payload, "n_slices": 1}))
    assert cli.main(["latency-merge", str(run_dir), str(other), "--out",
                     str(tmp_path / "merged")]) == cli.EXIT_USER_ERROR
    assert "run 'other' scored n_slices=1" in capsys.readouterr().err


def test_neuron_depth_counts_the_neuron_layers_of_the_longest_path():
    tf.keras.utils.set_random_seed(0)
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    a = L.Conv2D(2, 3, padding="same", activation="relu", name="a")(inp)
    b = L.Conv2D(2, 3, padding="same", activation="relu", name="b")(a)
    c = L.Conv2D(2, 3, padding="same", activation="relu", name="c")(b)
    skip = L.Concatenate(name="skip")([a, c])  # a short path (1 layer) beside a long one (3)
    model = tf.keras.Model(inp, L.Conv2D(1, 1, name="out")(L.AveragePooling2D()(skip)))
    converted = nsconvert.convert(model, nsconvert.ConversionSettings(spiking=False))
    assert converted.description.neuron_depth() == 3
