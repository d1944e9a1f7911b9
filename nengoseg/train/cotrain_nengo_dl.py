"""The ``nengo-dl`` co-training engine: a NengoDL simulator of the hybrid network.

`NengoDLTrainable` wraps a ``nengo_dl.Simulator`` of a converted network whose
neurons are hybrid (`nengoseg.neurons`): ``fit`` runs the spiking network forward
and takes the rate neurons' gradients backward. The simulator is built with
``stateful=False``: every minibatch, in training and in validation alike, starts
from the network's initial state (NengoDL's ``IsolateState`` resets the state
after training and prediction batches only, so with a stateful simulator each
validation batch would start where the previous one stopped).

Checkpoints: ``sim.keras_model`` is a plain functional Keras model whose variables
are NengoDL's parameter arrays (trainable ones, grouped by shape, and the fixed
ones), so ``tf.train.Checkpoint(model=sim.keras_model, optimizer=...)`` and
``save_weights`` / ``load_weights`` round-trip them exactly for a simulator built
the same way (same network, same minibatch size): `nengoseg.train.checkpoints`
works unchanged.

Back to Keras weights (`trained_weights`)
-----------------------------------------
``nengo_dl.Converter`` (and nengoseg's converters, which follow it) turn a layer
``L`` with weights into (``obj = converter.layers[L]``, the ``Neurons`` of an
ensemble or a passthrough ``Node``):

- the kernel: the one trainable connection into ``obj`` that does not come from
  a bias node; its weights are the Keras kernel (``Convolution``: the same
  layout; ``ConvolutionTranspose``: the last two axes swapped; ``Dense``: the
  transpose);
- the bias, one of
  - a constant ``Node`` ``"L.0.bias"`` -> relay ``"L.0.bias_relay"`` through a
    trainable ``(channels, 1)`` transform (convolutions: one bias per channel,
    broadcast by a fixed ``Sparse`` connection), or straight into ``obj``
    (``Dense`` without neurons);
  - the ensemble's own bias (``Dense`` with an activation): NengoDL's trainable
    ``bias`` signal holds ``float32(keras_bias * scale)`` (the firing-rate scale,
    also the ensemble's gain; connections into neurons are multiplied by the
    gain, so kernels are not scaled).

The trained values are read live with ``sim.data``. For an ensemble bias the
Keras value is ``bias / scale``, chosen among the nearest float32 numbers so that
the converter's ``float32(keras_bias * scale)`` gives the trained value back
exactly; where no float32 does (a scale that is not a power of two leaves gaps),
the simulator's bias is moved to the nearest value that does (at most a few
float32 ulps), so the exported network and the trained simulator stay
bit-identical. Every trainable NengoDL parameter must be claimed by a layer:
one that is not raises a ConversionError naming it.
"""

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

from nengoseg.convert.layers import SoftLIF  # noqa: F401  (registers the converters)
from nengoseg.errors import ConversionError
from nengoseg.nengo_dl_compat import generate_inputs
from nengoseg.train.trainable import TrainableSNN

OUTPUT_LABEL = "output"
KERNEL_TRANSFORMS = (nengo.Dense, nengo.Convolution, nengo.transforms.ConvolutionTranspose)


class NengoDLTrainable(TrainableSNN):
    """A converted hybrid network in a ``nengo_dl.Simulator``, trained with ``sim.fit``.

    Parameters
    ----------
    converted : nengoseg.convert.ConvertedNetwork
        With hybrid neurons (`nengoseg.train.cotrain.hybrid_network`). Its network
        is configured ``stateful=False`` and its output probe labelled "output".
    minibatch_size : int
    progress : bool
        NengoDL's build progress bars.
    """

    name = "nengo-dl"

    def __init__(self, converted, minibatch_size, progress=False):
        self.converted = converted
        self.minibatch_size = int(minibatch_size)
        with converted.network:
            nengo_dl.configure_settings(stateful=False)
        converted.output_probe.label = OUTPUT_LABEL
        settings = converted.settings
        self.sim = nengo_dl.Simulator(
            converted.network,
            dt=settings.dt,
            minibatch_size=self.minibatch_size,
            seed=settings.seed,
            progress_bar=progress,
        )
        self.output_name = self.sim.get_name(converted.output_probe)
        self.rate_names = {
            layer: self.sim.get_name(probe) for layer, probe in converted.neuron_probes.items()
        }

    @property
    def keras_model(self):
        return self.sim.keras_model

    def model_inputs(self, coded):
        # every input Node: the image, plus the constant bias Nodes tiled over time
        return generate_inputs(self.sim, {self.converted.input_node: coded})

    @property
    def trainer(self):
        return self.sim  # NengoDL's compile and fit (the Keras model's own would skip its state)

    def predict(self, coded):
        outputs = self.sim.predict({self.converted.input_node: coded}, verbose=0)
        return outputs[self.converted.output_probe]

    def trained_weights(self):
        return trained_weights(self.sim, self.converted)

    def close(self):
        self.sim.close()


# ---------------------------------------------------------------- NengoDL -> Keras


def trained_weights(sim, converted):
    """``{layer_name: [kernel, bias]}`` of every trainable Keras layer, read from ``sim``.

    See the module docstring. May move ensemble biases of ``sim`` by a few float32
    ulps so that the exported weights rebuild it exactly.
    """
    unclaimed = _trainable_params(sim, converted.network)
    weights = {}
    for layer in converted.keras_model.layers:
        if not layer.trainable_weights:
            continue  # e.g. a frozen BatchNormalization: NengoDL does not train it either
        kernel_conn, bias_param = _layer_params(converted, layer)
        kernel = _keras_kernel(layer, sim.data[kernel_conn].weights)
        unclaimed.discard((kernel_conn, "weights"))
        arrays = [kernel]
        if bias_param is not None:
            obj, attr = bias_param
            unclaimed.discard(bias_param)
            if attr == "bias":
                arrays.append(_keras_bias_from_ensemble(sim, obj))
            else:
                arrays.append(np.asarray(sim.data[obj].weights, np.float32)[:, 0])
        weights[layer.name] = arrays
    if unclaimed:
        names = ", ".join(sorted(str(obj) for obj, _ in unclaimed))
        raise ConversionError(
            f"trained NengoDL parameters that no Keras layer holds: {names}; "
            "nengoseg cannot write them back to the Keras model"
        )
    return weights


def _trainable_params(sim, network):
    """``{(obj, "weights" | "bias")}`` of every parameter ``sim`` trains."""
    params = set()
    signals = sim.tensor_graph.signals
    for conn in network.all_connections:
        sig = sim.model.sig[conn].get("weights")
        if sig is not None and sig.trainable and sig in signals:
            params.add((conn, "weights"))
    for ens in network.all_ensembles:
        sig = sim.model.sig[ens.neurons]["bias"]
        if sig.trainable and sig in signals:
            params.add((ens, "bias"))
    return params


def _layer_params(converted, layer):
    """``(kernel connection, (bias object, attribute) or None)`` of a Keras layer."""
    net = converted.network
    obj = converted.converter.layers[layer]
    bias_label = f"{layer.name}.0.bias"
    relay_label = f"{layer.name}.0.bias_relay"
    into = [c for c in net.all_connections if c.post_obj is obj]
    kernels = [
        c for c in into
        if isinstance(c.transform, KERNEL_TRANSFORMS) and getattr(c.pre_obj, "label", None) != bias_label
        and net.config[c].trainable is not False
    ]
    if len(kernels) != 1:
        raise ConversionError(
            f"layer '{layer.name}' ({type(layer).__name__}): found {len(kernels)} trainable kernel "
            "connections in the converted network, expected 1; cannot write its co-trained "
            "weights back"
        )
    if not getattr(layer, "use_bias", False):
        return kernels[0], None
    for conn in net.all_connections:
        pre_label = getattr(conn.pre_obj, "label", None)
        post_label = getattr(conn.post_obj, "label", None)
        if pre_label == bias_label and (conn.post_obj is obj or post_label == relay_label):
            return kernels[0], (conn, "weights")
    if isinstance(obj, nengo.ensemble.Neurons):
        return kernels[0], (obj.ensemble, "bias")
    raise ConversionError(
        f"layer '{layer.name}' ({type(layer).__name__}): its bias is not in the converted "
        "network; cannot write its co-trained weights back"
    )


def _keras_kernel(layer, weights):
    weights = np.asarray(weights, np.float32)
    if isinstance(layer, tf.keras.layers.Dense):
        return weights.T
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        return np.transpose(weights, (0, 1, 3, 2))
    return weights


def converter_scaled(keras_bias, scale):
    """``keras_bias * scale`` exactly as ``nengo_dl.Converter`` computes an ensemble bias."""
    scaled = np.array(keras_bias, dtype=np.float32)
    scaled *= scale  # in place on float32, as the converter does
    return scaled


def keras_bias_for(current, scale, ulps=4):
    """A float32 Keras bias ``b`` with ``converter_scaled(b, scale)`` as close to ``current`` as can be.

    Returns ``(b, converter_scaled(b, scale))``; the second equals ``current``
    wherever a float32 ``b`` reproduces it exactly.
    """
    current = np.asarray(current, np.float32)
    guess = (current.astype(np.float64) / scale).astype(np.float32)
    best, best_error = guess, np.abs(converter_scaled(guess, scale).astype(np.float64) - current)
    down = up = guess
    for _ in range(ulps):
        down = np.nextafter(down, np.float32(-np.inf))
        up = np.nextafter(up, np.float32(np.inf))
        for candidate in (down, up):
            error = np.abs(converter_scaled(candidate, scale).astype(np.float64) - current)
            better = error < best_error
            best = np.where(better, candidate, best)
            best_error = np.where(better, error, best_error)
    best = best.astype(np.float32)
    return best, converter_scaled(best, scale)


def _keras_bias_from_ensemble(sim, ens):
    scale = _ensemble_scale(ens)
    current = np.asarray(sim.data[ens].bias, np.float32)
    keras_bias, rebuilt = keras_bias_for(current, scale)
    if not np.array_equal(rebuilt, current):
        _assign(sim, sim.model.sig[ens.neurons]["bias"], rebuilt)
    return keras_bias


def _ensemble_scale(ens):
    gain = ens.gain
    if isinstance(gain, nengo.dists.Choice) and len(gain.options) == 1:
        return float(gain.options[0, 0] if gain.options.ndim == 2 else gain.options[0])
    raise ConversionError(
        f"ensemble {ens.label}: gain {gain!r} is not the single firing-rate scale the "
        "converter sets; cannot write its bias back to Keras"
    )


def _assign(sim, sig, values):
    """Overwrite the live value of a (trainable, not minibatched) signal in ``sim``."""
    tensor_sig = sim.tensor_graph.signals[sig]
    base = sim.tensor_graph.base_params[tensor_sig.key]
    indices = tf.reshape(tf.cast(tensor_sig.tf_indices, tf.int64), (-1, 1))
    base.scatter_nd_update(indices, tf.reshape(tf.constant(values, base.dtype), (-1,) + tuple(base.shape[1:])))
