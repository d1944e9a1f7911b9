"""The SoftLIF and QCFS Keras layers and the NengoDL layer converters nengoseg adds.

Each converter is one small `nengo_dl.converter.LayerConverter` class registered
with ``@nengo_dl.Converter.register(LayerClass)``, as in nengo-dl's own
``converter.py``. Importing this module registers them, so they also work with a
plain ``nengo_dl.Converter``.

What nengo-dl 3.6 lacks and this module fills in:

- ``Conv2DTranspose`` has no converter: nengo-dl silently falls back to a
  TensorNode (which cannot run outside NengoDL, e.g. on Loihi), although Nengo 3.2
  has `nengo.transforms.ConvolutionTranspose` and NengoDL can simulate it.
- ``Dropout`` (and the other noise layers) have no converter either, so they too
  become TensorNodes; at inference they are the identity.
- Soft-LIF rate neurons exist (`nengo_dl.SoftLIFRate`) but there is no Keras
  layer computing them, so a Keras model cannot be trained with them and converted.
"""

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf
from nengo_dl.converter import LayerConverter

from nengoseg.description.from_keras import handles as description_handler
from nengoseg.layer_kinds import DROPOUT_LAYERS

# Keras layer arguments that only matter during Keras training; nengo-dl refuses
# them unless inference_only=True (convert() drops them from the model beforehand).
TRAINING_ONLY_ARGS = [
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
]


@tf.keras.utils.register_keras_serializable(package="nengoseg")
class SoftLIF(tf.keras.layers.Layer):
    """Soft-LIF rate activation (Hunsberger & Eliasmith 2015), as a Keras layer.

    Computes, for an input current ``x`` (threshold 1)::

        rate(x) = amplitude / (tau_ref + tau_rc * log1p(1 / rho(x - 1)))
        rho(j)  = sigma * log(1 + exp(j / sigma))      (smoothed max(j, 0))

    with exactly the operations of NengoDL's TensorFlow builder for
    `nengo_dl.SoftLIFRate` (including its ``j / sigma <= -20`` branch), so a Keras
    model trained with this layer and its NengoDL conversion agree to float
    precision. The output is a firing rate in Hz times ``amplitude``. In the
    converted network the layer becomes `nengo_dl.SoftLIFRate` neurons (rates) or
    `nengo.LIF` neurons (spikes) with the same ``tau_rc``, ``tau_ref`` and
    ``amplitude``. The co-training paper trains LocNet with ``sigma=0.005``.

    Parameters
    ----------
    tau_rc : float
        Membrane time constant in seconds.
    tau_ref : float
        Refractory period in seconds (the rate never exceeds ``1 / tau_ref``).
    amplitude : float
        Scale of the output (the spike height, in units of ``1/dt``, once spiking).
    sigma : float
        Smoothing of the rate around the firing threshold (``> 0``).
    """

    def __init__(self, tau_rc=0.02, tau_ref=0.002, amplitude=1.0, sigma=0.005, **kwargs):
        super().__init__(**kwargs)
        for name, value in [("tau_rc", tau_rc), ("sigma", sigma), ("amplitude", amplitude)]:
            if not value > 0:
                raise ValueError(f"SoftLIF {name} must be > 0, got {value!r}")
        if not tau_ref >= 0:
            raise ValueError(f"SoftLIF tau_ref must be >= 0, got {tau_ref!r}")
        self.tau_rc = float(tau_rc)
        self.tau_ref = float(tau_ref)
        self.amplitude = float(amplitude)
        self.sigma = float(sigma)

    def call(self, inputs):
        js = (inputs - 1) / self.sigma
        valid = js > -20
        js_safe = tf.where(valid, js, tf.zeros_like(js))
        z = tf.nn.softplus(js_safe) * self.sigma
        q = tf.where(valid, tf.math.log1p(tf.math.reciprocal(z)), -js - np.log(self.sigma))
        return self.amplitude / (self.tau_ref + self.tau_rc * q)

    def get_config(self):
        return {
            **super().get_config(),
            "tau_rc": self.tau_rc,
            "tau_ref": self.tau_ref,
            "amplitude": self.amplitude,
            "sigma": self.sigma,
        }

    def neuron_type(self):
        """The `nengo_dl.SoftLIFRate` neuron type computing this layer."""
        return nengo_dl.SoftLIFRate(
            sigma=self.sigma, tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude
        )


@tf.keras.utils.register_keras_serializable(package="nengoseg")
class QCFS(tf.keras.layers.Layer):
    """Quantisation clip-floor-shift activation (Bu et al., ICLR 2022, "Optimal ANN-SNN
    conversion for high-accuracy and ultra-low-latency spiking neural networks").

    For an input ``x``, ``levels`` = L and the trainable clipping threshold
    ``threshold`` = lambda::

        qcfs(x) = lambda * clip(floor(x * L / lambda + 1/2) / L, 0, 1)

    Its outputs are the L + 1 levels ``k * lambda / L``. An integrate-and-fire neuron
    with reset by subtraction, threshold lambda and membrane starting at lambda / 2
    emits, for a constant input ``x`` over T = L steps, exactly
    ``floor(x * L / lambda + 1/2)`` spikes (clipped to 0..L), so its mean output
    ``spikes * lambda / T`` is ``qcfs(x)``: a network trained with this activation
    converts with no quantisation error at T = L steps (the paper's Theorem 2;
    deeper layers see spike trains, not constants, and match in expectation).

    The floor passes gradients straight through (the paper's training rule), so
    ``x`` gets the gradient of ``clip(x, 0, lambda)`` and lambda learns where to clip.
    Conversion (`nengoseg.convert.convert` with ``normalise="qcfs"``) turns the layer
    into ReLU neurons whose scale makes lambda fire one spike per step.

    Parameters
    ----------
    levels : int
        Quantisation levels L (the time steps the converted network needs), >= 1.
    initial_threshold : float
        The starting clipping threshold lambda (> 0; the paper starts at 8 for
        standardised ImageNet inputs; images in [0, 1] suit smaller values).
    """

    def __init__(self, levels=8, initial_threshold=2.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ValueError(f"QCFS levels must be an integer >= 1, got {levels!r}")
        if not initial_threshold > 0:
            raise ValueError(f"QCFS initial_threshold must be > 0, got {initial_threshold!r}")
        self.levels = int(levels)
        self.initial_threshold = float(initial_threshold)

    def build(self, input_shape):
        self.threshold = self.add_weight(
            name="threshold", shape=(),
            initializer=tf.keras.initializers.Constant(self.initial_threshold), trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        scaled = inputs / self.threshold * self.levels + 0.5
        floored = scaled + tf.stop_gradient(tf.floor(scaled) - scaled)  # straight through
        return tf.clip_by_value(floored / self.levels, 0.0, 1.0) * self.threshold

    def get_config(self):
        return {**super().get_config(), "levels": self.levels,
                "initial_threshold": self.initial_threshold}


def qcfs_thresholds(keras_model):
    """``{layer_name: lambda}`` of every `QCFS` layer of ``keras_model`` (learned thresholds)."""
    return {layer.name: float(tf.keras.backend.get_value(layer.threshold))
            for layer in keras_model.layers if isinstance(layer, QCFS)}


@nengo_dl.Converter.register(SoftLIF)
class ConvertSoftLIF(LayerConverter):
    """Convert `SoftLIF` to an ensemble of `nengo_dl.SoftLIFRate` neurons.

    ``scale_firing_rates`` applies (gain and amplitude), but since the LIF rate is
    not linear in its input current the scaled network no longer computes the Keras
    function exactly (nengo-dl documents the same for any nonlinear neuron).
    """

    def convert(self, node_id):
        output = self.add_nengo_obj(node_id, activation=self.layer.neuron_type())
        self.add_connection(node_id, output)
        return output


@description_handler(SoftLIF)
def _describe_softlif(layer, inputs, options):
    """In the network description (`nengoseg.description`): soft LIF neurons on the input."""
    params = {"tau_rc": float(layer.tau_rc), "tau_ref": float(layer.tau_ref),
              "amplitude": float(layer.amplitude), "sigma": float(layer.sigma)}
    return "reshape", {}, {}, params


@nengo_dl.Converter.register(tf.keras.layers.Conv2DTranspose)
class ConvertConv2DTranspose(LayerConverter):
    """Convert ``tf.keras.layers.Conv2DTranspose`` to a `nengo.transforms.ConvolutionTranspose`.

    Two differences between Keras and Nengo are bridged here:

    - Kernel layout: Keras stores ``(kh, kw, out_channels, in_channels)``; Nengo's
      ``init`` is ``(kh, kw, in_channels, out_channels)`` (NengoDL swaps the last two
      axes back before calling ``tf.nn.conv_transpose``).
    - Output shape: for a stride ``s`` Nengo defaults to the *smallest* output that
      a forward convolution maps back onto the input, e.g. ``2H - 1`` for stride 2
      with "same" padding, where Keras gives ``s * H``. The Keras output shape is
      passed explicitly; TensorFlow then places the padding as Keras does.

    Biases are per output channel and are added as in nengo-dl's ``ConvertConv``: a
    constant node, a trainable relay of one value per channel, and a fixed sparse
    connection broadcasting each channel's bias over the spatial positions.
    ``output_padding`` and dilation are not supported.
    """

    unsupported_args = [("dilation_rate", (1, 1)), "output_padding"]
    unsupported_training_args = TRAINING_ONLY_ARGS
    has_weights = True

    def convert(self, node_id):
        output = self.add_nengo_obj(node_id, activation=self.layer.activation)
        if self.layer.use_bias:
            add_channel_biases(self, node_id, output, tf.keras.backend.get_value(self.layer.bias))

        kernel = tf.keras.backend.get_value(self.layer.kernel)
        transform = nengo.transforms.ConvolutionTranspose(
            n_filters=self.layer.filters,
            input_shape=self.input_shape(node_id),
            output_shape=self.output_shape(node_id),
            kernel_size=self.layer.kernel_size,
            strides=self.layer.strides,
            padding=self.layer.padding,
            channels_last=self.layer.data_format == "channels_last",
            init=np.transpose(kernel, (0, 1, 3, 2)),
        )
        self.add_connection(node_id, output, transform=transform, trainable=True)
        return output


class ConvertDropout(LayerConverter):
    """Remove dropout and noise layers: at inference they pass their input through."""

    def convert(self, node_id):
        return self.get_input_obj(node_id)


for _layer in DROPOUT_LAYERS:
    nengo_dl.Converter.register(_layer)(ConvertDropout)


def add_channel_biases(layer_converter, node_id, output, biases):
    """Add one trainable bias per channel to ``output``, shared over space.

    The same structure as nengo-dl's ``ConvertConv``: ``Node([1])`` -> relay of
    ``len(biases)`` (trainable transform ``biases``) -> ``output`` through a fixed
    `nengo.Sparse` transform that sends channel ``c`` to every element of channel ``c``.
    """
    layer = layer_converter.layer
    name = f"{layer.name}.{node_id}"
    bias_node = nengo.Node([1], label=f"{name}.bias")
    bias_relay = nengo.Node(size_in=len(biases), label=f"{name}.bias_relay")
    nengo.Connection(bias_node, bias_relay, transform=biases[:, None], synapse=None)

    shape = layer_converter.output_shape(node_id)
    channel_axis = -1 if layer.data_format == "channels_last" else 0
    channel_of_element = np.indices(shape)[channel_axis].ravel()
    indices = np.stack([np.arange(channel_of_element.size), channel_of_element], axis=1)
    conn = nengo.Connection(
        bias_relay,
        output,
        transform=nengo.Sparse((output.size_in, len(biases)), indices=indices),
        synapse=None,
    )
    layer_converter.set_trainable(conn, False)
