"""The ``engine`` co-training engine: `trainable_snn` (a `TrainableSNN` for ``cotrain``).

`EngineTrainable` wraps a `SpikingEngine` in training mode (hybrid neurons:
spikes forward, rate-neuron gradients backward) built on the Keras layers of
``converted.keras_model`` (the prepared model the conversion ran on), so that
``fit`` trains exactly the weights that ``trained_weights`` hands back and
``export_model`` saves.

Outputs, against the `TrainableSNN` contract (``(batch, n_steps, ...)``):

- the network output (``output_name``) is given as ``(batch, 1, n_out)``: the
  output already averaged over the readout window. ``ReadoutLoss`` and
  ``ReadoutMetric`` average the last ``window`` steps of what they get, which
  for one step is the same readout, so losses, metrics and gradients are those
  of the full series;
- each neuron layer (``rate_names``) as ``(batch, 1, n_neurons)``: the mean over
  all steps of the output NengoDL probes (``amplitude / dt`` at a spike), i.e.
  ``amplitude * rate``. ``RateRegularisation`` and ``FiringRate`` only use the
  mean over steps, so they give the same values; holding every step of every
  layer would cost ``n_steps`` times the memory for nothing.

`predict` does give the full ``(batch, n_steps, n_out)`` series (an inference
engine on the same layers: hybrid neurons are exactly spiking neurons forward).

Inputs: the coded arrays themselves (``model_inputs`` is the identity); with
constant coding the engine reads the first step only and computes the layers
before the first neurons once. The number of steps is read off the input.

Differences from NengoDL's training that remain: NengoDL trains an ensemble's
bias (``Dense`` layers with an activation) as ``keras_bias * scale``, the engine
the Keras bias itself; Adam's steps are scale-free, so such a bias moves
``scale`` times faster in NengoDL. Kernels and convolution biases are the same
parameters in both.
"""

import numpy as np
import tensorflow as tf

from nengoseg.engine.model import SpikingEngine
from nengoseg.engine.plan import make_plan
from nengoseg import neuron_kinds
from nengoseg.errors import ConfigError, DataError
from nengoseg.train.trainable import TrainableSNN

OUTPUT_NAME = "output"


class _TrainingEngine(SpikingEngine):
    """`SpikingEngine` (training mode) with the outputs named and shaped for cotrain."""

    def __init__(self, plan, rate_names, output_name, **kwargs):
        super().__init__(plan, None, training=True, inputs="coded", rate_outputs=True, **kwargs)
        self.rate_keys = dict(rate_names)
        self.output_key = output_name

    @tf.autograph.experimental.do_not_convert
    def call(self, x, training=None):
        result = super().call(x, training=training)
        readout = result["readout"]
        outputs = {self.output_key: tf.reshape(readout, (tf.shape(readout)[0], 1, -1))}
        for layer, key in self.rate_keys.items():
            spec = self.plan.neuron_layers[layer]
            hz = result[f"rate_{layer}"]
            outputs[key] = (hz * tf.constant(spec.amplitude, tf.float32))[:, None, :]
        return outputs


class EngineTrainable(TrainableSNN):
    """A converted hybrid network co-trained by the time-batched engine.

    Parameters
    ----------
    converted : nengoseg.convert.ConvertedNetwork
        With hybrid neurons (`nengoseg.train.cotrain.hybrid_network`) or spiking ones.
    minibatch_size : int
    method : "hybrid" or "bptt"
        Hybrid co-training (spikes forward, rate gradients back) or backpropagation
        through time with the triangle surrogate of height ``surrogate_alpha``
        (`nengoseg.engine.dynamics.bptt_layer`); BPTT needs neuron kinds with a
        ``surrogate_step`` (`nengoseg.neuron_kinds.surrogate_kinds`).
    """

    name = "engine"

    def __init__(self, converted, minibatch_size, method="hybrid", surrogate_alpha=1.0):
        self.converted = converted
        self.minibatch_size = int(minibatch_size)
        self.plan = make_plan(converted.keras_model, converted=converted)
        self.output_name = OUTPUT_NAME
        self.rate_names = {layer: f"rate_{layer}" for layer in converted.neuron_probes}
        missing = set(self.rate_names) - set(self.plan.neuron_layers)
        if missing:
            raise DataError(f"neuron layers {sorted(missing)} are not in the engine's plan")
        if method == "bptt":
            _check_surrogates(self.plan)
        self._model = _TrainingEngine(self.plan, self.rate_names, self.output_name,
                                      method=method, surrogate_alpha=surrogate_alpha)
        self._inference = SpikingEngine(self.plan, None, inputs="coded", sequences=True)

    @property
    def keras_model(self):
        return self._model

    def model_inputs(self, coded):
        return np.asarray(coded, np.float32)

    def predict(self, coded):
        coded = np.asarray(coded, np.float32)
        outputs = []
        for first in range(0, len(coded), self.minibatch_size):
            result = self._inference.predict_on_batch(coded[first : first + self.minibatch_size])
            steps = np.asarray(result["steps"])
            outputs.append(steps.reshape(steps.shape[0], steps.shape[1], -1))
        return np.concatenate(outputs)

    def trained_weights(self):
        return {
            layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in self.plan.keras_model.layers
            if layer.trainable_weights
        }


def _check_surrogates(plan):
    allowed = neuron_kinds.surrogate_kinds()
    models = [f"{model} ({activation} layers)" for kind in allowed
              for activation, model in neuron_kinds.named(kind).converts]
    for name, spec in plan.neuron_layers.items():
        if spec.spiking and spec.kind not in allowed:
            raise ConfigError(
                f"cotrain.method: bptt: layer '{name}' has {spec.kind} neurons, which have no "
                f"surrogate step; BPTT fine-tunes {', '.join(allowed)} neurons (convert."
                f"neuron_model: {', '.join(models)}), or use cotrain.method: hybrid"
            )


def trainable_snn(converted, minibatch_size, method="hybrid", surrogate_alpha=1.0):
    """The `TrainableSNN` of the engine for ``converted`` (what ``cotrain.engine: engine`` uses),
    trained by ``method`` (``cotrain.method``: "hybrid" or "bptt")."""
    return EngineTrainable(converted, minibatch_size, method, surrogate_alpha)
