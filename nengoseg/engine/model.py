"""`SpikingEngine`: a Keras model that simulates a converted network over time.

Layout: time-major, with time folded into the batch. A tensor that varies over
time is held as ``(n_steps * batch, *shape)`` (step ``t`` of example ``b`` at row
``t * batch + b``), so every linear layer (convolution, pooling, upsampling,
concatenation, dense, ...) runs once over all steps with the *same Keras layer
object* as the model it came from. Only the neuron layers run step by step: the
folded currents are viewed as ``(n_steps, batch, n)`` (a reshape, no copy) and
`nengoseg.engine.dynamics` loops over the first axis.

A tensor that is the same at every step (the image under constant input coding,
and whatever linear layers compute from it before the first neurons) is held once,
``(batch, *shape)``, and is computed once; the neurons then read the same current
at every step. This is exact: NengoDL computes the same numbers at every step.

Layers, by what the converter made of them:

- neurons (``plan.neuron_layers``): the layer's pre-activation (the Keras layer
  called with its activation replaced by the identity; nothing for ``Activation``,
  ``ReLU`` and ``SoftLIF`` layers) times the layer's ``gain`` is the input current;
  the neurons' output goes through the synapse to the next layers;
- Dropout and noise layers: the identity (as in the converted network);
- max pooling: average pooling (``max_to_avg_pool``, as the converter does);
- everything else: the Keras layer, activation stripped (only the output layer
  can carry one, the sigmoid the readout applies).
"""

import inspect
import math

import tensorflow as tf

from nengoseg.convert.coding import spike_height
from nengoseg.convert.layers import SoftLIF
from nengoseg.engine import dynamics, flow
from nengoseg.engine.plan import IDENTITY_LAYERS, MAX_POOLING

INPUT_MODES = ("coded", "images")
TRAINING_METHODS = ("hybrid", "bptt", "spiking_flow")
# inference runs the steps in chunks of about this many images (steps x batch) through
# the whole network, the neuron and synapse state carried from chunk to chunk: the
# same results, with tensors small enough to stay in the CPU caches and memory that
# does not grow with n_steps
CHUNK_IMAGES = 256
_AVERAGE_OF_MAX = {
    tf.keras.layers.MaxPooling1D: tf.keras.layers.AveragePooling1D,
    tf.keras.layers.MaxPooling2D: tf.keras.layers.AveragePooling2D,
    tf.keras.layers.MaxPooling3D: tf.keras.layers.AveragePooling3D,
    tf.keras.layers.GlobalMaxPooling1D: tf.keras.layers.GlobalAveragePooling1D,
    tf.keras.layers.GlobalMaxPooling2D: tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalMaxPooling3D: tf.keras.layers.GlobalAveragePooling3D,
}


class SpikingEngine(tf.keras.Model):
    """The converted network of ``plan`` simulated for ``n_steps`` steps, as a Keras model.

    Parameters
    ----------
    plan : nengoseg.engine.plan.EnginePlan
    n_steps : int or None
        Time steps per input (the readout window is ``settings.window(n_steps)``).
        None (``inputs="coded"`` only): as many as the coded input has, read from
        its static shape when the model is traced.
    training : bool
        False: inference (one fused loop per neuron layer, no gradient).
        True: trainable with ``fit``: the spiking forward pass, the gradient of
        ``method``, and a differentiable synapse.
    method : "hybrid", "bptt" or "spiking_flow"
        (training) "hybrid": hybrid neurons (the rate neuron's gradient, `dynamics.
        hybrid_layer`); "bptt": backpropagation through time with the triangle
        surrogate of height ``surrogate_alpha`` (`dynamics.bptt_layer`);
        "spiking_flow": the spiking run without a gradient, then one pass of the
        gradient on the accumulated flows (`nengoseg.engine.flow`).
    inputs : "coded" or "images"
        "coded": ``(batch, n_steps, H*W*C)`` arrays as NengoDL's input node takes
        (`nengoseg.convert.encode_inputs`). "images": ``(batch, H, W, C)`` images,
        coded inside the model: constant coding exactly; Poisson coding with
        TensorFlow's generator (the same distribution, not the same draws as numpy).
    rate_outputs : bool
        (training) also output each neuron layer's per-neuron firing rate.
    sequences : bool
        (inference) also output the output layer at every step, ``"steps"``.
    chunk_images : int or None
        (inference) simulate the steps in chunks of about ``chunk_images / batch``
        steps (of even length), each through the whole network, carrying the neuron and
        synapse state (the same results; faster and lighter for long runs, as the
        tensors stay small). None: all steps at once.

    Outputs
    -------
    Inference: a dict with ``"readout"`` ``(batch, *output_shape)``, the output
    layer averaged over the readout window (logits for segmentation), and
    ``"rate_<layer>"`` ``(batch, n_neurons)``: each neuron's mean output over all
    steps divided by its amplitude, i.e. its firing rate in Hz (the definition of
    `nengoseg.convert.run_snn`). Training: the readout tensor alone, or with
    ``rate_outputs`` a dict of the readout and the rates (with the rate-neuron
    gradient, for firing-rate regularisation).
    """

    def __init__(self, plan, n_steps, training=False, inputs="coded", rate_outputs=False,
                 sequences=False, chunk_images=CHUNK_IMAGES, method="hybrid",
                 surrogate_alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if inputs not in INPUT_MODES:
            raise ValueError(f"inputs={inputs!r}; allowed: {', '.join(INPUT_MODES)}")
        if method not in TRAINING_METHODS:
            raise ValueError(f"method={method!r}; allowed: {', '.join(TRAINING_METHODS)}")
        self.method = method
        self.surrogate_alpha = float(surrogate_alpha)
        if n_steps is None and inputs != "coded":
            raise ValueError("n_steps=None needs inputs='coded' (the steps are read off the input)")
        self.plan = plan
        self.n_steps = None if n_steps is None else int(n_steps)
        self.hybrid = bool(training)
        self.input_mode = inputs
        self.rate_outputs = bool(rate_outputs)
        self.sequences = bool(sequences)
        self.chunk_images = chunk_images
        # tracked, so that the model's (trainable) weights are these layers' weights
        self.source_layers = [node.layer for node in plan.nodes]
        if self.hybrid and method == "spiking_flow":  # its forward pass: the inference run
            self._spiking = SpikingEngine(plan, n_steps, inputs=inputs, chunk_images=chunk_images)
        self._averages = {
            node.name: _AVERAGE_OF_MAX[type(node.layer)].from_config(_pool_config(node.layer))
            for node in plan.nodes
            if isinstance(node.layer, MAX_POOLING)
        }

    # ------------------------------------------------------------------ forward

    @tf.autograph.experimental.do_not_convert
    def call(self, x, training=None):
        plan = self.plan
        x = tf.convert_to_tensor(x, tf.float32)
        T = self.n_steps
        if T is None:
            # the coded input's steps: static when known, else a tensor (Keras ``fit`` on
            # a generator traces with unknown shapes); the loops take either
            T = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
        self._steps = T
        if self.hybrid and self.method == "spiking_flow":
            return flow.flow_call(self, x)
        window = self._window(T)
        chunk = self._chunk_steps(x, T)
        if chunk:
            return self._call_chunked(x, T, chunk, window)
        values = {}  # layer name -> {variant: (tensor, temporal)}
        rates = {}
        for node in plan.nodes:
            if node.name == plan.input_name:
                values[node.name] = {"raw": self._input(x)}
                continue
            if node.pass_through:
                values[node.name] = self._pass_through(node, values)
                continue
            inputs = self._node_inputs(node, values)
            pre = self._linear(node, inputs)
            if node.neurons is not None:
                values[node.name], rates[node.name] = self._neurons(node, pre)
            else:
                values[node.name] = {"raw": pre}

        output = plan.output_name
        value, temporal = values[output][plan.reads.get((None, output), "raw")]
        if temporal:
            steps = tf.reshape(value, (T, -1) + plan.output_shape)
            readout = tf.reduce_mean(steps[T - window:], axis=0)
        else:
            steps = None
            readout = value
        rates = {f"rate_{name}": rate for name, rate in rates.items()}
        if self.hybrid:
            return {"readout": readout, **rates} if self.rate_outputs else readout
        result = {"readout": readout, **rates}
        if self.sequences:
            if steps is None:
                steps = tf.broadcast_to(readout[None], tf.concat([[T], tf.shape(readout)], 0))
            result["steps"] = tf.transpose(steps, [1, 0] + list(range(2, steps.shape.rank)))
        return result

    def spiking_pass(self, x):
        """(``spiking_flow`` training) the inference run of the same layers on ``x``: the
        readout and every neuron layer's rates."""
        return self._spiking(x)

    # ------------------------------------------------------------------ chunked inference

    def _chunk_steps(self, x, T):
        """Steps per chunk, or 0 to simulate all steps at once."""
        layers = self.plan.neuron_layers.values()
        if (self.hybrid or not self.chunk_images or not isinstance(T, int) or not layers
                or not all(spec.spiking for spec in layers)):
            return 0
        batch = x.shape[0] or 16
        n_chunks = math.ceil(T * batch / self.chunk_images)  # chunks of even length
        steps = math.ceil(T / n_chunks) if n_chunks > 1 else T
        return steps if steps < T else 0

    def _call_chunked(self, x, T, K, window):
        """`call` for inference, ``K`` steps at a time (see ``chunk_images``)."""
        plan = self.plan
        batch = tf.shape(x)[0]
        static = self._static_values(x)
        specs = plan.neuron_layers
        states = {name: dynamics.initial_state(spec, batch, plan.synapse)
                  for name, spec in specs.items()}
        sums = {name: tf.zeros(tf.stack([batch, spec.n_neurons]), tf.float32)
                for name, spec in specs.items()}
        n_full, rest = divmod(T, K)

        def body(c, states, sums, array):
            out, states, chunk_sums = self._chunk(x, static, c * K, K, states)
            sums = {name: sums[name] + chunk_sums[name] for name in sums}
            return c + 1, states, sums, array.write(c, out)

        array = tf.TensorArray(tf.float32, size=n_full,
                               element_shape=tf.TensorShape([K, None] + list(plan.output_shape)))
        _, states, sums, array = tf.while_loop(
            lambda c, *_: c < n_full, body, (tf.constant(0), states, sums, array),
            parallel_iterations=1, maximum_iterations=n_full,
        )
        steps = tf.reshape(array.stack(), (n_full * K, -1) + plan.output_shape)
        if rest:
            out, states, chunk_sums = self._chunk(x, static, n_full * K, rest, states)
            sums = {name: sums[name] + chunk_sums[name] for name in sums}
            steps = tf.concat([steps, out], axis=0)
        self._steps = T
        readout = tf.reduce_mean(steps[T - window:], axis=0)
        result = {"readout": readout}
        for name, spec in specs.items():
            result[f"rate_{name}"] = sums[name] / tf.constant(T * spec.amplitude, tf.float32)
        if self.sequences:
            result["steps"] = tf.transpose(steps, [1, 0] + list(range(2, steps.shape.rank)))
        return result

    def _static_values(self, x):
        """The values of the layers that are the same at every step, computed once."""
        plan = self.plan
        static = {}
        first = self._input(x) if self.input_mode == "images" or (
            plan.settings.input_coding == "constant") else None
        if first is None or first[1]:
            return static
        static[plan.input_name] = {"raw": first}
        for node in plan.nodes:
            if node.name in static or node.neurons is not None:
                continue
            if not all(name in static for name in node.inputs):
                continue
            if node.pass_through:
                static[node.name] = self._pass_through(node, static)
                continue
            inputs = self._node_inputs(node, static)
            static[node.name] = {"raw": self._linear(node, inputs)}
        return static

    def _chunk_input(self, x, t0, k):
        """The input layer's value for steps ``t0 .. t0 + k - 1`` (temporal)."""
        settings = self.plan.settings
        shape = self.plan.input_shape
        if self.input_mode == "coded":
            x = tf.transpose(x[:, t0 : t0 + k], [1, 0, 2])
            return tf.reshape(x, (-1,) + shape), True
        self._steps = k
        return self._input(x)  # Poisson coding in the model: draws k steps

    def _chunk(self, x, static, t0, k, states):
        """Run steps ``t0 .. t0 + k - 1``: ``(output (k, batch, ...), states, output sums)``."""
        plan = self.plan
        values = dict(static)
        if plan.input_name not in values:
            values[plan.input_name] = {"raw": self._chunk_input(x, t0, k)}
        self._steps = k
        new_states, sums = {}, {}
        for node in plan.nodes:
            if node.name in values:
                continue
            if node.pass_through:
                values[node.name] = self._pass_through(node, values)
                continue
            inputs = self._node_inputs(node, values)
            pre = self._linear(node, inputs)
            if node.neurons is None:
                values[node.name] = {"raw": pre}
                continue
            spec = node.neurons
            tensor, temporal = pre
            J = tf.constant(spec.gain, tf.float32) * tf.reshape(
                tensor, (k, -1, spec.n_neurons) if temporal else (-1, spec.n_neurons))
            outputs, sums[node.name], new_states[node.name] = dynamics.simulate(
                spec, dynamics.constants(spec, plan.settings.dt), J, k, not temporal,
                plan.synapse, plan.variants(node.name) or {"raw"}, state=states[node.name],
                return_state=True,
            )
            values[node.name] = self._values(spec, outputs, False)
        output = plan.output_name
        value, temporal = values[output][plan.reads.get((None, output), "raw")]
        out = tf.reshape(value, (k, -1) + plan.output_shape)
        if not temporal:  # cannot happen after neurons; kept for safety
            out = tf.broadcast_to(out, tf.concat([[k], tf.shape(out)[1:]], 0))
        return out, new_states, sums

    # ------------------------------------------------------------------ pieces

    def _window(self, T):
        """The readout window for ``T`` steps (an int, or a tensor when ``T`` is one)."""
        settings = self.plan.settings
        if isinstance(T, int):
            return settings.window(T)
        if settings.readout_steps is None:
            return tf.maximum(1, T // 2)
        return tf.minimum(settings.readout_steps, T)

    def _input(self, x):
        """The input layer's value ``(tensor, temporal)``."""
        settings = self.plan.settings
        shape = self.plan.input_shape
        T = self._steps
        x = tf.convert_to_tensor(x, tf.float32)
        if self.input_mode == "coded":
            if settings.input_coding == "constant":
                # constant coding repeats the image: take it once, compute its layers once
                return tf.reshape(x[:, 0], (-1,) + shape), False
            x = tf.transpose(x, [1, 0, 2])  # (T, B, N), time-major
            return tf.reshape(x, (-1,) + shape), True
        x = tf.reshape(x, (-1,) + shape)
        if settings.input_coding == "constant":
            return x, False
        probability = tf.abs(x) * (settings.input_rate_hz * settings.dt)
        draws = tf.random.uniform(tf.concat([[T], tf.shape(x)], 0), dtype=tf.float32)
        height = spike_height(settings.input_rate_hz, settings.dt)
        spikes = tf.cast(draws < probability[None], tf.float32) * tf.sign(x)[None] * height
        return tf.reshape(spikes, (-1,) + shape), True

    def _temporal(self, value):
        """``value`` as a folded ``(T * B, ...)`` tensor."""
        tensor, temporal = value
        if temporal:
            return tensor
        tiled = tf.broadcast_to(tensor[None], tf.concat([[self._steps], tf.shape(tensor)], 0))
        return tf.reshape(tiled, tf.concat([[-1], tf.shape(tensor)[1:]], 0))

    def _pass_through(self, node, values):
        """A pass-through layer (dropout: identity; pooling, reshape: its linear map) applied
        to every variant of its input (``values``: layer name -> {variant: value})."""
        (source,) = node.inputs
        return {
            variant: value if isinstance(node.layer, IDENTITY_LAYERS)
            else self._linear(node, [value])
            for variant, value in values[source].items()
        }

    def _node_inputs(self, node, values):
        """The input values ``node`` reads (the variant the plan chose for each)."""
        return [values[name][self.plan.reads.get((node.name, name), "raw")]
                for name in node.inputs]

    def _linear(self, node, inputs):
        """Apply ``node``'s layer (activation stripped) to all steps at once."""
        layer = node.layer
        if all(not temporal for _, temporal in inputs):
            tensors, temporal = [tensor for tensor, _ in inputs], False
        else:
            tensors, temporal = [self._temporal(value) for value in inputs], True
        arg = tensors if len(tensors) > 1 else tensors[0]
        if node.name in self._averages:
            return self._averages[node.name](arg), temporal
        if isinstance(layer, (tf.keras.layers.ReLU, SoftLIF)) and node.neurons is not None:
            return arg, temporal  # a pure activation: the neurons take its input
        return _call_linear(layer, arg), temporal

    def _neurons(self, node, pre):
        """Neuron layer: currents -> ({variant: value for the next layers}, rates in Hz).

        The rates are per neuron, ``(batch, n)``: the mean output over all steps
        divided by the amplitude.
        """
        spec = node.neurons
        consts = dynamics.constants(spec, self.plan.settings.dt)
        synapse = self.plan.synapse
        variants = self.plan.variants(node.name) or {"raw"}
        T = self._steps
        tensor, temporal = pre
        J = tf.constant(spec.gain, tf.float32) * tf.reshape(
            tensor, (T, -1, spec.n_neurons) if temporal else (-1, spec.n_neurons)
        )
        static = not temporal  # the same current at every step

        if spec.spiking and not self.hybrid:
            outputs, out_sum = dynamics.simulate(spec, consts, J, T, static, synapse, variants)
            out_mean = out_sum / tf.cast(T, tf.float32)
            static = False
        else:
            if spec.spiking:
                if self.method == "bptt":
                    outputs, out_mean = dynamics.bptt_layer(spec, consts, J, T, static, synapse,
                                                            variants, self.surrogate_alpha)
                else:
                    outputs, out_mean = dynamics.hybrid_layer(spec, consts, J, T, static,
                                                              synapse, variants)
                return self._values(spec, outputs, False), out_mean / tf.constant(
                    spec.amplitude, tf.float32)
            else:
                out = dynamics.rate(spec, consts, J)  # static in, static out
            out_mean = out if static else tf.reduce_mean(out, axis=0)
            outputs = {}
            for variant in variants:
                if variant == "raw":
                    outputs[variant] = out
                elif static:
                    outputs[variant] = dynamics.lowpass_static(out, T, synapse,
                                                               delay=variant == "delayed")
                else:
                    outputs[variant] = dynamics.lowpass(out, synapse, delay=variant == "delayed")
        return self._values(spec, outputs, static), out_mean / tf.constant(spec.amplitude,
                                                                           tf.float32)

    @staticmethod
    def _values(spec, outputs, static):
        """``{variant: (folded tensor, temporal)}`` of a neuron layer's outputs."""
        values = {}
        for variant, out in outputs.items():
            out_static = static and variant == "raw"
            values[variant] = (tf.reshape(out, (-1,) + spec.shape), not out_static)
        return values


def _pool_config(layer):
    config = layer.get_config()
    config["name"] = f"{layer.name}_as_average"
    return config


def _call_linear(layer, inputs):
    """``layer.call(inputs)`` with its activation (if any) replaced by the identity."""
    kwargs = {}
    if "training" in inspect.signature(layer.call).parameters:
        kwargs["training"] = False
    activation = getattr(layer, "activation", None)
    linear = activation in (None, tf.keras.activations.linear)
    if linear:
        return layer.call(inputs, **kwargs)
    layer.activation = tf.keras.activations.linear
    try:
        return layer.call(inputs, **kwargs)
    finally:
        layer.activation = activation
