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
  `nengoseg.loihi.network.InputCoder`) and an off-chip relay ensemble hands them
  to the chip, unfiltered (the converter puts the synapse only on what neurons send);
- the output is read off chip: the neuron layers the output depends on are
  probed (unfiltered), filtered with the synapse on the host and mapped through
  the remaining linear layers (`nengoseg.loihi.network.Readout`), since
  nengo-loihi cannot send convolution transforms from chip to host.

With rate neurons (``spiking=False``) and ``synapse=None`` the network computes the
Keras model exactly (tested with the reference Nengo simulator); the rate
neurons cannot run on Loihi and are for that check only.

This module holds the builder (`build_loihi_network`, `from_conversion`); the
Keras layer handlers are in `nengoseg.loihi.keras_layers`, the result classes
(`LoihiNetwork`, `LoihiSettings`, `Readout`, `InputCoder`, ...) in
`nengoseg.loihi.network`.
"""

from collections import OrderedDict

import nengo
import nengo_loihi
import numpy as np
import tensorflow as tf

from nengoseg import neuron_kinds
from nengoseg.errors import ConfigError
from nengoseg.loihi import linear
from nengoseg.loihi.keras_layers import Affine, handler_for, layer_out_shape, unsupported
from nengoseg.loihi.limits import MAX_SPIKES_PER_STEP
from nengoseg.loihi.network import (InputCoder, LoihiConnection, LoihiLayer, LoihiNetwork,
                                    LoihiSettings, Readout)

INPUT_CODINGS = ("constant", "poisson")
READOUTS = ("segmentation", "regression")


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
            pre, neuron = handler_for(layer)(layer, inputs, self)
            values[layer.name] = pre if neuron is None else self.add_neurons(layer, pre, neuron)
        output = values[self.model.outputs[0].node.layer.name]
        return self.readout(output)

    def add_input(self, layer):
        s = self.settings
        shape = layer_out_shape(layer)
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
            raise unsupported(layer, "its input does not depend on the network input")
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
