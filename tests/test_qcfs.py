"""The QCFS activation (Bu et al. 2022) and its lossless conversion at T = L steps.

The Keras layer outputs the L + 1 levels ``k * lambda / L`` of the clip-floor-shift
formula and passes gradients straight through the floor; a network trained with it
converts (``normalise="qcfs"``: each layer's learned threshold fires one spike per
step; IF neurons with reset by subtraction starting at half the threshold) to a
spiking network whose output after T = L steps equals the quantised ANN's, in NengoDL
and in the engine; a rebuilt conversion (no QCFS layers left, recorded factors) runs
the same network; a model whose neuron layers are not all QCFS is refused by name.
"""

import numpy as np
import pytest
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg.convert import QCFS
from nengoseg.engine import run_engine
from nengoseg.errors import ConfigError, ConversionError
from nengoseg.models import build_model

L = tf.keras.layers
LEVELS = 4


def test_qcfs_outputs_the_clip_floor_shift_levels():
    layer = QCFS(levels=LEVELS, initial_threshold=2.0)
    x = tf.constant(np.linspace(-1, 3, 401, dtype=np.float32))
    y = layer(x).numpy()
    expected = 2.0 * np.clip(np.floor(x.numpy() * LEVELS / 2.0 + 0.5) / LEVELS, 0, 1)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert set(np.round(y / 0.5, 5)) == {0, 1, 2, 3, 4}


def test_qcfs_gradient_passes_straight_through_the_floor_and_trains_the_threshold():
    layer = QCFS(levels=LEVELS, initial_threshold=2.0)
    x = tf.constant([-0.5, 0.3, 1.1, 1.9, 2.5, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    dx, dlam = tape.gradient(y, [x, layer.threshold])
    np.testing.assert_allclose(dx.numpy(), [0, 1, 1, 1, 0, 0], atol=1e-6)
    # above the threshold the output is lambda itself: each clipped input adds 1
    assert dlam.numpy() >= 2.0


def qcfs_net(hidden=1, seed=0):
    tf.keras.utils.set_random_seed(seed)
    x = inp = L.Input((8, 8, 1))
    for i in range(hidden):
        x = L.Conv2D(6, 3, padding="same", name=f"conv{i + 1}")(x)
        x = QCFS(LEVELS, initial_threshold=1.0 + 0.5 * i, name=f"conv{i + 1}_qcfs")(x)
    out = L.Conv2D(1, 1, name="logits")(x)
    return tf.keras.Model(inp, out)


def qcfs_settings(**overrides):
    return nsconvert.ConversionSettings(**{
        "neuron_model": "if_subtract", "normalise": "qcfs", "target_rate_hz": 1000.0,
        "initial_voltage": 0.5, "synapse": None, "n_steps": LEVELS, "readout_steps": LEVELS,
        **overrides})


def inputs(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype(np.float32)


def test_conversion_at_t_equal_l_computes_the_quantised_ann():
    model = qcfs_net()
    x = inputs()
    ann = model.predict(x, verbose=0)
    converted = nsconvert.convert(model, qcfs_settings())
    assert converted.settings.layer_scales == pytest.approx({"conv1_qcfs": 1000.0})
    nengo_dl_out = nsconvert.run_snn(converted, x, progress=False).outputs
    engine_out = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=4,
                            progress=False).outputs
    np.testing.assert_allclose(nengo_dl_out, ann, atol=1e-4)
    np.testing.assert_allclose(engine_out, ann, atol=1e-4)
    # the ANN row scores the ANN as trained (QCFS), not the ReLU network it converts to
    np.testing.assert_allclose(nsconvert.run_ann(converted, x).outputs, ann, atol=1e-6)
    # without the half-threshold start, the same network is off by up to a quantum
    plain = nsconvert.convert(model, qcfs_settings(initial_voltage=0.0))
    plain_out = nsconvert.run_snn(plain, x, progress=False).outputs
    assert np.abs(plain_out - ann).max() > 1e-2


def test_deeper_conversion_stays_close_to_the_quantised_ann():
    """Two QCFS layers: the second sees spike trains, not constants, so the match is in
    expectation only; still far closer than the same network started from voltage 0."""
    model = qcfs_net(hidden=2, seed=1)
    x = inputs(seed=1)
    ann = model.predict(x, verbose=0)

    def error(initial_voltage):
        converted = nsconvert.convert(model, qcfs_settings(initial_voltage=initial_voltage))
        out = nsconvert.run_snn(converted, x, progress=False).outputs
        return np.abs(out - ann).mean() / np.abs(ann).mean()

    assert error(0.5) < 0.3
    assert error(0.0) > 0.5


def test_rebuilt_conversion_keeps_the_learned_thresholds(tmp_path):
    model = qcfs_net()
    x = inputs()
    model.get_layer("conv1_qcfs").threshold.assign(1.7)
    converted = nsconvert.convert(model, qcfs_settings())
    assert converted.settings.normalisation_factors == pytest.approx({"conv1_qcfs": 1.7})
    nsconvert.save_conversion(tmp_path / "snn", converted.keras_model, converted.settings)
    rebuilt = nsconvert.convert(*nsconvert.load_conversion(tmp_path / "snn"))
    np.testing.assert_allclose(nsconvert.run_snn(rebuilt, x, progress=False).outputs,
                               nsconvert.run_snn(converted, x, progress=False).outputs, atol=1e-5)


def test_qcfs_normalisation_refuses_a_layer_without_a_threshold():
    tf.keras.utils.set_random_seed(0)
    inp = L.Input((8, 8, 1))
    h = QCFS(LEVELS, name="q")(L.Conv2D(4, 3, padding="same", name="c1")(inp))
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="plain_relu")(h)
    model = tf.keras.Model(inp, L.Conv2D(1, 1, name="out")(h))
    with pytest.raises(ConversionError, match="layer 'plain_relu'.*not a QCFS layer"):
        nsconvert.convert(model, qcfs_settings())
    with pytest.raises(ConversionError, match="normalise='qcfs' a model with QCFS layers"):
        nsconvert.convert(tf.keras.Model(inp, L.Conv2D(1, 1, activation="relu")(inp)),
                          qcfs_settings())


def test_model_zoo_builds_qcfs_networks():
    unet = build_model("unet", (16, 16, 1), filters=4, depth=1, activation="qcfs8")
    layers = [layer for layer in unet.layers if isinstance(layer, QCFS)]
    assert layers and all(layer.levels == 8 for layer in layers)
    assert layers[0].name == "enc1_conv1_qcfs"
    for bad in ("qcfs", "qcfs0", "qcfsx"):
        with pytest.raises(ConfigError, match="qcfs<L>"):
            build_model("unet", (16, 16, 1), filters=4, depth=1, activation=bad)
