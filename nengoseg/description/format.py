"""The network description: plain data, versioned, validated on load.

A converted spiking network as every backend needs it, with no Keras or Nengo
objects in it:

- ``layers``, in topological order (the input first): each a linear operation
  (`OPS`: ``input``, ``conv2d``, ``conv2d_transpose``, ``dense``, ``avg_pool2d``,
  ``global_avg_pool2d``, ``upsample2d``, ``concatenate``, ``add``, ``reshape``,
  ``affine``) of the layers named in ``inputs``, with its output ``shape`` (no batch
  axis, channels last), its scalar ``params`` (strides, padding, ...) and its arrays
  (kernel, bias, ...) — and, for a layer that became neurons, a `Neurons` record
  applied after the operation;
- ``output``: the layer read out;
- ``run``: how the network is run and read (synapse, dt, steps, input coding,
  readout, threshold, the neuron model, the seed).

Saved as ``network.json`` (everything but arrays) and ``network_weights.npz``
(arrays, keyed ``"<layer>/<name>"``), both written atomically by `save`; `load`
checks every field and names the file, the layer and the key of anything wrong.
"""

import dataclasses
import io
import math
from pathlib import Path
from typing import Optional

import numpy as np

from nengoseg.atomic import atomic_path, read_json, write_json
from nengoseg.errors import DataError

FORMAT_VERSION = 1
DESCRIPTION_FILE = "network.json"
WEIGHTS_FILE = "network_weights.npz"

# op -> (number of inputs (None: 2 or more), required arrays, optional arrays, params)
OPS = {
    "input": (0, (), (), ()),
    "conv2d": (1, ("kernel",), ("bias",), ("strides", "padding")),
    "conv2d_transpose": (1, ("kernel",), ("bias",), ("strides", "padding")),
    "dense": (1, ("kernel",), ("bias",), ()),
    "avg_pool2d": (1, (), (), ("pool_size", "strides", "padding")),
    "global_avg_pool2d": (1, (), (), ()),
    "upsample2d": (1, (), (), ("size",)),
    "concatenate": (None, (), (), ("axis",)),
    "add": (None, (), (), ()),
    "reshape": (1, (), (), ()),
    "affine": (1, ("scale", "shift"), (), ()),
}
PADDINGS = ("same", "valid")
ACTIVATIONS = ("relu", "softlif")


@dataclasses.dataclass
class Neurons:
    """The neurons a layer's output drives: one per output element.

    ``kind`` is a `nengoseg.neuron_kinds` record name; ``activation`` the ANN
    activation it replaces ("relu" or "softlif"); ``gain`` the layer's firing-rate
    scale (input currents are ``gain * x + gain * bias``); ``amplitude`` each spike's
    height times dt (already divided by the gain); ``thresholds`` a multi-threshold
    kind's thresholds in units of its threshold (empty: one threshold);
    ``initial_state`` the state the simulators start from (e.g. ``{"voltage": array}``;
    empty: at rest).
    """

    kind: str
    activation: str
    gain: float
    amplitude: float
    tau_rc: float = 0.02
    tau_ref: float = 0.002
    min_voltage: float = 0.0
    sigma: float = 0.005
    thresholds: tuple = ()
    initial_state: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Layer:
    name: str
    op: str
    inputs: list
    shape: tuple
    params: dict = dataclasses.field(default_factory=dict)
    arrays: dict = dataclasses.field(default_factory=dict)
    neurons: Optional[Neurons] = None


@dataclasses.dataclass
class RunSettings:
    spiking: bool = True
    neuron_model: str = "nengo"
    synapse: Optional[float] = None
    dt: float = 0.001
    n_steps: int = 100
    readout_steps: Optional[int] = None
    input_coding: str = "constant"
    input_rate_hz: float = 1000.0
    readout: str = "segmentation"
    threshold: float = 0.5
    output_activation: str = "linear"
    thresholds: Optional[tuple] = None
    seed: Optional[int] = 0

    def window(self, n_steps=None):
        """Steps averaged by the readout for a run of ``n_steps`` steps (default: the last
        half, or ``readout_steps``)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        if self.readout_steps is None:
            return max(1, n_steps // 2)
        return min(self.readout_steps, n_steps)


@dataclasses.dataclass
class NetworkDescription:
    """A spiking network as plain data (see the module docstring)."""

    name: str
    layers: list
    output: str
    run: RunSettings
    format_version: int = FORMAT_VERSION

    @property
    def by_name(self):
        return {layer.name: layer for layer in self.layers}

    @property
    def input(self):
        return self.layers[0]

    @property
    def neuron_layers(self):
        """``{name: Neurons}`` in topological order."""
        return {layer.name: layer.neurons for layer in self.layers if layer.neurons is not None}

    def neuron_depth(self):
        """The most neuron layers on any path from the input to the output.

        Where every connection leaving neurons delays spikes by a step (on Loihi, and
        with a synapse in Nengo), the output feels the deepest path only after this
        many steps: the least T a run needs before its readout sees the whole network.
        """
        depth = {}
        for layer in self.layers:
            below = max((depth[name] for name in layer.inputs), default=0)
            depth[layer.name] = below + (layer.neurons is not None)
        return depth[self.output]

    def to_dict(self):
        """``(json-able dict, {key: array})``."""
        arrays, layers = {}, []
        for layer in self.layers:
            record = dataclasses.asdict(layer)
            record["shape"] = list(layer.shape)
            record["arrays"] = sorted(layer.arrays)
            for key, value in layer.arrays.items():
                arrays[f"{layer.name}/{key}"] = np.asarray(value)
            if layer.neurons is not None:
                if layer.neurons.min_voltage == -math.inf:  # no floor: null in strict JSON
                    record["neurons"]["min_voltage"] = None
                state = record["neurons"]["initial_state"] = sorted(layer.neurons.initial_state)
                for key in state:
                    arrays[f"{layer.name}/state/{key}"] = layer.neurons.initial_state[key]
            layers.append(record)
        record = {"format_version": self.format_version, "name": self.name, "output": self.output,
                  "run": dataclasses.asdict(self.run), "layers": layers}
        return record, arrays


def save(description, folder):
    """Write ``network.json`` and ``network_weights.npz`` into ``folder``, each atomically."""
    folder = Path(folder)
    record, arrays = description.to_dict()
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        Path(tmp).write_bytes(buffer.getvalue())
    write_json(folder / DESCRIPTION_FILE, record)


def load(folder):
    """Read and check what `save` wrote; DataError naming the file, layer and key."""
    folder = Path(folder)
    path, weights_path = folder / DESCRIPTION_FILE, folder / WEIGHTS_FILE
    if not path.is_file():
        raise DataError(f"{path}: no network description (written by `nengoseg convert`)")
    record = read_json(path, "network description")
    if not weights_path.is_file():
        raise DataError(f"{weights_path}: the weights of {path} are missing")
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as err:  # a truncated or damaged zip: zipfile/numpy errors of all kinds
        raise DataError(f"{weights_path}: cannot read the weights ({type(err).__name__}: "
                        f"{' '.join(str(err).split())[:120]}); redo the conversion") from None
    return from_dict(record, arrays, where=str(path))


def from_dict(record, arrays, where="network description"):
    """A checked `NetworkDescription` from `NetworkDescription.to_dict`'s two parts."""
    check = _Checker(where)
    check.that(isinstance(record, dict), "", "a mapping")
    version = record.get("format_version")
    check.that(version == FORMAT_VERSION, "format_version",
               f"{FORMAT_VERSION} (this nengoseg's format; redo the conversion)", version)
    run = _run_settings(check, record.get("run"))
    layers, known = [], {}
    raw_layers = record.get("layers")
    check.that(isinstance(raw_layers, list) and raw_layers, "layers", "a non-empty list")
    for i, raw in enumerate(raw_layers):
        layer = _layer(check, raw, i, known, arrays)
        known[layer.name] = layer
        layers.append(layer)
    check.that(layers[0].op == "input", "layers[0].op", "'input' (the first layer)",
               layers[0].op)
    output = record.get("output")
    check.that(output in known, "output", "the name of a layer", output)
    name = record.get("name")
    check.that(isinstance(name, str), "name", "a string", name)
    return NetworkDescription(name=name, layers=layers, output=output, run=run)


class _Checker:
    def __init__(self, where):
        self.where = where

    def that(self, ok, key, allowed, value=None):
        if not ok:
            shown = "" if value is None else f" {value!r:.60}"
            raise DataError(f"{self.where}: bad value{shown} for '{key}' (allowed: {allowed})")


def _number(value, low=None, positive=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (low is None or value >= low) and (not positive or value > 0)


def _run_settings(check, raw):
    check.that(isinstance(raw, dict), "run", "a mapping of run settings")
    fields = {f.name for f in dataclasses.fields(RunSettings)}
    unknown = sorted(set(raw) - fields)
    check.that(not unknown, f"run.{unknown[0] if unknown else ''}", ", ".join(sorted(fields)))
    run = RunSettings(**raw)
    check.that(isinstance(run.spiking, bool), "run.spiking", "true or false", run.spiking)
    check.that(run.synapse is None or _number(run.synapse, positive=True), "run.synapse",
               "null or a time constant > 0", run.synapse)
    check.that(_number(run.dt, positive=True), "run.dt", "a number > 0", run.dt)
    for key in ("n_steps", "readout_steps"):
        value = getattr(run, key)
        check.that((value is None and key == "readout_steps")
                   or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
                   f"run.{key}", "an integer >= 1", value)
    check.that(_number(run.input_rate_hz, positive=True), "run.input_rate_hz", "a number > 0",
               run.input_rate_hz)
    check.that(_number(run.threshold), "run.threshold", "a number", run.threshold)
    for key in ("neuron_model", "input_coding", "readout", "output_activation"):
        check.that(isinstance(getattr(run, key), str), f"run.{key}", "a string",
                   getattr(run, key))
    check.that(run.thresholds is None or _thresholds(run.thresholds, empty=False),
               "run.thresholds", "null or a list of numbers > 0, strictly decreasing",
               run.thresholds)
    if run.thresholds is not None:
        run.thresholds = tuple(float(t) for t in run.thresholds)
    return run


def _layer(check, raw, i, known, arrays):
    at = f"layers[{i}]"
    check.that(isinstance(raw, dict), at, "a mapping")
    name = raw.get("name")
    check.that(isinstance(name, str) and name and name not in known and "/" not in name,
               f"{at}.name", "a new layer name without '/'", name)
    at = f"layer '{name}'"
    op = raw.get("op")
    check.that(op in OPS, f"{at}.op", ", ".join(OPS), op)
    n_inputs, required, optional, param_names = OPS[op]
    inputs = raw.get("inputs")
    check.that(isinstance(inputs, list) and all(x in known for x in inputs), f"{at}.inputs",
               "a list of earlier layers' names", inputs)
    check.that(len(inputs) == n_inputs if n_inputs is not None else len(inputs) >= 2,
               f"{at}.inputs", f"{n_inputs if n_inputs is not None else 'two or more'} inputs",
               inputs)
    shape = raw.get("shape")
    check.that(isinstance(shape, list) and shape and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape),
        f"{at}.shape", "a list of integers >= 1", shape)
    params = raw.get("params", {})
    check.that(isinstance(params, dict) and set(params) == set(param_names), f"{at}.params",
               f"the keys {', '.join(param_names) or '(none)'}", params)
    if "padding" in params:
        check.that(params["padding"] in PADDINGS, f"{at}.params.padding", ", ".join(PADDINGS),
                   params["padding"])
    names = raw.get("arrays", [])
    check.that(isinstance(names, list) and set(required) <= set(names) <= set(required + optional),
               f"{at}.arrays", f"{', '.join(required + optional) or '(none)'}", names)
    layer_arrays = {}
    for key in names:
        value = arrays.get(f"{name}/{key}")
        check.that(value is not None and value.dtype.kind == "f" and np.isfinite(value).all(),
                   f"{at}.{key}", "finite floats in the weights file")
        layer_arrays[key] = value
    neurons = raw.get("neurons")
    if neurons is not None:
        neurons = _neurons(check, neurons, at, name, arrays, int(np.prod(shape)))
    return Layer(name=name, op=op, inputs=list(inputs), shape=tuple(shape), params=params,
                 arrays=layer_arrays, neurons=neurons)


def _neurons(check, raw, at, name, arrays, n):
    from nengoseg import neuron_kinds

    check.that(isinstance(raw, dict), f"{at}.neurons", "a mapping")
    fields = {f.name for f in dataclasses.fields(Neurons)}
    check.that(set(raw) <= fields and {"kind", "activation", "gain", "amplitude"} <= set(raw),
               f"{at}.neurons", ", ".join(sorted(fields)), sorted(raw))
    names = [k.name for k in neuron_kinds.kinds()]
    check.that(raw["kind"] in names, f"{at}.neurons.kind", ", ".join(names), raw["kind"])
    check.that(raw["activation"] in ACTIVATIONS, f"{at}.neurons.activation",
               ", ".join(ACTIVATIONS), raw["activation"])
    for key in ("gain", "amplitude", "tau_rc", "tau_ref", "sigma"):
        check.that(_number(raw.get(key, 1.0), positive=True), f"{at}.neurons.{key}",
                   "a number > 0", raw.get(key))
    min_voltage = raw.get("min_voltage", 0.0)
    min_voltage = -math.inf if min_voltage is None else min_voltage
    check.that(_number(min_voltage) and min_voltage <= 0 or min_voltage == -math.inf,
               f"{at}.neurons.min_voltage", "a number <= 0, or null (no floor)", min_voltage)
    thresholds = raw.get("thresholds", [])
    check.that(_thresholds(thresholds, empty=True), f"{at}.neurons.thresholds",
               "a list of numbers > 0, strictly decreasing (empty: one threshold)", thresholds)
    state = {}
    for key in raw.get("initial_state", []):
        value = arrays.get(f"{name}/state/{key}")
        check.that(value is not None and value.shape == (n,) and np.isfinite(value).all(),
                   f"{at}.neurons.initial_state.{key}", f"{n} finite values in the weights file")
        state[key] = value.astype(np.float32)
    return Neurons(**{**raw, "min_voltage": float(min_voltage), "initial_state": state,
                      "thresholds": tuple(float(t) for t in thresholds)})


def _thresholds(values, empty):
    """Numbers > 0, strictly decreasing (`nengoseg.neuron_kinds.check_thresholds`), or an
    empty list where ``empty``."""
    from nengoseg import neuron_kinds

    if empty and isinstance(values, (list, tuple)) and not values:
        return True
    try:
        neuron_kinds.check_thresholds(values)
    except ValueError:
        return False
    return True
