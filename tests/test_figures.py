"""Figures of a run folder: the values they plot, and that the drawn axes show them.

A run folder is made by hand: evaluation examples with known masks, and stage
predictions whose Dice at each threshold is known in closed form. Each figure's
data function is checked against those numbers, and the figure function's Axes
(bars, lines, images, rectangles; captured before the figure is closed) against
the data.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from nengoseg import figures, predictions, rundir

H = W = 4
# foreground pixels of each example (of 16): no ties, none empty
SIZES = (4, 8, 6, 10)


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn by the figure functions: ``{file name: matplotlib Figure}``."""
    made = {}
    save = figures.save_figure

    def keep(fig, run_dir, name):
        made[name] = fig
        return save(fig, run_dir, name)

    monkeypatch.setattr(figures, "save_figure", keep)
    return made


def examples():
    y = np.zeros((len(SIZES), H, W, 1), np.uint8)
    for i, size in enumerate(SIZES):
        y[i].reshape(-1)[:size] = 1
    x = np.random.default_rng(0).random(y.shape).astype(np.float32)
    return SimpleNamespace(x=x, y=y, groups=np.array(["s1", "s1", "s2", "s2"]),
                           slice_index=np.array([3, 4, 3, 4]))


def segmentation_run(tmp_path):
    """Converted SNN: logits +-2 on the true mask (right at thresholds 0.15-0.85, everything
    foreground at 0.1, nothing at 0.9), with Dice by steps; Loihi: examples 0 and 2 only,
    logits -5 (nothing foreground)."""
    run = tmp_path / "run"
    part = examples()
    snn = rundir.stage_dir(run, "convert")
    predictions.save_examples(snn, part)
    logits = np.where(part.y > 0, 2.0, -2.0).astype(np.float32)
    predictions.save_predictions(snn, "converted_snn", logits, steps=np.array([1, 5, 10]),
                                 dice_2d_by_steps=np.array([0.2, 0.7, 0.9]))
    predictions.save_predictions(rundir.stage_dir(run, "deploy"), "loihi",
                                 np.full((2, H, W, 1), -5.0, np.float32), indices=np.array([0, 2]))
    return run, part


def test_dice_vs_threshold_plots_each_stages_dice(tmp_path, drawn):
    run, part = segmentation_run(tmp_path)
    curves = figures.dice_vs_threshold_data(predictions.load(run, "examples"),
                                            figures.saved_stages(run))
    assert [label for label, _, _ in curves] == ["converted SNN", "Loihi emulator"]
    # everything predicted at 0.1: Dice 2|T| / (|T| + 16) per slice
    at_01 = np.mean([2 * s / (s + H * W) for s in SIZES])
    want = np.where(figures.THRESHOLDS < 0.12, at_01, np.where(figures.THRESHOLDS < 0.88, 1.0, 0.0))
    (_, x, snn), (_, loihi_x, loihi) = curves
    np.testing.assert_array_equal(x, figures.THRESHOLDS)
    np.testing.assert_allclose(snn, want, rtol=1e-12)
    np.testing.assert_array_equal(loihi, np.zeros(len(figures.THRESHOLDS)))

    path = figures.dice_vs_threshold(run)
    assert path == run / "figures" / "dice_vs_threshold.png" and path.stat().st_size > 1000
    ax = drawn["dice_vs_threshold.png"].axes[0]
    assert [line.get_label() for line in ax.lines] == ["converted SNN", "Loihi emulator"]
    for line, (_, x, y) in zip(ax.lines, curves):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_array_equal(line.get_ydata(), y)
    assert ax.get_xlabel() == "output threshold" and ax.get_ylabel() == "mean Dice 2D"


def test_dice_vs_steps_plots_the_saved_curve(tmp_path, drawn):
    run, _ = segmentation_run(tmp_path)
    curves = figures.dice_vs_steps_data(figures.saved_stages(run))
    assert len(curves) == 1 and curves[0][0] == "converted SNN"  # Loihi saved no steps
    figures.dice_vs_steps(run)
    (line,) = drawn["dice_vs_steps.png"].axes[0].lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 5, 10])
    np.testing.assert_array_equal(line.get_ydata(), [0.2, 0.7, 0.9])
    assert figures.dice_vs_steps(tmp_path / "empty") is None


def test_masks_shows_the_slices_with_most_foreground_that_every_stage_ran(tmp_path, drawn):
    run, part = segmentation_run(tmp_path)
    picks, columns = figures.masks_data(predictions.load(run, "examples"), figures.saved_stages(run))
    # Loihi ran examples 0 and 2 only; 2 has more foreground
    np.testing.assert_array_equal(picks, [2, 0])
    assert [title for title, _ in columns] == ["input", "ground truth", "converted SNN",
                                               "Loihi emulator"]
    truth = part.y[..., 0] > 0
    np.testing.assert_array_equal(columns[1][1], truth)
    np.testing.assert_array_equal(columns[2][1], truth)  # logits +-2: the true masks
    assert not columns[3][1].any()

    path = figures.masks(run)
    assert path.name == "masks.png"
    axes = np.array(drawn["masks.png"].axes).reshape(len(picks), len(columns))
    for row, index in enumerate(picks):
        for col, (title, images) in enumerate(columns):
            (image,) = axes[row, col].get_images()
            np.testing.assert_array_equal(image.get_array(), images[index])
    assert [ax.get_title() for ax in axes[0]] == [title for title, _ in columns]
    assert axes[0, 0].get_ylabel() == "s2\nslice 3"


def test_firing_rates_bars_are_the_stages_rates(tmp_path, drawn, monkeypatch):
    stages = {
        "ann": {"test": {}},
        "ann_on_snn_examples": {"firing_rates_hz": {}},
        "converted_snn": {"firing_rates_hz": {"c1": 40.0, "c2": 12.5}},
        "hybrid_snn": {"firing_rates_hz": {"c1": 30.0}},
        "loihi": {"firing_rates_hz": {"c1": 29.0, "c2": 11.0}},
    }
    layers, bars = figures.firing_rates_data(stages)
    assert layers == ["c1", "c2"]
    assert [label for label, _ in bars] == ["converted SNN", "hybrid SNN", "Loihi emulator"]
    np.testing.assert_array_equal([v for _, v in bars], [[40.0, 12.5], [30.0, np.nan], [29.0, 11.0]])
    assert figures.firing_rates_data({"ann": {}}) is None

    monkeypatch.setattr(figures, "read_results", lambda run_dir: {"stages": stages})
    figures.firing_rates(tmp_path)
    ax = drawn["firing_rates.png"].axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    np.testing.assert_array_equal(heights, [40.0, 12.5, 30.0, np.nan, 29.0, 11.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == layers
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [label for label, _ in bars]


def test_box_regression_run_draws_boxes_not_masks(tmp_path, drawn):
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    truth = np.array([[0.1, 0.2, 0.8, 0.9]] * 5, np.float32)
    part = SimpleNamespace(x=rng.random((5, 16, 24, 3), dtype=np.float32), y=truth,
                           groups=np.array([f"image_{i:04d}" for i in range(5)]),
                           slice_index=np.zeros(5, int))
    predictions.save_examples(rundir.stage_dir(run, "convert"), part)
    predicted = truth + np.arange(5, dtype=np.float32)[:, None] / 100
    predictions.save_predictions(rundir.stage_dir(run, "cotrain"), "hybrid_snn", predicted)

    picks, boxes = figures.boxes_data(predictions.load(run, "examples"), figures.saved_stages(run))
    np.testing.assert_array_equal(picks, [0, 1, 2, 4])
    assert [label for label, _ in boxes] == ["ground truth", "hybrid SNN"]
    np.testing.assert_array_equal(boxes[1][1][4], predicted[4])

    path = figures.masks(run)
    assert path is not None and path.name == "boxes.png" and path.stat().st_size > 0
    assert not (run / "figures" / "masks.png").exists()
    axes = drawn["boxes.png"].axes
    assert [ax.get_title() for ax in axes] == [f"image_{i:04d}" for i in picks]
    for ax, index in zip(axes, picks):
        rects = {r.get_label(): r for r in ax.patches}
        assert set(rects) == {"ground truth", "hybrid SNN"}
        x1, y1, x2, y2 = predicted[index]
        rect = rects["hybrid SNN"]
        assert rect.get_xy() == pytest.approx((x1 * 24 - 0.5, y1 * 16 - 0.5))
        assert rect.get_width() == pytest.approx((x2 - x1) * 24)
        assert rect.get_height() == pytest.approx((y2 - y1) * 16)
