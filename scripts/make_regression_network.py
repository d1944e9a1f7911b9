"""Write tests/data/regression_network/: a small converted network and its expected spikes.

The folder holds a conversion (``keras_model.h5``, ``conversion.json``), its network
description (``network.json``, ``network_weights.npz``) and ``expected.npz``: four
input images and what the current code computes for them — spike counts per neuron
in the engine and in NengoDL, and the Loihi emulator's outputs and spike counts.
``tests/test_regression_network.py`` checks that later code computes the same.

Rerun this script only when a change of behaviour is intended, and say so in the
commit: ``.venv/bin/python scripts/make_regression_network.py``.
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg import description
from nengoseg.convert.describe import describe_conversion

FOLDER = Path(__file__).resolve().parents[1] / "tests" / "data" / "regression_network"
L = tf.keras.layers
N_STEPS = 30


def model():
    """conv, strided conv, dropout, transposed conv, concatenation skip, pooling, upsampling."""
    tf.keras.utils.set_random_seed(0)
    x = L.Input((8, 8, 1), name="image")
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="b")(a)
    b = L.Dropout(0.3, name="drop")(b)
    p = L.AveragePooling2D(2, name="pool")(b)
    u = L.UpSampling2D(2, name="up")(p)
    c = L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu", name="c")(u)
    d = L.Concatenate(name="skip")([a, c])
    out = L.Conv2D(1, 1, name="logits")(d)
    net = tf.keras.Model(x, out, name="regression_net")
    rng = np.random.default_rng(2)  # weights large enough that every layer spikes
    for layer in net.layers:
        layer.set_weights([rng.uniform(-0.3, 0.6, w.shape) for w in layer.get_weights()])
    return net


def settings():
    return nsconvert.ConversionSettings(neuron_model="loihi", scale_firing_rates=1000.0,
                                        synapse=0.005, n_steps=N_STEPS, seed=3)


def images():
    return np.random.default_rng(1).random((4, 8, 8, 1)).astype(np.float32)


def observe(keras_model, conversion_settings, desc, x):
    """What the code computes for ``x``: engine and NengoDL spike counts, emulator output."""
    from nengoseg.engine import run_engine
    from nengoseg.loihi.blocks import choose_block_shapes
    from nengoseg.loihi.rewrite import from_description
    from nengoseg.loihi.run import run_loihi

    sys.path.insert(0, str(FOLDER.parents[1]))
    from test_engine import nengo_dl_counts

    converted = nsconvert.convert(keras_model, conversion_settings)
    _, engine = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=2,
                           progress=False, return_counts=True, chunk_images=None)
    nengo_dl = nengo_dl_counts(converted, x, N_STEPS, batch=2)
    loihi_net = from_description(desc)
    choose_block_shapes(loihi_net)
    loihi = run_loihi(loihi_net, x, progress=False)
    found = {"emulator_outputs": loihi.outputs}
    for name in engine:
        found[f"engine/{name}"] = engine[name]
        found[f"nengo_dl/{name}"] = nengo_dl[name]
        found[f"emulator/{name}"] = loihi.spike_counts[name]
    return found


def main():
    FOLDER.mkdir(parents=True, exist_ok=True)
    keras_model, conversion_settings = model(), settings()
    converted = nsconvert.convert(keras_model, conversion_settings)
    nsconvert.save_conversion(FOLDER, keras_model, converted.settings)
    desc = describe_conversion(converted.keras_model, converted.settings, converted.network,
                               converted.neuron_probes, prepared=True)
    description.save(desc, FOLDER)
    x = images()
    found = observe(*nsconvert.load_conversion(FOLDER), description.load(FOLDER), x)
    np.savez(FOLDER / "expected.npz", images=x, **found)
    for key, value in found.items():
        print(f"{key}: total {float(np.sum(value)):.3f}")


if __name__ == "__main__":
    main()
