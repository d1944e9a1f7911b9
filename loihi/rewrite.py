"""Keras model -> a Nengo network that nengo-loihi builds: neurons -> neurons only.

``nengo_dl.Converter`` turns pooling, upsampling and concatenation into passthrough
Nodes, conv biases into host-side bias Nodes and the input into a Node; nengo-loihi
1.1 rejects all of these (see ``shared/DESIGN.md``). This module builds the spiking
network again from the Keras graph and the conversion's decisions (neuron type,
per-layer ``scale_firing_rates``, synapse, dt), so that:

- every neuron layer (a Conv2D / Conv2DTranspose / Dense with ReLU activation, an
  Activation or ReLU layer, a `nengoseg.convert.SoftLIF` layer) is one on-chip
  ``nengo.Ensemble`` whose neurons are the layer's outputs, gain = the layer's
  scale, amplitude = 1 / scale, exactly as ``nengo_dl.Converter`` applies
  ``scale_firing_rates``;
- the linear steps between two neuron layers (pooling, upsampling, concatenation,
  flatten, dropout, linear convolutions, the next layer's own kernel) are composed
  into the transforms of Neurons -> Neurons connections (`nengoseg.loihi.linear`):
  native convolutions where they stay convolutional, Sparse matrices otherwise,
  one connection per source layer (a convolution over a concatenation is split by
  input channels);
- biases (and any constant the linear steps carry) become the ensembles' own
  biases, multiplied by the layer's gain;
- the input is an off-chip layer: a Node turns each image into spike trains (see
  `InputCoder`) and an off-chip relay ensemble hands them to the chip, unfiltered
  (the converter puts the synapse only on what neurons send);
- the output is read off chip: the neuron layers the output depends on are
  probed (unfiltered), filtered with the synapse on the host and mapped through
  the remaining linear layers (`Readout`), since nengo-loihi cannot send
  convolution transforms from chip to host.

With rate neurons (``spiking=False``) and ``synapse=None`` the network computes the
Keras model exactly (tested with the reference Nengo simulator); the rate
neurons cannot run on Loihi and are for that check only.
"""

import dataclasses
from collections import OrderedDict
from typing import Optional

import nengo
import nengo_loihi
import numpy as np
import tensorflow as tf

from nengoseg import neuron_kinds
from nengoseg.errors import ConfigError, ConversionError, DataError
from nengoseg.layer_kinds import DROPOUT_LAYERS
from nengoseg.loihi import linear
from nengoseg.loihi.limits import MAX_SPIKES_PER_STEP

INPUT_CODINGS = ("constant", "poisson")
READOUTS = ("segmentation", "regression")
RELU_ACTIVATIONS = (tf.keras.activations.relu, tf.nn.relu)
LINEAR_ACTIVATIONS = (None, tf.keras.activations.linear)
IDENTITY_LAYERS = DROPOUT_LAYERS + (tf.keras.layers.Flatten, tf.keras.layers.Reshape)


# ---------------------------------------------------------------- results


@dataclasses.dataclass
class LoihiSettings:
    """How the Loihi network is built and run (the conversion's choices plus input coding).

    spiking
        True: ``nengo.SpikingRectifiedLinear`` / ``nengo.LIF`` (what Loihi runs).
    neuron_model
        The conversion's ``neuron_model``: its neuron kinds (`nengoseg.neuron_kinds`)
        say what goes on chip, or why they cannot.
        False: ``nengo.RectifiedLinear`` / ``nengo_dl.SoftLIFRate``, for the
        exactness check in the reference simulator only.
    layer_scales
        ``{layer: scale}`` for every neuron layer (``scale_firing_rates`` resolved).
    synapse
        Lowpass time constant (s) on every connection between neurons, and of the
        host-side readout filter; None: none.
    dt, n_steps, readout_steps
        Step length (s), steps per image, and the final steps the readout
        averages (None: the last half).
    input_coding, input_rate_hz, signed_input
        Input spikes (`InputCoder`): "constant" (regular spikes at
        ``|x| * input_rate_hz``) or "poisson"; ``signed_input`` adds an "off"
        population for negative pixels.
    readout, threshold, output_activation
        As in `nengoseg.convert.ConversionSettings`: segmentation masks are
        ``sigmoid(output) > threshold``.
    seed
        Seeds the build, the simulator and Poisson input spikes.
    """

    spiking: bool = True
    neuron_model: str = "nengo"
    layer_scales: dict = dataclasses.field(default_factory=dict)
    synapse: Optional[float] = 0.005
    dt: float = 0.001
    n_steps: int = 100
    readout_steps: Optional[int] = None
    input_coding: str = "constant"
    input_rate_hz: float = 1000.0
    signed_input: bool = True
    readout: str = "segmentation"
    threshold: float = 0.5
    output_activation: str = "linear"
    seed: Optional[int] = 0

    def window(self, n_steps=None):
        """Steps averaged by the readout for a run of ``n_steps`` steps."""
        n_steps = self.n_steps if n_steps is None else n_steps
        if self.readout_steps is None:
            return max(1, n_steps // 2)
        return min(self.readout_steps, n_steps)

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LoihiLayer:
    """One layer of neurons: ``ensemble`` holds ``prod(shape)`` neurons, channels last."""

    name: str
    ensemble: nengo.Ensemble
    shape: tuple
    scale: float
    on_chip: bool

    @property
    def n_neurons(self):
        return self.ensemble.n_neurons


@dataclasses.dataclass
class LoihiConnection:
    """A Neurons -> Neurons connection and how its transform was expressed."""

    pre: str
    post: str
    connection: nengo.Connection
    kind: str  # "convolution", "convolution_transpose", "dense" or "sparse"
    fan_out: Optional[np.ndarray] = None  # synapses per presynaptic neuron (energy estimate)


class Readout:
    """The model output as an affine map of probed neuron layers, applied on the host.

    ``output = sum(matrix_i @ filtered_i) + const``, where ``filtered_i`` is layer
    i's neuron output (spikes of height ``amplitude / dt``) after the synapse.
    """

    def __init__(self, terms, const, shape):
        self.terms = terms  # list of (layer name, scipy.sparse matrix)
        self.const = const
        self.shape = tuple(shape)

    @property
    def layers(self):
        return list(OrderedDict.fromkeys(name for name, _ in self.terms))

    def __call__(self, values):
        """Output for ``{layer: (..., n_neurons)}`` arrays, shaped ``(..., *shape)``."""
        out = None
        for name, matrix in self.terms:
            x = np.asarray(values[name], np.float64)
            y = (matrix @ x.reshape(-1, x.shape[-1]).T).T
            out = y if out is None else out + y
        if self.const is not None:
            out = out + self.const
        lead = np.asarray(values[self.terms[0][0]]).shape[:-1]
        return np.asarray(out).reshape(lead + self.shape)


@dataclasses.dataclass
class LoihiNetwork:
    """A network nengo-loihi builds, and what is needed to run it and read it.

    network
        The ``nengo.Network`` (nengo-loihi config parameters added).
    input_node, coder
        The Node presenting images, and its `InputCoder` (``coder.present``).
    layers
        `LoihiLayer` by name: the input relays (off chip) and every neuron layer.
    connections
        Every Neurons -> Neurons connection, with its transform kind.
    readout, output_probes
        `Readout` and the unfiltered probe of each layer it reads.
    keras_model
        The prepared Keras model that was rebuilt (logits out).
    settings
        `LoihiSettings`.
    block_shapes
        ``{layer: nengo_loihi.BlockShape}`` once `choose_block_shapes` has run.
    """

    network: nengo.Network
    input_node: nengo.Node
    coder: "InputCoder"
    layers: "OrderedDict[str, LoihiLayer]"
    connections: list
    readout: Readout
    output_probes: dict
    keras_model: tf.keras.Model
    settings: LoihiSettings
    block_shapes: dict = dataclasses.field(default_factory=dict)

    @property
    def on_chip_layers(self):
        return [layer for layer in self.layers.values() if layer.on_chip]

    @property
    def input_shape(self):
        return tuple(self.keras_model.input_shape[1:])

    @property
    def output_shape(self):
        return self.readout.shape


# ---------------------------------------------------------------- input


class InputCoder:
    """The input Node's output: each image as on/off spike trains, one row per step.

    Images cannot enter Loihi as currents, only as spikes, so the off-chip input
    layer turns each pixel ``x`` into spikes at ``|x| * rate_hz`` Hz (at most one
    per step, so ``|x| * rate_hz * dt <= 1``): an "on" train for positive pixels
    and, with ``signed``, an "off" train for negative ones. Each spike is worth
    ``1 / rate_hz`` of the pixel, so the trains average to ``x``.

    "constant": regular spikes (an integrate-and-fire neuron driven by ``|x|``,
    starting from zero). "poisson": Bernoulli spikes with probability
    ``|x| * rate_hz * dt`` per step. With ``spiking=False`` the value itself is
    output (rate input, for the exactness check).

    `present` loads an image for the next steps of the simulator (rows are
    indexed by the simulator's step, so a restarted presentation never depends
    on earlier ones); after ``n_steps`` steps the output is zero.
    """

    def __init__(self, shape, signed, spiking, coding, rate_hz, dt):
        self.shape = tuple(shape)
        self.n = int(np.prod(self.shape))
        self.signed = signed
        self.spiking = spiking
        self.coding = coding
        self.rate_hz = float(rate_hz)
        self.dt = float(dt)
        self.size_out = self.n * (2 if signed else 1)
        self._rows = None
        self._first = 0
        self.counts = np.zeros(self.size_out)

    def present(self, image, n_steps, first_step, rng=None):
        """Show ``image`` for steps ``first_step + 1 ... first_step + n_steps``."""
        x = np.asarray(image, np.float64).reshape(-1)
        if not self.signed and np.any(x < 0):
            raise DataError(
                "the input has negative pixels but the network was built with "
                "signed_input=False; rebuild it with signed_input=True"
            )
        parts = [np.maximum(x, 0), np.maximum(-x, 0)] if self.signed else [x]
        values = np.concatenate(parts)
        self._first = int(first_step)
        if not self.spiking:
            self._rows = values[None] * self.rate_hz
            self.counts = np.zeros(self.size_out)
            return
        p = values * self.rate_hz * self.dt
        largest = float(p.max()) if p.size else 0.0
        if largest > MAX_SPIKES_PER_STEP * (1 + 1e-9):
            raise DataError(
                f"the largest pixel magnitude {largest / (self.rate_hz * self.dt):g} at "
                f"input_rate_hz={self.rate_hz:g} needs {largest:g} spikes per step; "
                f"Loihi sends at most {MAX_SPIKES_PER_STEP}: normalise the images to "
                "[0, 1] or [-1, 1], or lower input_rate_hz"
            )
        if self.coding == "poisson":
            rng = np.random.default_rng(rng)
            spikes = rng.random((n_steps, p.size)) < p
        else:
            steps = np.arange(n_steps + 1)[:, None]
            spikes = np.diff(np.floor(steps * p + 1e-9), axis=0) > 0
        self._rows = spikes.astype(np.float64) / self.dt
        self.counts = spikes.sum(axis=0).astype(np.float64)

    def __call__(self, t):
        step = int(round(t / self.dt)) - self._first - 1
        if self._rows is None or step < 0:
            return np.zeros(self.size_out)
        if not self.spiking:
            return self._rows[0]
        if step >= len(self._rows):
            return np.zeros(self.size_out)
        return self._rows[step]


# ---------------------------------------------------------------- affine values


@dataclasses.dataclass
class Affine:
    """A Keras tensor as ``sum(chain_i(layer_i)) + const`` over neuron layers."""

    shape: tuple
    terms: list  # (layer name, tuple of LinearOp)
    const: Optional[np.ndarray] = None

    @classmethod
    def of_layer(cls, name, shape):
        return cls(tuple(shape), [(name, ())])

    def map(self, op):
        const = None if self.const is None else op.apply(self.const)
        return Affine(tuple(op.out_shape), [(n, ops + (op,)) for n, ops in self.terms], const)

    def plus(self, bias):
        """Add a constant: a flat vector, or one value per channel (last axis)."""
        bias = np.asarray(bias, np.float64)
        if bias.size != int(np.prod(self.shape)):
            bias = np.broadcast_to(bias, self.shape).ravel()
        const = bias.copy() if self.const is None else self.const + bias
        return Affine(self.shape, list(self.terms), const)

    @staticmethod
    def sum(values):
        shape = values[0].shape
        terms = [t for v in values for t in v.terms]
        consts = [v.const for v in values if v.const is not None]
        return Affine(shape, terms, np.sum(consts, axis=0) if consts else None)


# ---------------------------------------------------------------- layer handlers

HANDLERS = OrderedDict()


def handles(*layer_classes):
    """Register a handler ``f(layer, inputs, builder) -> (Affine, neuron_spec or None)``."""

    def register(function):
        for cls in layer_classes:
            HANDLERS[cls] = function
        return function

    return register


def _handler(layer):
    handler = HANDLERS.get(type(layer))
    if handler is None:
        handler = next((h for cls, h in HANDLERS.items() if isinstance(layer, cls)), None)
    if handler is None:
        supported = sorted({cls.__name__ for cls in HANDLERS})
        raise _unsupported(layer, f"no Loihi rewrite exists for {type(layer).__name__} layers "
                                  f"(supported: {', '.join(supported)})")
    return handler


def _unsupported(layer, reason):
    return ConversionError(
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be mapped to Loihi: {reason}"
    )


def _activation(layer):
    """None (linear) or ("relu",); anything else is refused."""
    activation = getattr(layer, "activation", None)
    if activation in LINEAR_ACTIVATIONS:
        return None
    if activation in RELU_ACTIVATIONS:
        return ("relu",)
    name = getattr(activation, "__name__", repr(activation))
    raise _unsupported(
        layer, f"activation '{name}' has no Loihi neuron; allowed: linear, relu, or a SoftLIF layer"
    )


def _check_image_layer(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "only channels_last data is supported")
    if tuple(np.atleast_1d(getattr(layer, "dilation_rate", 1))) not in ((1,), (1, 1)):
        raise _unsupported(layer, "dilated convolutions are not supported")
    if getattr(layer, "groups", 1) != 1:
        raise _unsupported(layer, "grouped convolutions are not supported")


def _bias(layer):
    return layer.bias.numpy() if getattr(layer, "use_bias", False) else None


@handles(tf.keras.layers.Conv2D)
def _conv2d(layer, inputs, builder):
    _check_image_layer(layer)
    (x,) = inputs
    if len(x.shape) != 3:
        raise _unsupported(layer, f"expects an image input, got shape {x.shape}")
    op = linear.Conv2D(x.shape, layer.kernel.numpy(), layer.strides, layer.padding)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.Conv2DTranspose)
def _conv2d_transpose(layer, inputs, builder):
    _check_image_layer(layer)
    if layer.output_padding is not None:
        raise _unsupported(layer, "output_padding is not supported")
    (x,) = inputs
    op = linear.Conv2DTranspose(x.shape, _out_shape(layer), layer.kernel.numpy(),
                                layer.strides, layer.padding)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.Dense)
def _dense(layer, inputs, builder):
    (x,) = inputs
    kernel = layer.kernel.numpy()
    if len(x.shape) == 3:  # per pixel: a 1x1 convolution
        op = linear.Conv2D(x.shape, kernel[None, None])
    else:
        op = linear.Dense(x.shape, kernel)
    out = x.map(op)
    bias = _bias(layer)
    return (out if bias is None else out.plus(bias)), _activation(layer)


@handles(tf.keras.layers.AveragePooling2D, tf.keras.layers.MaxPooling2D)
def _pool(layer, inputs, builder):
    _check_image_layer(layer)
    if isinstance(layer, tf.keras.layers.MaxPooling2D) and not builder.max_to_avg_pool:
        raise _unsupported(
            layer, "max pooling has no linear equivalent; set max_to_avg_pool=True to use "
                   "average pooling instead (this changes the network)"
        )
    (x,) = inputs
    return x.map(linear.AvgPool2D(x.shape, layer.pool_size, layer.strides, layer.padding)), None


@handles(tf.keras.layers.GlobalAveragePooling2D)
def _global_pool(layer, inputs, builder):
    _check_image_layer(layer)
    if getattr(layer, "keepdims", False):
        raise _unsupported(layer, "keepdims=True is not supported")
    (x,) = inputs
    return x.map(linear.GlobalAvgPool2D(x.shape)), None


@handles(tf.keras.layers.UpSampling2D)
def _upsample(layer, inputs, builder):
    _check_image_layer(layer)
    if layer.interpolation != "nearest":
        raise _unsupported(layer, f"interpolation '{layer.interpolation}'; only 'nearest' is linear "
                                  "and exact here")
    (x,) = inputs
    return x.map(linear.Upsample2D(x.shape, layer.size)), None


@handles(tf.keras.layers.Concatenate)
def _concatenate(layer, inputs, builder):
    out_shape = _out_shape(layer)
    axis = layer.axis % (len(out_shape) + 1) - 1  # without the batch axis
    if axis < 0:
        raise _unsupported(layer, "concatenation along the batch axis")
    parts, offset = [], 0
    for x in inputs:
        parts.append(x.map(linear.Embed(x.shape, out_shape, axis, offset)))
        offset += x.shape[axis]
    return Affine.sum(parts), None


@handles(tf.keras.layers.Add)
def _add(layer, inputs, builder):
    return Affine.sum(list(inputs)), None


@handles(*IDENTITY_LAYERS)
def _identity(layer, inputs, builder):
    (x,) = inputs
    return x.map(linear.Identity(x.shape, _out_shape(layer))), None


@handles(tf.keras.layers.Activation)
def _activation_layer(layer, inputs, builder):
    (x,) = inputs
    return x, _activation(layer)


@handles(tf.keras.layers.ReLU)
def _relu(layer, inputs, builder):
    if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        raise _unsupported(layer, "only the plain ReLU (no max_value, slope or threshold) is supported")
    (x,) = inputs
    return x, ("relu",)


@handles(tf.keras.layers.BatchNormalization)
def _batch_norm(layer, inputs, builder):
    (x,) = inputs
    if list(layer.axis) != [len(x.shape)]:
        raise _unsupported(layer, "only normalisation over the last (channel) axis is supported")
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    shift = beta - scale * layer.moving_mean.numpy()
    return x.map(linear.Scale(x.shape, scale)).plus(shift), None


def _register_softlif():
    from nengoseg.convert.layers import SoftLIF

    @handles(SoftLIF)
    def _softlif(layer, inputs, builder):
        (x,) = inputs
        return x, ("softlif", layer.tau_rc, layer.tau_ref, layer.amplitude, layer.sigma)


_register_softlif()


def _out_shape(layer):
    shape = layer.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return tuple(shape[1:])


# ---------------------------------------------------------------- the builder


def make_neuron_type(spec, scale, spiking, neuron_model="nengo", where="a layer"):
    """The Nengo neuron type for ``spec`` at firing-rate ``scale`` (amplitude / scale).

    ``spec`` is ``("relu",)`` or ``("softlif", tau_rc, tau_ref, amplitude, sigma)``. Spiking:
    what the neuron-kind registry puts on chip for the kind ``neuron_model`` converts
    this activation to (a ConversionError says why, for a kind that cannot go on chip);
    rate: the converter's rate neuron (for the exactness check).
    """
    activation, params = spec[0], dict(zip(("tau_rc", "tau_ref", "amplitude", "sigma"), spec[1:]))
    if not spiking:
        return neuron_kinds.rate_neuron(activation, scale, **params)
    kind = neuron_kinds.converted_kind(activation, neuron_model, where=where)
    params.pop("sigma", None)
    params["amplitude"] = params.get("amplitude", 1.0) / scale
    return kind.on_chip_neuron(**params, where=where)


class _Builder:
    """Walks the Keras graph and fills a ``nengo.Network``."""

    def __init__(self, model, settings, scales, max_to_avg_pool, pop_type, layout):
        self.layout = layout
        self.model = model
        self.settings = settings
        self.scales = scales
        self.max_to_avg_pool = max_to_avg_pool
        self.pop_type = pop_type
        self.layers = OrderedDict()
        self.connections = []
        self.net = nengo.Network(label=f"{model.name} (Loihi)", seed=settings.seed)
        nengo_loihi.add_params(self.net)
        self.synapse = None if settings.synapse is None else nengo.Lowpass(settings.synapse)

    def scale_of(self, name):
        if isinstance(self.scales, dict):
            return float(self.scales.get(name, 1.0))
        return float(self.scales)

    def build(self):
        values = {}
        for layer in self.model.layers:
            if isinstance(layer, tf.keras.layers.InputLayer):
                values[layer.name] = self.add_input(layer)
                continue
            inbound = layer.inbound_nodes[0].inbound_layers
            inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
            inputs = [values[source.name] for source in inbound]
            pre, neuron = _handler(layer)(layer, inputs, self)
            values[layer.name] = pre if neuron is None else self.add_neurons(layer, pre, neuron)
        output = values[self.model.outputs[0].node.layer.name]
        return self.readout(output)

    def add_input(self, layer):
        s = self.settings
        shape = _out_shape(layer)
        coder = InputCoder(shape, s.signed_input, s.spiking, s.input_coding, s.input_rate_hz, s.dt)
        with self.net:
            self.input_node = nengo.Node(coder, size_out=coder.size_out, label=layer.name)
        self.coder = coder
        names = [f"{layer.name}.on", f"{layer.name}.off"][: 2 if s.signed_input else 1]
        terms = []
        for i, name in enumerate(names):
            with self.net:
                ens = nengo.Ensemble(
                    coder.n, 1,
                    neuron_type=nengo.RectifiedLinear(amplitude=1.0 / s.input_rate_hz),
                    gain=nengo.dists.Choice([1.0]), bias=nengo.dists.Choice([0.0]), label=name,
                )
                nengo.Connection(self.input_node[i * coder.n : (i + 1) * coder.n], ens.neurons,
                                 synapse=None, label=f"{layer.name}->{name}")
            self.net.config[ens].on_chip = False
            self.layers[name] = LoihiLayer(name, ens, shape, s.input_rate_hz, on_chip=False)
            terms.append((name, () if i == 0 else (linear.Scale(shape, -1.0),)))
        return Affine(shape, terms)

    def add_neurons(self, layer, pre, spec):
        name, shape = layer.name, pre.shape
        if not pre.terms:
            raise _unsupported(layer, "its input does not depend on the network input")
        scale = self.scale_of(name)
        n = int(np.prod(shape))
        bias = nengo.dists.Choice([0.0]) if pre.const is None else scale * pre.const
        with self.net:
            ens = nengo.Ensemble(
                n, 1, neuron_type=make_neuron_type(spec, scale, self.settings.spiking,
                                             self.settings.neuron_model, f"layer '{name}'"),
                gain=nengo.dists.Choice([scale]), bias=bias, label=name,
            )
        self.layers[name] = LoihiLayer(name, ens, shape, scale, on_chip=True)
        for source, chain in pre.terms:
            source_shape = self.layers[source].shape
            transform, kind = linear.to_transform(chain, source_shape, self.layout)
            # as in nengo_dl.Converter, the synapse filters what neurons send; the input
            # (here its off-chip relays) reaches the first layers unfiltered
            synapse = self.synapse if self.layers[source].on_chip else None
            with self.net:
                conn = nengo.Connection(
                    self.layers[source].ensemble.neurons, ens.neurons, transform=transform,
                    synapse=synapse, label=f"{source}->{name}",
                )
            if kind in ("convolution", "convolution_transpose"):
                self.net.config[conn].pop_type = self.pop_type
            self.connections.append(LoihiConnection(
                source, name, conn, kind, linear.chain_fan_out(chain, source_shape)))
        return Affine.of_layer(name, shape)

    def readout(self, output):
        terms = [(name, linear.compose(linear.simplify(chain), self.layers[name].shape))
                 for name, chain in output.terms]
        readout = Readout(terms, output.const, output.shape)
        with self.net:
            probes = {
                name: nengo.Probe(self.layers[name].ensemble.neurons, synapse=None,
                                  label=f"{name}.readout")
                for name in readout.layers
            }
        return readout, probes


def build_loihi_network(
    keras_model,
    spiking=True,
    neuron_model="nengo",
    scale_firing_rates=1.0,
    synapse=0.005,
    dt=0.001,
    n_steps=100,
    readout_steps=None,
    input_coding="constant",
    input_rate_hz=1000.0,
    signed_input=True,
    readout="segmentation",
    threshold=0.5,
    output_activation=None,
    max_to_avg_pool=False,
    pop_type=32,
    seed=0,
    prepare=True,
    layout=None,
):
    """Build the Loihi version of a Keras model (see the module docstring).

    Parameters
    ----------
    keras_model : tf.keras.Model
        Functional or Sequential, one input, one output.
    spiking : bool
        False: rate neurons (exact, reference simulator only).
    neuron_model : str
        The conversion's ``neuron_model`` (`nengoseg.convert.ConversionSettings`).
    scale_firing_rates : float or dict
        One scale for every neuron layer, or ``{layer_name: scale}`` (others 1),
        applied as ``nengo_dl.Converter`` does (gain x scale, amplitude / scale).
    synapse, dt, n_steps, readout_steps, input_coding, input_rate_hz, signed_input,
    readout, threshold, seed
        See `LoihiSettings`.
    output_activation : str or None
        The activation the readout applies (None: the one `prepare` removed).
    max_to_avg_pool : bool
        Map max pooling as average pooling.
    pop_type : 16 or 32
        nengo-loihi axon type of convolutional connections (32: nengo-loihi's
        default; 16 halves the axons but restricts channels per core).
    layout : "loihi", "nengo" or None
        How convolution kernels are laid out (`nengoseg.loihi.linear.to_transform`):
        "loihi" for nengo-loihi (exact there), "nengo" for the reference
        simulator and NengoDL. None: "loihi" when spiking, else "nengo" (rate
        neurons only run in the reference simulator).
    prepare : bool
        Run `nengoseg.convert.prepare_model` first (fold BatchNormalization, move
        an output sigmoid into the readout), as the NengoDL conversion does.

    Returns
    -------
    LoihiNetwork

    Raises
    ------
    ConversionError
        A layer has no Loihi mapping (names the layer and why).
    ConfigError
        A setting is not allowed (names it and what is allowed).
    """
    _check_options(input_coding, input_rate_hz, dt, readout, pop_type, synapse)
    removed = "linear"
    if prepare:
        from nengoseg.convert import prepare_model

        keras_model, removed = prepare_model(keras_model)
    settings = LoihiSettings(
        spiking=bool(spiking), neuron_model=neuron_model, synapse=synapse, dt=float(dt),
        n_steps=int(n_steps),
        readout_steps=readout_steps, input_coding=input_coding,
        input_rate_hz=float(input_rate_hz), signed_input=bool(signed_input), readout=readout,
        threshold=float(threshold),
        output_activation=removed if output_activation is None else output_activation,
        seed=seed,
    )
    if layout is None:
        layout = "loihi" if spiking else "nengo"
    builder = _Builder(keras_model, settings, scale_firing_rates, max_to_avg_pool, pop_type,
                       layout)
    readout_map, probes = builder.build()
    neuron_layers = [l.name for l in builder.layers.values() if l.on_chip]
    if isinstance(scale_firing_rates, dict):
        unknown = sorted(set(scale_firing_rates) - set(neuron_layers))
        if unknown:
            raise ConfigError(
                f"scale_firing_rates names layer {unknown[0]!r}, which is not a neuron layer of "
                f"model '{keras_model.name}'; allowed: {', '.join(neuron_layers) or 'none'}"
            )
    settings.layer_scales = {name: builder.scale_of(name) for name in neuron_layers}
    return LoihiNetwork(
        network=builder.net,
        input_node=builder.input_node,
        coder=builder.coder,
        layers=builder.layers,
        connections=builder.connections,
        readout=readout_map,
        output_probes=probes,
        keras_model=keras_model,
        settings=settings,
    )


def from_conversion(source, spiking=None, **options):
    """`build_loihi_network` with the settings of a NengoDL conversion.

    ``source``: a `nengoseg.convert.ConvertedNetwork`, a ``(keras_model,
    ConversionSettings)`` pair, or a folder written by
    `nengoseg.convert.save_conversion` (a converted or co-trained SNN). Its
    resolved per-layer scales, synapse, dt, steps, input coding and readout are
    used; ``options`` override `build_loihi_network` arguments.
    """
    from nengoseg.convert import ConvertedNetwork, load_conversion

    if isinstance(source, ConvertedNetwork):
        keras_model, settings = source.keras_model, source.settings
    elif isinstance(source, (tuple, list)):
        keras_model, settings = source
    else:
        keras_model, settings = load_conversion(source)
    scales = settings.layer_scales or settings.scale_firing_rates
    arguments = dict(
        spiking=settings.spiking if spiking is None else spiking,
        neuron_model=settings.neuron_model,
        scale_firing_rates=dict(scales) if isinstance(scales, dict) else scales,
        synapse=settings.synapse,
        dt=settings.dt,
        n_steps=settings.n_steps,
        readout_steps=settings.readout_steps,
        input_coding=settings.input_coding,
        input_rate_hz=settings.input_rate_hz,
        readout=settings.readout,
        threshold=settings.threshold,
        output_activation=settings.output_activation,
        max_to_avg_pool=settings.max_to_avg_pool,
        seed=settings.seed,
    )
    arguments.update(options)
    return build_loihi_network(keras_model, **arguments)


def _check_options(input_coding, input_rate_hz, dt, readout, pop_type, synapse):
    if input_coding not in INPUT_CODINGS:
        raise ConfigError(f"input_coding={input_coding!r} is not allowed; allowed: "
                          f"{', '.join(map(repr, INPUT_CODINGS))}")
    if readout not in READOUTS:
        raise ConfigError(f"readout={readout!r} is not allowed; allowed: "
                          f"{', '.join(map(repr, READOUTS))}")
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ConfigError(f"dt={dt!r} is not allowed; allowed: a number > 0 (seconds)")
    if not (isinstance(input_rate_hz, (int, float)) and 0 < input_rate_hz * dt <= MAX_SPIKES_PER_STEP):
        raise ConfigError(
            f"input_rate_hz={input_rate_hz!r} is not allowed; allowed: a number in "
            f"(0, 1/dt = {1 / dt:g}] (Loihi sends at most one spike per step)"
        )
    if pop_type not in (16, 32):
        raise ConfigError(f"pop_type={pop_type!r} is not allowed; allowed: 16, 32")
    if synapse is not None and not (isinstance(synapse, (int, float)) and synapse > 0):
        raise ConfigError(f"synapse={synapse!r} is not allowed; allowed: None or a time "
                          "constant > 0 (seconds)")
