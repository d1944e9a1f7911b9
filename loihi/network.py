"""What the Loihi rewrite (`nengoseg.loihi.rewrite`) returns, and what runs with it.

- `LoihiSettings`: how the network is built and run (the conversion's choices
  plus input coding);
- `LoihiLayer`, `LoihiConnection`: one neuron layer (an ``nengo.Ensemble``) and
  one Neurons -> Neurons connection with its transform kind;
- `Readout`: the model output as an affine map of probed layers, applied on the host;
- `LoihiNetwork`: the ``nengo.Network`` with all of the above;
- `InputCoder`: the input Node's output, each image as on/off spike trains.
"""

import dataclasses
from collections import OrderedDict
from typing import Optional

import nengo
import numpy as np
import tensorflow as tf

from nengoseg.description import RunSettings
from nengoseg.errors import DataError
from nengoseg.loihi.limits import MAX_SPIKES_PER_STEP


# ---------------------------------------------------------------- results


@dataclasses.dataclass
class LoihiSettings(RunSettings):
    """How the Loihi network is built and run: the description's run settings
    (`nengoseg.description.RunSettings`: spiking, neuron model, synapse, dt, steps,
    input coding, readout, seed), plus

    signed_input
        Input spikes (`InputCoder`) for negative pixels too, from an "off" population.
    layer_scales
        ``{layer: scale}`` for every neuron layer (the description's gains).

    ``spiking`` False builds ``nengo.RectifiedLinear`` / ``nengo_dl.SoftLIFRate``
    neurons, for the exactness check in the reference simulator only. The synapse
    filters every connection between neurons and the host-side readout.
    """

    synapse: Optional[float] = 0.005
    signed_input: bool = True
    layer_scales: dict = dataclasses.field(default_factory=dict)

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
    description
        The `nengoseg.description.NetworkDescription` it was built from.
    settings
        `LoihiSettings`.
    keras_model
        The prepared Keras model it was described from (logits out), when built from
        one (`nengoseg.loihi.rewrite.build_loihi_network`), else None.
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
    description: object  # nengoseg.description.NetworkDescription
    settings: LoihiSettings
    keras_model: Optional[tf.keras.Model] = None
    block_shapes: dict = dataclasses.field(default_factory=dict)

    @property
    def on_chip_layers(self):
        return [layer for layer in self.layers.values() if layer.on_chip]

    @property
    def input_shape(self):
        return tuple(self.description.input.shape)

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
        self.spikes = None  # (n_steps, size_out) bool of the last `present` (spiking only)

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
            self.spikes = None
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
        self.spikes = spikes
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

