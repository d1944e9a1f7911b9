"""Losses and metrics against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from nengoseg import losses, metrics
from nengoseg.errors import ConfigError
from nengoseg.models import build_unet

# A 3x3 example used throughout:
#   pred      true
#   1 1 0     1 0 0
#   1 0 0     1 1 0
#   0 0 0     0 0 0
# TP = 2 (top-left, middle-left), FP = 1 (top-middle), FN = 1 (centre), TN = 5.
PRED = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
TRUE = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], bool)
ONE_PIXEL = np.zeros((3, 3), bool)
ONE_PIXEL[2, 2] = True
EMPTY = np.zeros((3, 3), bool)

# Three slices: the example; a false positive on a slice with empty truth; a hit.
PRED_SLICES = np.stack([PRED, ONE_PIXEL, ONE_PIXEL])[..., None]  # (N, H, W, 1)
TRUE_SLICES = np.stack([TRUE, EMPTY, ONE_PIXEL])[..., None]


def image(values):
    """A (1, H, W, 1) float32 batch from a 2D list."""
    return tf.constant(np.asarray(values, np.float32)[None, ..., None])


# ---- numpy metrics ------------------------------------------------------------------


def test_mask_metrics_by_hand():
    assert metrics.dice(PRED, TRUE) == pytest.approx(2 / 3)  # 2*2 / (3 + 3)
    assert metrics.f1_score(PRED, TRUE) == pytest.approx(2 / 3)  # precision = recall = 2/3
    assert metrics.jaccard(PRED, TRUE) == pytest.approx(1 / 2)  # 2 / (2 + 1 + 1)
    assert metrics.pixel_accuracy(PRED, TRUE) == pytest.approx(7 / 9)  # (2 + 5) / 9
    assert metrics.dice(EMPTY, EMPTY) == 1.0 and metrics.dice(EMPTY, EMPTY, empty=0.0) == 0.0
    assert metrics.dice(ONE_PIXEL, EMPTY) == 0.0  # 0 / (1 + 0)
    # 0/1 arrays work as well as booleans
    assert metrics.jaccard(PRED.astype(int), TRUE.astype(float)) == pytest.approx(1 / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.dice(PRED, TRUE[:2])


def test_dice_per_slice_skips_empty_truth():
    # slice 1 has empty truth: skipped by default, Dice 0 (1 false positive) when kept
    np.testing.assert_allclose(metrics.dice_per_slice(PRED_SLICES, TRUE_SLICES), [2 / 3, 1.0])
    np.testing.assert_allclose(
        metrics.dice_per_slice(PRED_SLICES, TRUE_SLICES, skip_empty_truth=False), [2 / 3, 0.0, 1.0]
    )
    both_empty = np.zeros((2, 3, 3), bool)
    kept = metrics.dice_per_slice(both_empty, both_empty, skip_empty_truth=False)
    np.testing.assert_allclose(kept, [1, 1])
    assert metrics.dice_per_slice(both_empty, both_empty).shape == (0,)


def test_dice_per_subject_groups_slices():
    # subject 7 = slices 0 and 2: TP 2+1, FP 1, FN 1 -> 2*3 / (2*3 + 1 + 1) = 0.75
    # subject 3 = slice 1: one false positive, no truth -> 0
    per_subject = metrics.dice_per_subject(PRED_SLICES, TRUE_SLICES, np.array([7, 3, 7]))
    assert list(per_subject) == [7, 3] and all(type(key) is int for key in per_subject)
    assert per_subject[7] == pytest.approx(0.75) and per_subject[3] == 0.0
    assert metrics.dice_per_subject(PRED_SLICES, TRUE_SLICES, ["a", "a", "a"]) == {
        "a": pytest.approx(6 / 9)  # TP 3, FP 2, FN 1 -> 6 / (6 + 2 + 1)
    }
    with pytest.raises(ValueError, match="subject"):
        metrics.dice_per_subject(PRED_SLICES, TRUE_SLICES, ["a", "b"])


def test_mean_std():
    mean, std = metrics.mean_std([1, 2, 3, 4])
    assert (mean, std) == (2.5, pytest.approx(math.sqrt(1.25)))  # deviations 1.5, .5, .5, 1.5
    assert all(math.isnan(v) for v in metrics.mean_std([]))


BOXES_PRED = [[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [2, 0, 0, 2], [1, 1, 1, 1]]
BOXES_TRUE = [[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3], [0, 0, 2, 2], [1, 1, 1, 1]]
# overlap 1x1 of two 2x2 boxes: 1 / (4 + 4 - 1); identical; disjoint;
# x2 < x1 makes the prediction empty; zero-area union scores 0
BOXES_IOU = [1 / 7, 1.0, 0.0, 0.0, 0.0]


def test_box_iou():
    np.testing.assert_allclose(metrics.box_iou(BOXES_PRED, BOXES_TRUE), BOXES_IOU)
    np.testing.assert_allclose(metrics.box_iou([0, 0, 2, 2], [1, 1, 3, 3]), [1 / 7])


def test_psnr_and_ssim():
    rng = np.random.default_rng(0)
    picture = rng.random((16, 16)).astype(np.float32) * 0.8
    # a constant offset of 0.1: MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB
    assert metrics.psnr(picture + 0.1, picture) == pytest.approx(20.0, abs=1e-3)
    batch = np.stack([picture, picture])[..., None]
    np.testing.assert_allclose(metrics.psnr(batch + 0.1, batch), [20, 20], atol=1e-3)
    assert metrics.ssim(picture, picture) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(picture, rng.random((16, 16))) < 0.5


# ---- Keras metrics ------------------------------------------------------------------


def test_dice_metric_accumulates_over_batches():
    metric = metrics.DiceMetric()
    logits = lambda mask: np.where(mask, 5.0, -5.0)[None, ..., None]  # noqa: E731
    metric.update_state(TRUE[None, ..., None].astype(np.float32), logits(PRED))
    assert float(metric.result()) == pytest.approx(2 / 3)
    metric.update_state(EMPTY[None, ..., None].astype(np.float32), logits(ONE_PIXEL))
    # both batches together: TP 2, FP 2, FN 1 -> 4 / (4 + 2 + 1)
    assert float(metric.result()) == pytest.approx(4 / 7)
    metric.reset_state()
    assert float(metric.result()) == 1.0
    # logit 0 is probability 0.5, not above the threshold: nothing predicted
    metric.update_state(TRUE[None, ..., None].astype(np.float32), np.zeros((1, 3, 3, 1)))
    assert float(metric.result()) == 0.0


def test_dice_metric_multichannel_scores_foreground():
    # pixel classes: true [0, 1, 2], predicted (argmax) [0, 2, 0]: foreground TP 1, FN 1
    true = tf.one_hot([[0, 1, 2]], 3)[..., None, :]  # (1, 3, 1, 3)
    logits = tf.one_hot([[0, 2, 0]], 3)[..., None, :] * 4.0
    metric = metrics.DiceMetric()
    metric.update_state(true, logits)
    assert float(metric.result()) == pytest.approx(2 / 3)  # 2*1 / (1 + 2)


def test_mean_iou_boxes_metric():
    metric = metrics.MeanIoUBoxes()
    metric.update_state(tf.constant(BOXES_TRUE, tf.float32), tf.constant(BOXES_PRED, tf.float32))
    assert float(metric.result()) == pytest.approx(np.mean(BOXES_IOU))
    assert metric.name == "iou"


# ---- losses -------------------------------------------------------------------------


def test_bce_on_two_pixels_by_hand():
    # logits 0 and ln 3 are probabilities 1/2 and 3/4; labels 1 and 0:
    # mean(-ln 1/2, -ln(1 - 3/4)) = (ln 2 + ln 4) / 2 = 1.5 ln 2
    y_true, y_pred = image([[1, 0]]), image([[0, math.log(3)]])
    expected = pytest.approx(1.5 * math.log(2), rel=1e-5)
    assert float(losses.BinaryCrossentropy()(y_true, y_pred)) == expected
    assert float(losses.get_loss("bce")(y_true, y_pred)) == expected


def test_dice_loss_over_the_batch_or_per_sample():
    # sample 1: logits 0 -> s = 1/2 everywhere, r = [1, 1, 0, 0]:
    #   (2 * 1 + eps) / (2 + 2 + eps) = 1/2 -> loss 1/2
    # sample 2: logits +-100 match r = [1, 0, 0, 0] -> Dice 1 -> loss 0
    # per-sample mean 1/4; over the whole batch: intersection 1 + 1 = 2,
    # sizes (2 + 2) + (1 + 1) = 6 -> Dice 4/6 -> loss 1/3
    y_true = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]], np.float32)[..., None]
    y_pred = np.array([[[0, 0], [0, 0]], [[100, -100], [-100, -100]]], np.float32)[..., None]
    per_sample = losses.DiceLoss(per_sample=True)(y_true, y_pred)
    assert float(per_sample) == pytest.approx(0.25, abs=1e-5)
    assert float(losses.DiceLoss()(y_true, y_pred)) == pytest.approx(1 / 3, abs=1e-5)


def test_dice_loss_with_large_logits_is_one_minus_hard_dice():
    y_pred = tf.constant(np.where(PRED, 50.0, -50.0)[None, ..., None], tf.float32)
    y_true = tf.constant(TRUE[None, ..., None], tf.float32)
    assert float(losses.DiceLoss()(y_true, y_pred)) == pytest.approx(1 - 2 / 3, abs=1e-5)
    # empty prediction of an empty mask: (0 + eps) / (0 + eps) = 1 -> loss 0
    empty_loss = losses.DiceLoss()(tf.zeros((1, 3, 3, 1)), tf.fill((1, 3, 3, 1), -50.0))
    assert float(empty_loss) == pytest.approx(0)
    # probabilities instead of logits
    probs = tf.constant(PRED[None, ..., None], tf.float32)
    loss = losses.DiceLoss(from_logits=False)
    assert float(loss(y_true, probs)) == pytest.approx(1 / 3, abs=1e-5)


def test_bce_dice_weights():
    # the two-pixel example: BCE = 1.5 ln 2; Dice with s = [1/2, 3/4], r = [1, 0]:
    #   (2 * 1/2) / (5/4 + 1) = 4/9 -> Dice loss 5/9
    y_true, y_pred = image([[1, 0]]), image([[0, math.log(3)]])
    expected = 0.3 * 1.5 * math.log(2) + 0.7 * 5 / 9
    loss = losses.get_loss("bce_dice", bce_weight=0.3, dice_weight=0.7)
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.BCEDiceLoss()(y_true, y_pred)) == pytest.approx(
        0.5 * 1.5 * math.log(2) + 0.5 * 5 / 9, rel=1e-5
    )


def test_multiclass_losses_take_integer_or_one_hot_labels():
    labels = np.array([1, 2]).reshape(1, 1, 2, 1)  # (N, H, W, 1): pixel classes 1 and 2
    one_hot = tf.one_hot(labels[..., 0], 3)
    # uniform logits: cross-entropy ln 3 at every pixel
    ce = losses.get_loss("bce", n_classes=3)
    assert float(ce(labels, tf.zeros((1, 1, 2, 3)))) == pytest.approx(math.log(3), rel=1e-5)
    # both pixels predicted as class 1: class 1 Dice 2*1 / (2 + 1) = 2/3,
    # class 2 Dice 0 / (0 + 1) = 0; mean over the foreground classes 1/3 -> loss 2/3
    # (background, class 0, is left out)
    logits = tf.one_hot([[1, 1]], 3)[None] * 100.0
    dice = losses.get_loss("dice", n_classes=3)
    assert float(dice(labels, logits)) == pytest.approx(2 / 3, abs=1e-5)
    assert float(dice(one_hot, logits)) == pytest.approx(2 / 3, abs=1e-5)
    bce_dice = losses.get_loss("bce_dice", n_classes=3)
    assert float(bce_dice(labels, logits)) == pytest.approx(float(bce_dice(one_hot, logits)))


def test_get_loss_names_and_errors():
    assert isinstance(losses.get_loss("mse"), tf.keras.losses.MeanSquaredError)
    assert isinstance(losses.get_loss("mae"), tf.keras.losses.MeanAbsoluteError)
    assert isinstance(losses.get_loss("dice", n_classes=2), losses.DiceLoss)
    with pytest.raises(ConfigError, match="'hinge'.*bce, dice, bce_dice, mse, mae"):
        losses.get_loss("hinge")
    with pytest.raises(ConfigError, match="'bce_weight' for loss 'dice'.*smooth, n_classes"):
        losses.get_loss("dice", bce_weight=0.5)
    with pytest.raises(ConfigError, match="dice_weight"):
        losses.get_loss("bce_dice", dice_weight=-1)


@pytest.mark.parametrize(
    "loss",
    [
        losses.BinaryCrossentropy(),
        losses.DiceLoss(n_classes=3, smooth=0.1),
        losses.BCEDiceLoss(0.3, 0.7),
        losses.SoftmaxCrossentropy(4),
    ],
)
def test_losses_serialize(loss):
    again = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_training_with_bce_dice_and_dice_metric_then_save(tmp_path):
    tf.keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).random((8, 16, 16, 1), dtype=np.float32)
    y = (x > 0.5).astype(np.uint8)  # labels as the data loaders make them
    model = build_unet((16, 16, 1), filters=8, depth=2, dropout=0.0)
    model.compile(tf.keras.optimizers.Adam(0.003), losses.get_loss("bce_dice"),
                  metrics=[metrics.DiceMetric()])
    history = model.fit(x, y, batch_size=4, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["dice"][0] < history["dice"][-1] <= 1
    model.save(tmp_path / "model.h5", save_format="h5")
    loaded = tf.keras.models.load_model(tmp_path / "model.h5")  # custom loss and metric registered
    assert isinstance(loaded.loss, losses.BCEDiceLoss)
