"""Progress: tqdm bars with ETA on a terminal; in logs (no terminal) one line per epoch."""

import io
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from nengoseg.train.checkpoints import Progress

EPOCH_LINE = re.compile(r"^epoch (\d+)/3 \(\d+\.\d s, ETA \d\d:\d\d\) loss=\S+ mae=\S+$")


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm draws its bars only on one)."""

    def isatty(self):
        return True


def fit(callback, initial_epoch=0):
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    x = np.ones((12, 3), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=3, initial_epoch=initial_epoch, verbose=0,
              callbacks=[callback])


def test_logs_get_one_line_per_epoch_and_no_bars(capsys):
    fit(Progress(3))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [EPOCH_LINE.match(line).group(1) for line in lines] == ["1", "2", "3"], out
    assert lines[-1].startswith("epoch 3/3") and "ETA 00:00" in lines[-1]
    assert err == ""  # stderr is not a terminal: the bars are off


def test_a_terminal_gets_epoch_and_batch_bars_with_eta(capsys, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(Progress(3), initial_epoch=1)  # a resumed run: epochs 2 and 3
    bars = terminal.getvalue()
    assert "epochs:  33%" in bars and "1/3 [" in bars  # the epoch bar starts at the resume
    assert "epoch 2/3" in bars and "/3 [" in bars and "batch" in bars  # batches of an epoch
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", bars)  # elapsed < time left
    out = capsys.readouterr().out
    assert [EPOCH_LINE.match(line).group(1) for line in out.splitlines()] == ["2", "3"]


def test_cotrain_progress_shows_only_its_summary_keys(capsys):
    from nengoseg.train.cotrain_fit import _Progress

    fit(_Progress(3, ["loss", "val_loss"]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(re.search(r"\) loss=\S+$", line) for line in lines), lines


@pytest.mark.parametrize("on_terminal, progress", [(False, True), (True, True), (True, False)])
def test_engine_simulation_bar(monkeypatch, on_terminal, progress):
    from nengoseg.convert import ConversionSettings
    from nengoseg.engine import run_engine

    inp = tf.keras.Input((4, 4, 1))
    model = tf.keras.Model(inp, tf.keras.layers.Conv2D(2, 3, activation="relu")(inp))
    stderr = Terminal() if on_terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    run_engine(model, ConversionSettings(n_steps=5), np.ones((3, 4, 4, 1)), minibatch_size=2,
               progress=progress)
    shown = stderr.getvalue()
    if on_terminal and progress:
        assert "engine (5 steps)" in shown and "/3 [" in shown and "input" in shown
    else:
        assert "engine (5 steps)" not in shown


def test_emulator_bar_counts_steps(monkeypatch):
    from test_loihi_rewrite import conv_net

    from nengoseg.loihi.blocks import choose_block_shapes
    from nengoseg.loihi.rewrite import build_loihi_network
    from nengoseg.loihi.run import run_loihi

    loihi_net = build_loihi_network(conv_net(), spiking=True, synapse=0.005, n_steps=5,
                                    scale_firing_rates=300.0)
    choose_block_shapes(loihi_net)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_loihi(loihi_net, np.ones((2, 8, 8, 2)) / 2, progress=True)
    shown = terminal.getvalue()
    assert "Loihi (sim)" in shown and "/10 [" in shown and "step" in shown
