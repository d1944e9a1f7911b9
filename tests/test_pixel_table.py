"""The Spiking-UNet paper's pixel metrics: F1, JS and ACC per image in the report
(``evaluate.table: pixel``), and ISBI 2012 with the cell interior as the foreground."""

import shutil

import numpy as np
import pytest
from PIL import Image

from nengoseg import config as nsconfig
from nengoseg import evaluate, metrics
from nengoseg.experiment_data import Part, load_experiment_data
from nengoseg.report import table


def test_per_image_jaccard_and_accuracy_by_hand():
    true = np.zeros((3, 2, 2), bool)
    pred = np.zeros((3, 2, 2), bool)
    # image "a" (two tiles): 2 true pixels, 1 found, 1 false positive
    true[0, 0, 0] = true[1, 0, 0] = True
    pred[0, 0, 0] = pred[0, 1, 1] = True
    # image "b" (one tile): everything right
    true[2, 1] = pred[2, 1] = True
    groups = np.array(["a", "a", "b"])
    assert metrics.per_subject(metrics.jaccard, pred, true, groups) == {"a": 1 / 3, "b": 1.0}
    assert metrics.per_subject(metrics.pixel_accuracy, pred, true, groups) == {
        "a": 6 / 8, "b": 1.0}
    logits = np.where(pred, 5.0, -5.0)[..., None].astype(np.float32)
    part = Part(np.zeros((3, 2, 2, 1)), true[..., None].astype(np.uint8), groups,
                np.arange(3))
    scores = evaluate.score("segmentation", logits, part)
    assert scores["jaccard_3d_mean"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["accuracy_3d_mean"] == pytest.approx((6 / 8 + 1) / 2)
    assert scores["dice_3d_mean"] == pytest.approx((0.5 + 1) / 2)  # F1 per image
    results = {"stages": {"ann": {"test": scores}}}
    pixel = table(results, "pixel")
    assert "| model | F1 | JS | ACC |" in pixel
    assert f"| {scores['dice_3d_mean']:.4f} ± {scores['dice_3d_std']:.4f} | " \
           f"{scores['jaccard_3d_mean']:.4f} ± {scores['jaccard_3d_std']:.4f} |" in pixel
    assert "| Dice 2D | Dice 3D |" in table(results)


def test_isbi_config_can_make_the_cell_interior_the_foreground(tmp_path, isbi_shared):
    for n in range(3):
        for kind in ("image", "label"):
            target = tmp_path / "isbi" / "train" / kind / f"{n}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(isbi_shared / "train" / kind / f"{n}.png", target)
    raw = {"data": {"dataset": "isbi2012", "root": str(tmp_path / "isbi"), "size": [256, 256],
                    "test_fraction": 0.34, "val_fraction": 0.0}}
    membrane = load_experiment_data(nsconfig.resolve(raw))
    raw["data"]["foreground"] = "cell"
    cell = load_experiment_data(nsconfig.resolve(raw))
    assert len(cell.train) + len(cell.test) == 12  # 3 images of 4 tiles each
    np.testing.assert_array_equal(cell.train.y, 1 - membrane.train.y)
    first = cell.train.groups[0]
    on_disk = np.asarray(Image.open(tmp_path / "isbi" / "train" / "label" / f"{first}.png"))
    np.testing.assert_array_equal(cell.train.y[0, ..., 0], on_disk[:256, :256] == 255)
    with pytest.raises(Exception, match="foreground"):
        raw["data"]["foreground"] = "nucleus"
        nsconfig.resolve(raw)
