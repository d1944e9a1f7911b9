"""Figures of box-regression runs: boxes over the images instead of masks."""

from types import SimpleNamespace

import numpy as np

from nengoseg import figures, predictions


def test_box_regression_run_draws_boxes_not_masks(tmp_path):
    rng = np.random.default_rng(0)
    boxes = np.array([[0.1, 0.2, 0.8, 0.9]] * 5, np.float32)
    part = SimpleNamespace(x=rng.random((5, 16, 24, 3), dtype=np.float32), y=boxes,
                           groups=np.array([f"image_{i:04d}" for i in range(5)]),
                           slice_index=np.zeros(5, int))
    predictions.save_examples(tmp_path, part)
    predictions.save_predictions(tmp_path, "hybrid_snn", boxes + 0.01)
    path = figures.masks(tmp_path)
    assert path is not None and path.name == "boxes.png" and path.stat().st_size > 0
    assert not (tmp_path / "figures" / "masks.png").exists()
