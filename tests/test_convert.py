"""nengoseg.convert on tiny Keras models: exactness, spikes, errors, coding, saved records."""

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengoseg.convert import (
    ConversionSettings,
    SoftLIF,
    convert,
    encode_inputs,
    load_conversion,
    prepare_model,
    run_ann,
    run_snn,
    save_conversion,
    spike_height,
)
from nengoseg.convert.settings import ONE_STEP_DELAY
from nengoseg.errors import ConfigError, ConversionError, DataError

L = tf.keras.layers
RATE = dict(spiking=False, n_steps=1, readout_steps=1)


def _randomise_batch_norm(model):
    """Give every BatchNormalization non-trivial statistics, so folding is tested."""
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma, beta = rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n)
            layer.set_weights([gamma, beta, rng.normal(0, 0.3, n), rng.uniform(0.5, 2, n)])
    return model


def tiny_unet():
    """Every segmentation layer kind: conv with/without bias, BN (folded and frozen),
    relu and SoftLIF, average pooling, dropout, Conv2DTranspose, upsampling, skip
    concatenation, sigmoid output."""
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input((16, 16, 1), name="image")
    c1 = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    c2 = L.Conv2D(4, 3, padding="same", use_bias=False, name="c2")(c1)
    b2 = L.BatchNormalization(name="bn2")(c2)  # folded into c2
    a2 = SoftLIF(amplitude=0.01, name="lif2")(b2)
    pool = L.AveragePooling2D(2, name="pool")(a2)
    drop = L.Dropout(0.3, name="drop")(pool)
    c3 = L.Conv2D(8, 3, padding="same", activation="relu", name="c3")(drop)
    b3 = L.BatchNormalization(name="bn3")(c3)  # after an activation: frozen, not folded
    up_t = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="up_t")(b3)
    up_n = L.UpSampling2D(2, name="up_n")(b3)
    cat = L.Concatenate(name="cat")([up_t, up_n, c1])
    out = L.Conv2D(1, 1, activation="sigmoid", name="mask")(cat)
    return _randomise_batch_norm(tf.keras.Model(inp, out, name="tiny_unet"))


def tiny_locnet():
    """LocNet-like regression: strided conv "pooling", Flatten, Dense with BN, SoftLIF, dropout."""
    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((16, 16, 1))
    x = L.Conv2D(4, 3, strides=2, padding="same", name="conv")(inp)
    x = SoftLIF(sigma=0.005, amplitude=0.05, name="lif")(x)
    x = L.Conv2D(4, 3, strides=2, activation="relu", name="pool_conv")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(8, name="fc1")(x)
    x = L.BatchNormalization(name="fc1_bn")(x)  # folded into fc1
    x = L.Activation("relu", name="fc1_relu")(x)
    x = L.Dropout(0.5, name="fc1_drop")(x)
    out = L.Dense(4, name="box")(x)
    return _randomise_batch_norm(tf.keras.Model(inp, out, name="tiny_locnet"))


def relu_cnn():
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    return tf.keras.Model(inp, L.Conv2D(1, 1, name="out")(x))


def images(n, shape=(16, 16, 1), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + shape).astype(np.float32)


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


# ---------------------------------------------------------------- SoftLIF and layers


def test_soft_lif_layer_matches_nengo_dl_rate_and_serialises():
    layer = SoftLIF(tau_rc=0.03, tau_ref=0.001, amplitude=0.5, sigma=0.02)
    current = np.linspace(-2, 4, 601, dtype=np.float32)
    expected = layer.neuron_type().rates(current, gain=1.0, bias=0.0)
    np.testing.assert_allclose(layer(current).numpy(), expected, rtol=1e-5, atol=1e-6)

    clone = SoftLIF.from_config(layer.get_config())
    assert (clone.tau_rc, clone.tau_ref, clone.amplitude, clone.sigma) == (0.03, 0.001, 0.5, 0.02)
    assert SoftLIF().sigma == 0.005


def test_prepare_model_folds_batch_norm_and_moves_output_sigmoid(unet):
    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input((8, 8, 2))
    x = L.Conv2DTranspose(3, 3, strides=2, padding="same", use_bias=False, name="tconv")(inp)
    x = L.BatchNormalization(name="tbn")(x)
    x = L.Flatten()(x)
    x = L.Dense(5, name="dense")(x)
    x = L.BatchNormalization(name="dbn")(x)
    model = _randomise_batch_norm(tf.keras.Model(inp, L.Activation("sigmoid", name="prob")(x)))

    for original in (model, unet):
        prepared, activation = prepare_model(original)
        x = images(2, original.input_shape[1:])
        assert activation == "sigmoid"
        np.testing.assert_allclose(
            tf.sigmoid(prepared.predict(x, verbose=0)), original.predict(x, verbose=0), atol=1e-5
        )
    names = [layer.name for layer in prepare_model(model)[0].layers]
    assert "tbn" not in names and "dbn" not in names and "prob" not in names
    prepared_unet = prepare_model(unet)[0]
    assert "bn2" not in [layer.name for layer in prepared_unet.layers]
    assert not prepared_unet.get_layer("bn3").trainable  # not foldable: frozen
    assert unet.get_layer("bn3").trainable  # the user's model is untouched


@pytest.mark.parametrize(
    "padding, strides, kernel, use_bias",
    [("same", 2, 3, True), ("same", 2, 4, False), ("valid", 2, 3, True), ("valid", 1, 2, True)],
)
def test_conv2d_transpose_matches_keras(padding, strides, kernel, use_bias):
    tf.keras.utils.set_random_seed(5)
    inp = tf.keras.Input((5, 6, 3))
    layer = L.Conv2DTranspose(4, kernel, strides=strides, padding=padding, use_bias=use_bias)
    model = tf.keras.Model(inp, layer(inp))
    if use_bias:
        layer.bias.assign(np.linspace(-1, 1, 4))
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    converted = convert(model, ConversionSettings(readout="regression", **RATE))
    snn = run_snn(converted, x, progress=False)
    np.testing.assert_allclose(snn.outputs, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- rate exactness, spiking


def _no_tensor_nodes(network):
    return not any(isinstance(node, nengo_dl.TensorNode) for node in network.all_nodes)


def test_rate_unet_reproduces_keras(unet):
    x = images(3)
    converted = convert(unet, ConversionSettings(**RATE))
    snn, ann = run_snn(converted, x, progress=False), run_ann(converted, x)

    assert _no_tensor_nodes(converted.network)
    np.testing.assert_allclose(snn.outputs, ann.outputs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(snn.readout, unet.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ann.masks, ann.readout > 0.5)
    relu = "RectifiedLinear"
    assert converted.settings.neuron_types == {
        "c1": relu, "lif2": "SoftLIFRate", "c3": relu, "up_t": relu
    }
    assert converted.settings.output_activation == "sigmoid"
    assert set(snn.firing_rates_hz) == set(converted.neuron_probes) and ann.firing_rates_hz == {}


def test_rate_locnet_reproduces_keras_regression():
    model = tiny_locnet()
    x = images(3, seed=1)
    converted = convert(model, ConversionSettings(readout="regression", **RATE))
    snn = run_snn(converted, x, minibatch_size=2, progress=False)  # the last batch is padded

    assert _no_tensor_nodes(converted.network)
    np.testing.assert_allclose(snn.readout, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert snn.masks is None and converted.settings.output_activation == "linear"


def test_spiking_output_approaches_keras_with_more_steps(unet):
    x = images(2)
    converted = convert(unet, ConversionSettings(scale_firing_rates=100))
    assert converted.settings.neuron_types["lif2"] == "LIF"
    assert converted.settings.neuron_types["c1"] == "SpikingRectifiedLinear"
    target = run_ann(converted, x).outputs
    error = {
        n: np.abs(run_snn(converted, x, n_steps=n, progress=False).outputs - target).mean()
        for n in (10, 100)
    }
    assert error[100] < 0.5 * error[10]


# ---------------------------------------------------------------- firing rates and scales


def single_neuron():
    cell = L.Dense(1, activation="relu", use_bias=False, input_shape=(1,), name="cell")
    model = tf.keras.Sequential([cell])
    model.layers[0].set_weights([np.ones((1, 1))])
    return model


@pytest.mark.parametrize("spiking", [True, False])
def test_firing_rate_of_a_neuron_driven_at_a_known_rate(spiking):
    # gain 1000 * input 0.25 = 250 Hz; with scale 400 it is 100 Hz
    common = dict(spiking=spiking, n_steps=200, readout="regression")
    converted = convert(single_neuron(), ConversionSettings(scale_firing_rates=1000, **common))
    result = run_snn(converted, np.full((3, 1), 0.25), progress=False)
    assert result.firing_rates_hz["cell"] == pytest.approx(250)
    np.testing.assert_allclose(result.outputs, 0.25, rtol=1e-5)

    settings = ConversionSettings(scale_firing_rates={"cell": 400}, **common)
    converted = convert(single_neuron(), settings)
    assert converted.settings.layer_scales == {"cell": 400.0}
    result = run_snn(converted, np.full((1, 1), 0.25), progress=False)
    assert result.firing_rates_hz["cell"] == pytest.approx(100)


def test_percentile_normalisation_maps_percentile_activation_to_target_rate():
    model = relu_cnn()
    calibration = images(8, (8, 8, 1))
    settings = ConversionSettings(
        normalise="percentile", percentile=99.0, target_rate_hz=500, readout="regression", **RATE
    )
    converted = convert(model, settings, calibration_data=calibration)

    scales, factors = converted.settings.layer_scales, converted.settings.normalisation_factors
    assert set(scales) == set(factors) == {"c1", "c2"}
    with nengo_dl.Simulator(converted.network, minibatch_size=8, progress_bar=False) as sim:
        data = sim.predict_on_batch({converted.input_node: encode_inputs(calibration, 1)})
    for name, probe in converted.neuron_probes.items():
        keras_layer = tf.keras.Model(model.input, model.get_layer(name).output)
        activation = keras_layer.predict(calibration, verbose=0)
        assert factors[name] == pytest.approx(np.percentile(activation[activation > 0], 99.0))
        assert scales[name] * factors[name] == pytest.approx(500)
        rates = data[probe] / probe.target.ensemble.neuron_type.amplitude
        assert np.percentile(rates[rates > 0], 99.0) == pytest.approx(500, rel=1e-4)
    # the rate network still computes the Keras function
    snn = run_snn(converted, calibration, progress=False)
    np.testing.assert_allclose(snn.outputs, model.predict(calibration, verbose=0), atol=1e-5)


def test_normalisation_needs_data_and_relu_neurons():
    with pytest.raises(ConversionError, match="calibration_data"):
        convert(relu_cnn(), ConversionSettings(normalise="percentile"))
    with pytest.raises(ConversionError, match="'lif' makes SoftLIFRate neurons"):
        settings = ConversionSettings(normalise="percentile")
        convert(tiny_locnet(), settings, calibration_data=images(2))


def test_save_and_load_rebuild_an_identical_network(tmp_path):
    model = relu_cnn()
    x = images(3, (8, 8, 1))
    settings = ConversionSettings(
        normalise="percentile", synapse=0.005, n_steps=20, input_coding="poisson"
    )
    converted = convert(model, settings, calibration_data=x)
    save_conversion(tmp_path / "snn", model, converted.settings)

    loaded_model, loaded_settings = load_conversion(tmp_path / "snn")
    rebuilt = convert(loaded_model, loaded_settings)  # no calibration data: recorded factors
    assert rebuilt.settings == converted.settings
    np.testing.assert_array_equal(
        run_snn(rebuilt, x, progress=False).outputs, run_snn(converted, x, progress=False).outputs
    )
    assert (tmp_path / "snn" / "keras_model.h5").is_file()


def test_save_and_load_keep_soft_lif_layers(tmp_path):
    model = tiny_locnet()
    save_conversion(tmp_path, model, ConversionSettings())
    loaded, _ = load_conversion(tmp_path)
    assert loaded.get_layer("lif").get_config() == model.get_layer("lif").get_config()
    with pytest.raises(DataError, match="conversion.json"):
        load_conversion(tmp_path / "missing")


# ---------------------------------------------------------------- errors


IMAGE = (8, 8, 1)


def _model_with(layer, shape=IMAGE):
    inp = tf.keras.Input(shape)
    return tf.keras.Model(inp, L.Dense(1)(L.Flatten()(layer(inp))))


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (L.Lambda(lambda t: t * 2, name="x2"), IMAGE, r"'x2' \(Lambda\).*no NengoDL converter"),
        (L.MaxPooling2D(2, name="max"), IMAGE, r"'max' \(MaxPooling2D\).*max_to_avg_pool"),
        (L.LSTM(3, return_sequences=True, name="lstm"), (5, 2), r"'lstm' \(LSTM\).*no NengoDL"),
        (L.Conv2D(2, 3, activation="elu", name="c"), IMAGE, r"'c' \(Conv2D\).*activation 'elu'"),
        (L.LeakyReLU(name="leaky"), IMAGE, r"'leaky' \(LeakyReLU\).*makes LeakyReLU neurons"),
        (L.AveragePooling2D(2, padding="same", name="avg"), IMAGE, r"'avg' \(AveragePool.*padding"),
    ],
)
def test_unconvertible_layer_is_named(layer, shape, message):
    with pytest.raises(ConversionError, match=message):
        convert(_model_with(layer, shape))


def test_max_pooling_converts_as_average_when_asked():
    converted = convert(_model_with(L.MaxPooling2D(2)), ConversionSettings(max_to_avg_pool=True))
    assert _no_tensor_nodes(converted.network)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(scale_firing_rates=0), r"scale_firing_rates=0 .*number > 0"),
        (dict(scale_firing_rates=-1), r"scale_firing_rates=-1 "),
        (dict(scale_firing_rates="x"), r"scale_firing_rates='x' "),
        (dict(scale_firing_rates=True), r"scale_firing_rates=True "),
        (dict(scale_firing_rates={"c1": 0}), r"scale_firing_rates\['c1'\]=0 "),
        (dict(n_steps=0), r"n_steps=0 .*integer >= 1"),
        (dict(n_steps=1.5), r"n_steps=1.5 "),
        (dict(n_steps=10, readout_steps=11), r"readout_steps=11 .*\[1, 10\]"),
        (dict(input_coding="burst"), r"input_coding='burst' .*'constant', 'poisson'"),
        (dict(input_rate_hz=2000), r"input_rate_hz=2000 .*1/dt = 1000"),
        (dict(threshold=1.0), r"threshold=1.0 "),
        (dict(synapse=-0.005), r"synapse=-0.005 "),
        (dict(normalise="percentile", scale_firing_rates=10), r"scale_firing_rates=10 and norm"),
        (dict(neuron="relu"), r"unknown conversion setting 'neuron'; allowed: spiking, "),
    ],
)
def test_bad_settings_name_key_and_allowed_values(settings, message):
    with pytest.raises(ConfigError, match=message):
        ConversionSettings.from_dict(settings)


def test_scale_for_unknown_or_neuronless_layer_is_refused():
    for name in ("nope", "out"):
        with pytest.raises(ConversionError, match=rf"names layer '{name}'.*allowed: c1, c2"):
            convert(relu_cnn(), ConversionSettings(scale_firing_rates={name: 10}))


def test_wrong_inputs_and_minibatch_size_are_refused(unet):
    converted = convert(unet, ConversionSettings(**RATE))
    with pytest.raises(DataError, match=r"\(n, 16, 16, 1\)"):
        run_ann(converted, np.zeros((2, 8, 8, 1)))
    with pytest.raises(ConfigError, match=r"minibatch_size=0 .*integer >= 1"):
        run_snn(converted, images(1), minibatch_size=0)


# ---------------------------------------------------------------- input coding


def test_constant_coding_repeats_the_flattened_image():
    x = images(2, (3, 3, 2))
    coded = encode_inputs(x, 4)
    assert coded.shape == (2, 4, 18)
    np.testing.assert_array_equal(coded[:, 3], x.reshape(2, -1))


def test_poisson_coding_binary_ternary_and_unbiased():
    x = np.array([[0.0, 0.1, 0.5, 1.0], [-1.0, -0.3, 0.3, 0.8]], np.float32)
    binary = encode_inputs(x[:1], 4000, "poisson", rate_hz=500, rng=1)
    height = spike_height(500, 0.001)
    assert height == pytest.approx(2.0)
    assert set(np.unique(binary)) <= {0.0, height}
    np.testing.assert_allclose(binary.mean(axis=1), x[:1], atol=0.05)

    ternary = encode_inputs(x[1:], 4000, "poisson", rng=2)
    assert set(np.unique(ternary)) == {-1.0, 0.0, 1.0}
    assert (ternary[0, :, :2] <= 0).all() and (ternary[0, :, 2:] >= 0).all()
    np.testing.assert_allclose(ternary.mean(axis=1), x[1:], atol=0.05)

    np.testing.assert_array_equal(binary, encode_inputs(x[:1], 4000, "poisson", rate_hz=500, rng=1))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        encode_inputs(x * 2, 5, "poisson")


def test_poisson_coded_network_matches_on_average():
    settings = ConversionSettings(
        spiking=False, input_coding="poisson", n_steps=2000, readout="regression"
    )
    result = run_snn(convert(single_neuron(), settings), np.full((2, 1), 0.4), progress=False)
    np.testing.assert_allclose(result.outputs, 0.4, atol=0.04)


def test_delay_synapse_delays_each_neuron_connection_by_one_step_and_nothing_else():
    """``synapse="delay"``: what Loihi does without a synapse (spikes arrive one step
    late at the next layer). Three spiking layers: the output starts 3 steps late,
    then equals the undelayed network's."""
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((4,))
    h = inp
    for i in range(3):
        h = tf.keras.layers.Dense(4, activation="relu", kernel_initializer="ones", name=f"d{i}")(h)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(1, kernel_initializer="ones")(h))
    outputs = {}
    for synapse in (None, "delay"):
        settings = ConversionSettings(synapse=synapse, scale_firing_rates=1000.0,
                                                neuron_model="if_subtract", n_steps=8)
        converted = convert(model, settings)
        with nengo_dl.Simulator(converted.network, progress_bar=False) as sim:
            data = sim.predict({converted.input_node: np.full((1, 8, 4), 0.5)}, n_steps=8)
        outputs[synapse] = data[converted.output_probe][0, :, 0]
    assert ConversionSettings(synapse="delay").synapse == ONE_STEP_DELAY
    np.testing.assert_array_equal(outputs["delay"][:3], 0)
    np.testing.assert_allclose(outputs["delay"][3:], outputs[None][:5], rtol=1e-5)
    assert outputs[None][0] > 0
    with pytest.raises(ConfigError, match="synapse='lag'.*'delay'"):
        ConversionSettings(synapse="lag")
