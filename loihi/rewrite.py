"""Network description -> a Nengo network that nengo-loihi builds: neurons -> neurons only.

``nengo_dl.Converter`` turns pooling, upsampling and concatenation into passthrough
Nodes, conv biases into host-side bias Nodes and the input into a Node; nengo-loihi
1.1 rejects all of these (see ``shared/DESIGN.md``). This module builds the spiking
network again from the conversion's network description (`nengoseg.description`:
the layers' linear operations and weights, each neuron layer's kind and scale, the
synapse, dt), so that:

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

This module holds the builder (`from_description`, and `build_loihi_network` /
`from_conversion`, which describe a Keras model or a conversion first); the
operations' affine maps are in `nengoseg.loihi.affine`, the result classes
(`LoihiNetwork`, `LoihiSettings`, `Readout`, `InputCoder`, ...) in
`nengoseg.loihi.network`.
"""

import dataclasses
from collections import OrderedDict
from pathlib import Path

import nengo
import nengo_loihi
import numpy as np

from nengoseg import neuron_kinds
from nengoseg.convert.settings import READOUTS  # one list of readouts for every backend
from nengoseg.description import DESCRIPTION_FILE, RunSettings, describe
from nengoseg.description import load as load_description
from nengoseg.errors import ConfigError, ConversionError
from nengoseg.loihi import linear
from nengoseg.loihi import affine
from nengoseg.loihi.affine import Affine
from nengoseg.loihi.limits import MAX_SPIKES_PER_STEP
from nengoseg.loihi.network import (InputCoder, LoihiConnection, LoihiLayer, LoihiNetwork,
                                    LoihiSettings, Readout)

INPUT_CODINGS = ("constant", "poisson")


# ---------------------------------------------------------------- the builder


def make_neuron_type(neurons, spiking, neuron_model="nengo", where="a layer"):
    """The Nengo neuron type of a description's `Neurons` record.

    Spiking: what the neuron-kind registry puts on chip for the kind ``neuron_model``
    converts the record's activation to (a ConversionError says why, for a kind that
    cannot go on chip); rate: the converter's rate neuron (for the exactness check).
    """
    if not spiking:
        return neuron_kinds.rate_neuron(neurons.activation, 1.0, tau_rc=neurons.tau_rc,
                                        tau_ref=neurons.tau_ref, amplitude=neurons.amplitude,
                                        sigma=neurons.sigma)
    kind = neuron_kinds.converted_kind(neurons.activation, neuron_model, where=where)
    return kind.on_chip_neuron(tau_rc=neurons.tau_rc, tau_ref=neurons.tau_ref,
                               amplitude=neurons.amplitude, where=where)


class _Builder:
    """Walks a network description and fills a ``nengo.Network``."""

    def __init__(self, description, settings, pop_type, layout):
        self.layout = layout
        self.description = description
        self.settings = settings
        self.pop_type = pop_type
        self.layers = OrderedDict()
        self.connections = []
        self.net = nengo.Network(label=f"{description.name} (Loihi)", seed=settings.seed)
        nengo_loihi.add_params(self.net)
        self.synapse = None if settings.synapse is None else nengo.Lowpass(settings.synapse)

    def build(self):
        values = {}
        for layer in self.description.layers:
            if layer.op == "input":
                values[layer.name] = self.add_input(layer)
                continue
            pre = affine.apply(layer, [values[name] for name in layer.inputs])
            values[layer.name] = pre if layer.neurons is None else self.add_neurons(layer, pre)
        return self.readout(values[self.description.output])

    def add_input(self, layer):
        s = self.settings
        shape = layer.shape
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

    def add_neurons(self, layer, pre):
        name, shape = layer.name, pre.shape
        if not pre.terms:
            raise ConversionError(f"layer '{name}' cannot be mapped to Loihi: its input does "
                                  "not depend on the network input")
        scale = layer.neurons.gain
        n = int(np.prod(shape))
        bias = nengo.dists.Choice([0.0]) if pre.const is None else scale * pre.const
        neuron_type = make_neuron_type(layer.neurons, self.settings.spiking,
                                       self.settings.neuron_model, f"layer '{name}'")
        with self.net:
            ens = nengo.Ensemble(n, 1, neuron_type=neuron_type, gain=nengo.dists.Choice([scale]),
                                 bias=bias, label=name)
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
    run = RunSettings(
        spiking=bool(spiking), neuron_model=neuron_model, synapse=synapse, dt=float(dt),
        n_steps=int(n_steps), readout_steps=readout_steps, input_coding=input_coding,
        input_rate_hz=float(input_rate_hz), readout=readout, threshold=float(threshold),
        output_activation=removed if output_activation is None else output_activation,
        seed=seed,
    )
    description = describe(keras_model, run, scale_firing_rates, max_to_avg_pool)
    if isinstance(scale_firing_rates, dict):
        neuron_layers = list(description.neuron_layers)
        unknown = sorted(set(scale_firing_rates) - set(neuron_layers))
        if unknown:
            raise ConfigError(
                f"scale_firing_rates names layer {unknown[0]!r}, which is not a neuron layer of "
                f"model '{keras_model.name}'; allowed: {', '.join(neuron_layers) or 'none'}"
            )
    loihi_net = from_description(description, signed_input=signed_input, pop_type=pop_type,
                                 layout=layout)
    loihi_net.keras_model = keras_model
    return loihi_net


def from_description(description, spiking=None, signed_input=True, pop_type=32, layout=None):
    """Build the Loihi network of a `nengoseg.description.NetworkDescription`.

    Its run settings (synapse, dt, steps, input coding, readout, neuron model) are
    used; ``spiking`` False builds rate neurons (exactness check, reference simulator
    only); ``signed_input``, ``pop_type`` and ``layout`` as in `build_loihi_network`.
    """
    run = description.run
    spiking = run.spiking if spiking is None else bool(spiking)
    _check_options(run.input_coding, run.input_rate_hz, run.dt, run.readout, pop_type,
                   run.synapse)
    settings = LoihiSettings(**{**dataclasses.asdict(run), "spiking": spiking},
                             signed_input=bool(signed_input))
    if layout is None:
        layout = "loihi" if spiking else "nengo"
    builder = _Builder(description, settings, pop_type, layout)
    readout_map, probes = builder.build()
    settings.layer_scales = {name: n.gain for name, n in description.neuron_layers.items()}
    return LoihiNetwork(
        network=builder.net,
        input_node=builder.input_node,
        coder=builder.coder,
        layers=builder.layers,
        connections=builder.connections,
        readout=readout_map,
        output_probes=probes,
        description=description,
        settings=settings,
    )


def from_conversion(source, spiking=None, **options):
    """The Loihi network of a NengoDL conversion, built from its network description.

    ``source``: a `nengoseg.convert.ConvertedNetwork`, a ``(keras_model,
    ConversionSettings)`` pair, or a folder written by
    `nengoseg.convert.save_conversion` (a converted or co-trained SNN; its saved
    description is read, or made from its Keras model and settings when it has none).
    ``options``: ``signed_input``, ``pop_type``, ``layout`` (see `build_loihi_network`).
    """
    from nengoseg.convert import ConvertedNetwork, load_conversion
    from nengoseg.convert.describe import describe_conversion

    if isinstance(source, ConvertedNetwork):
        description = source.description
    elif isinstance(source, (tuple, list)):
        description = describe_conversion(*source)
    elif (Path(source) / DESCRIPTION_FILE).is_file():
        description = load_description(source)
    else:
        description = describe_conversion(*load_conversion(source))
    return from_description(description, spiking=spiking, **options)


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
