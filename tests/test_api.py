"""The Python API (`nengoseg.spiking_model`): a user's own Keras U-Net, converted,
fine-tuned, run on every backend, saved and loaded; and the README's example."""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import nengoseg as ns
from nengoseg import metrics
from nengoseg.data.hippocampus import load_hippocampus, sample_path, volumes_to_slices
from nengoseg.errors import ConfigError, ConversionError, DataError

ROOT = Path(__file__).resolve().parents[1]
L = tf.keras.layers


def small_unet(shape=(24, 24, 1), filters=8):
    """Not the zoo's U-Net: a Conv-BatchNorm-ReLU block, a skip, a sigmoid head."""
    inp = L.Input(shape)
    a = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(inp)))
    b = L.Conv2D(2 * filters, 3, padding="same", activation="relu")(L.AveragePooling2D()(a))
    u = L.Conv2DTranspose(filters, 2, strides=2, activation="relu")(b)
    c = L.Conv2D(filters, 3, padding="same", activation="relu")(L.Concatenate()([u, a]))
    return tf.keras.Model(inp, L.Conv2D(1, 1, activation="sigmoid")(c), name="my_unet")


@pytest.fixture(scope="module")
def slices():
    """The shipped sample (24 subjects) cut to 24 x 24 around the hippocampus; the
    last three subjects held out."""
    s = volumes_to_slices(load_hippocampus(sample_path()), axis=0, size=(24, 24))
    # the slices with hippocampus in them (and every third one without)
    keep = (s.y.reshape(len(s.y), -1).sum(axis=1) > 0) | (np.arange(len(s.y)) % 3 == 0)
    s = type(s)(s.x[keep], s.y[keep], s.subjects[keep], s.slice_index[keep])
    test = np.isin(s.subjects, np.unique(s.subjects)[-3:])
    return s, test


@pytest.fixture(scope="module")
def fitted(slices):
    s, test = slices
    tf.keras.utils.set_random_seed(0)
    model = small_unet()
    model.compile(tf.keras.optimizers.Adam(1e-2), "binary_crossentropy")
    model.fit(s.x[~test], s.y[~test], epochs=10, batch_size=16, verbose=0)
    snn = ns.convert(model, neuron_model="loihi", normalise="percentile", n_steps=12,
                     calibration_data=s.x[~test][:32])
    before = [w.copy() for w in snn.keras_model.get_weights()]
    snn.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=ns.losses.DiceLoss(),
                metrics=[ns.metrics.DiceMetric(name="dice")], rate_target_hz=100)
    history = snn.fit(s.x[~test], s.y[~test], validation_data=(s.x[test], s.y[test]),
                      epochs=2, batch_size=8, max_examples=32,
                      callbacks=[tf.keras.callbacks.EarlyStopping(patience=3)])
    return model, snn, before, history


def test_the_users_model_is_untouched_and_fit_trains_the_spiking_one(fitted):
    model, snn, before, history = fitted
    assert snn.keras_model is not model
    assert any(layer.__class__.__name__ == "BatchNormalization" for layer in model.layers)
    assert len(history.history["loss"]) == 2
    for key in ("loss", "task_loss", "dice", "rate_hz", "val_loss", "val_dice", "val_rate_hz"):
        assert key in history.history, key
    changed = [not np.array_equal(a, b) for a, b in zip(before, snn.keras_model.get_weights())]
    assert any(changed)
    assert snn.history is history


def test_predict_on_every_backend_and_the_simulators_agree(fitted, slices):
    _, snn, _, _ = fitted
    s, test = slices
    # the held-out slices with the most hippocampus
    x = s.x[test][np.argsort(-s.y[test].reshape(int(test.sum()), -1).sum(axis=1))[:6]]
    probs = {b: snn.predict(x, backend=b) for b in ("ann", "engine", "nengo-dl")}
    for backend, p in probs.items():
        assert p.shape == (6, 24, 24, 1), backend
        assert 0 <= p.min() and p.max() <= 1, backend
    # the engine and NengoDL see the same input spikes and neuron dynamics
    np.testing.assert_allclose(probs["engine"], probs["nengo-dl"], atol=2e-3)
    chip = ns.loihi.compile(snn, target="sim")
    on_chip = chip.predict(x[:2], n_steps=40)
    assert on_chip.shape == (2, 24, 24, 1)
    # the same emulator by its name in the API
    np.testing.assert_array_equal(snn.predict(x[:2], backend="loihi-sim", n_steps=40), on_chip)
    engine = snn.predict(x[:2], n_steps=40)
    # not equal: Loihi quantises the weights and each layer delays spikes by a step
    assert metrics.dice(on_chip > 0.5, engine > 0.5) > 0.7
    report = chip.resources()
    assert report["total"]["cores"] >= len(snn.description.neuron_layers)
    assert "| **total** |" in chip.resources_table()


def test_compile_reuses_the_block_shapes_found_before(fitted, monkeypatch):
    """What ``nengoseg deploy`` does with the shapes of its last deployment."""
    from nengoseg.loihi import chip as chip_module

    _, snn, _, _ = fitted
    first = ns.loihi.compile(snn, target="sim")
    found = first.resources()
    shapes = {name: row["block_shape"] for name, row in found["layers"].items()}

    def search(*args, **kwargs):
        raise AssertionError("searched again")

    monkeypatch.setattr(chip_module, "tile", search)
    again = ns.loihi.compile(snn, target="sim", block_shapes=shapes)
    assert again.resources() == found
    # shapes that do not cover every layer are searched for again
    with pytest.raises(AssertionError, match="searched again"):
        ns.loihi.compile(snn, target="sim", block_shapes=dict(list(shapes.items())[:1]))


def test_save_and_load_give_identical_predictions(fitted, slices, tmp_path):
    _, snn, _, _ = fitted
    s, test = slices
    folder = snn.save(tmp_path / "my_snn")
    assert (folder / "conversion.json").is_file() and (folder / "network.json").is_file()
    loaded = ns.load(folder)
    assert loaded.settings == snn.settings
    for a, b in zip(loaded.keras_model.get_weights(), snn.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = s.x[test][:4]
    np.testing.assert_array_equal(loaded.predict(x), snn.predict(x))


def test_evaluate_scores_each_group_as_one_volume(fitted, slices):
    _, snn, _, _ = fitted
    s, test = slices
    x, y, groups = s.x[test], s.y[test], s.subjects[test]
    scores = snn.evaluate(x, y, groups=groups)
    masks = snn.predict(x) > snn.settings.threshold
    for subject in np.unique(groups):
        rows = groups == subject
        assert scores["dice_3d_per_subject"][subject] == pytest.approx(
            metrics.dice(masks[rows], y[rows] > 0))
    assert scores["n_subjects"] == 3 and scores["backend"] == "engine"
    assert scores["mean_firing_rate_hz"] > 0
    ann = snn.evaluate(x, y, groups=groups, backend="ann")
    assert "mean_firing_rate_hz" not in ann and ann["backend"] == "ann"


def test_energy_report(fitted, slices):
    _, snn, _, _ = fitted
    s, test = slices
    report = ns.energy(snn, s.x[test][:4])
    assert report.rows["snn"]["synops"] > 0 and report.rows["ann"]["synops"] > 0
    assert report.rows["snn"]["neuron_updates"] == 12 * sum(
        int(np.prod(layer.shape)) for layer in snn.description.layers if layer.neurons is not None)
    text = report.summary(print_fn=None)
    assert "Loihi" in text and "GPU" in text
    assert report.ratio() == pytest.approx(
        report.rows["ann"]["joules_gpu"] / report.rows["snn"]["joules_loihi"])


def test_unconvertible_layers_are_listed_together_before_any_work(monkeypatch):
    from nengoseg.convert import converter

    def no_work(*args, **kwargs):
        raise AssertionError("conversion started")

    monkeypatch.setattr(converter, "percentile_activations", no_work)
    inp = L.Input((8, 8, 1))
    a = L.Conv2D(2, 3, padding="same", activation="tanh", name="tanh_conv")(inp)
    b = L.Lambda(lambda t: 2 * t, name="double")(a)
    c = L.UpSampling2D(name="up")(L.MaxPool2D(name="pool")(b))
    model = tf.keras.Model(inp, L.Conv2D(1, 1, activation="sigmoid")(c))
    with pytest.raises(ConversionError) as err:
        ns.convert(model, normalise="percentile", calibration_data=np.zeros((2, 8, 8, 1)))
    message = str(err.value)
    assert message.startswith("3 layer(s)")
    for name, reason in (("tanh_conv", "tanh"), ("double", "Lambda"), ("pool", "max_to_avg_pool")):
        line = next(line for line in message.splitlines() if f"'{name}'" in line)
        assert reason in line
    assert "'up'" not in message


def test_bad_input_names_what_fits(fitted, slices):
    _, snn, _, _ = fitted
    s, test = slices
    with pytest.raises(DataError, match=r"\(n, 24, 24, 1\)"):
        snn.predict(np.zeros((2, 32, 32, 1)))
    with pytest.raises(DataError, match="groups"):
        snn.evaluate(s.x[test][:3], s.y[test][:3], groups=[0, 1])
    with pytest.raises(DataError, match="3 inputs but 2 targets"):
        snn.evaluate(s.x[test][:3], s.y[test][:2])
    with pytest.raises(ConfigError, match="allowed: .*'loihi-sim'"):
        snn.predict(s.x[test][:1], backend="gpu")
    with pytest.raises(ConfigError, match="'hybrid', 'bptt'"):
        snn.fit(s.x[:2], s.y[:2], method="sgd")
    with pytest.raises(ConfigError, match="neuron_model"):
        ns.convert(small_unet(), neuron_model="hodgkin_huxley")
    with pytest.raises(DataError, match="no such Keras model file"):
        ns.convert("does_not_exist.h5")


def test_a_model_file_with_its_own_layers_needs_custom_objects(tmp_path):
    class Doubling(L.Layer):
        def call(self, t):
            return 2 * t

    inp = L.Input((8, 8, 1))
    model = tf.keras.Model(inp, L.Conv2D(1, 1)(Doubling()(inp)))
    path = tmp_path / "custom.h5"
    model.save(path)
    with pytest.raises(DataError, match="custom_objects"):
        ns.convert(path)
    with pytest.raises(ConversionError, match="'doubling' \\(Doubling\\).*no NengoDL converter"):
        ns.convert(path, custom_objects={"Doubling": Doubling})


def readme_example():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    section = section[: section.index("\n## ", 1)]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(readme_example(), "README.md (Python API)", "exec"), namespace)
    assert (tmp_path / "my_snn" / "conversion.json").is_file()
    assert isinstance(namespace["snn"], ns.SpikingModel)
    assert namespace["loihi_probs"].shape == (8, 48, 40, 1)
    out = capsys.readouterr().out
    assert "ann: Dice 3D" in out and "engine: Dice 3D" in out and "Energy per inference" in out


def test_an_interrupted_fit_resumes_with_backup_and_restore(fitted, slices, tmp_path):
    model, _, _, _ = fitted
    s, test = slices
    x, y = s.x[~test][:16], s.y[~test][:16]

    class Interrupt(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    backup = tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    snn = ns.convert(model, neuron_model="loihi", scale_firing_rates=500, n_steps=8)
    with pytest.raises(KeyboardInterrupt):
        snn.fit(x, y, epochs=3, batch_size=8, callbacks=[backup, Interrupt()])
    history = snn.fit(x, y, epochs=3, batch_size=8, callbacks=[backup])
    assert history.epoch == [2]  # epochs 0 and 1 were backed up
    assert not (tmp_path / "backup").exists() or not any((tmp_path / "backup").iterdir())


def test_evaluate_gives_the_scores_the_convert_stage_records(tmp_path):
    """A user's model through the pipeline's convert stage (``--checkpoint``), loaded
    back from ``RUN/snn`` with `ns.load`, scores what the stage recorded."""
    from nengoseg.config import load_config
    from nengoseg.experiment_data import load_experiment_data
    from nengoseg.snn_stage import convert_stage, evaluation_part

    cfg = load_config(ROOT / "configs" / "default.yaml",
                      ["data.size=[24, 24]", "data.max_subjects=8", "convert.n_steps=8",
                       "evaluate.max_subjects=2", "evaluate.calibration_examples=16"])
    data = load_experiment_data(cfg)
    tf.keras.utils.set_random_seed(0)
    model = small_unet()
    model.compile(tf.keras.optimizers.Adam(1e-2), "binary_crossentropy")
    model.fit(data.train.x, data.train.y, epochs=3, batch_size=16, verbose=0)
    checkpoint = tmp_path / "mine.h5"
    model.save(checkpoint)
    results = convert_stage(cfg, tmp_path / "run", data, checkpoint=checkpoint, verbose=False)
    recorded = results["stages"]["converted_snn"]
    part = evaluation_part(cfg, data)
    snn = ns.load(tmp_path / "run" / "snn")
    scores = snn.evaluate(part.x, part.y, groups=part.groups, backend=recorded["engine"],
                          batch_size=cfg["evaluate"]["minibatch_size"])
    numbers = {k: v for k, v in recorded["scores"].items() if isinstance(v, (int, float))}
    assert "dice_3d_mean" in numbers and "dice_2d_mean" in numbers
    for key, value in numbers.items():
        assert scores[key] == pytest.approx(value, abs=1e-9), key
    assert scores["mean_firing_rate_hz"] == pytest.approx(recorded["mean_firing_rate_hz"])
