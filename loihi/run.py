"""Run a `LoihiNetwork` on nengo-loihi: the emulator (target "sim") or the board ("loihi").

Target: "sim" is nengo-loihi's bit-level emulator of the chip (discretized weights,
integer voltages), always available. "loihi" needs Intel's NxSDK; asking for it
without NxSDK raises `LoihiUnavailable` instead of silently emulating, so a run
never claims the board when it used the emulator.

Per image: nengo-loihi's Simulator cannot be reset, so on the emulator the chip's
neuron state (voltages, currents, refractory counters, queued input spikes) is zeroed
between images, as NengoDL starts every image from rest; on the board the image
is followed by ``settle_steps`` steps of blank input instead. ``batched=True`` runs
the emulator's model for many images at once instead (`nengoseg.loihi.batched`: the
same spikes, faster). Spike counts come
from the emulator's per-compartment counters (no probe on every neuron, which
would send every spike off chip); the board reports only the readout layers.
"""

import dataclasses
import time
from typing import Optional

import nengo
import nengo_loihi
import numpy as np
from tqdm.auto import tqdm

from nengoseg.errors import DataError
from nengoseg.loihi import nengo_loihi_compat as compat
from nengoseg.loihi.batched import batched_emulator, default_chunk, emulate
from nengoseg.loihi.build import block_neurons
from nengoseg.loihi.errors import LoihiUnavailable

TARGETS = ("sim", "loihi")


def nxsdk_available():
    """Whether NxSDK (the board's SDK) imports, as nengo-loihi sees it."""
    from nengo_loihi.hardware.nxsdk_shim import HAS_NXSDK

    return bool(HAS_NXSDK)


def check_target(target):
    """Return ``target`` if it can run here; the board without NxSDK is an error."""
    if target not in TARGETS:
        from nengoseg.errors import ConfigError

        raise ConfigError(f"loihi.target={target!r} is not allowed; allowed: 'sim' (the "
                          "nengo-loihi emulator) or 'loihi' (the board, needs NxSDK)")
    if target == "loihi" and not nxsdk_available():
        raise LoihiUnavailable(
            "target 'loihi' (the board) needs Intel's NxSDK, which cannot be imported here; "
            "install NxSDK on a Loihi host, or use target 'sim' (the nengo-loihi emulator: "
            "`--target sim` or loihi.target: sim)"
        )
    return target


@dataclasses.dataclass
class LoihiResult:
    """One run over a set of images (``outputs`` etc. as in `nengoseg.convert.SNNResult`).

    spike_counts: ``{layer: (n_neurons,) spikes summed over images}`` (emulator only);
    firing_rates_hz: mean rate per layer; steps_per_second: images x simulated steps per
    wall-clock second (the build not included; a batched run counts every image's
    steps); target: "sim" or "loihi".
    """

    outputs: np.ndarray
    readout: np.ndarray
    masks: Optional[np.ndarray]
    firing_rates_hz: dict
    spike_counts: dict
    input_counts: dict
    n_steps: int
    n_images: int
    steps_per_second: float
    build_seconds: float
    target: str


def make_simulator(loihi_net, target="sim", fast_routing=True, fast_build=True):
    """A nengo-loihi Simulator for ``loihi_net`` (block shapes already chosen).

    ``fast_routing``: on the emulator, route spikes with sparse matrix products
    (`nengoseg.loihi.nengo_loihi_compat`, the same integer sums as nengo-loihi's
    per-spike loop, much faster); False keeps nengo-loihi's own loop.
    ``fast_build``: split and validate with array operations (the same
    model as nengo-loihi's build, faster).
    """
    check_target(target)
    s = loihi_net.settings
    with compat.fast_building(fast_build):
        sim = nengo_loihi.Simulator(loihi_net.network, dt=s.dt, seed=s.seed, target=target)
    emulator = compat.emulator_of(sim)
    if fast_routing and emulator is not None:
        compat.vectorise_synapses(emulator)
    return sim


def run_loihi(loihi_net, x, n_steps=None, target="sim", settle_steps=50, progress=True,
              simulator=None, fast_routing=True, batched=False, chunk_images=None):
    """Present each image of ``x`` for ``n_steps`` steps and read the output.

    Returns a `LoihiResult`. ``simulator``: reuse an open one made by
    `make_simulator` (it is not closed here); ``fast_routing``: see `make_simulator`;
    ``batched``: on the emulator, run ``chunk_images`` images at a time through
    `nengoseg.loihi.batched` (the same model and the same spikes as nengo-loihi's
    emulator, much faster; None: a chunk size that keeps its arrays near 1 GiB); it
    raises `BatchedEmulatorUnsupported` for what it cannot reproduce. False: nengo-loihi's
    own emulator, one image after another (the reference). The board always runs
    one image after another. ``progress``: a tqdm bar of the steps run (images x
    ``n_steps``, settling not counted), with the time left, on stderr where stderr
    is a terminal.
    """
    s = loihi_net.settings
    n_steps = s.n_steps if n_steps is None else int(n_steps)
    x = np.asarray(x, np.float32)
    if x.shape[1:] != loihi_net.input_shape or len(x) == 0:
        raise DataError(f"inputs of shape {x.shape} do not fit the network, which takes "
                        f"(n, {', '.join(map(str, loihi_net.input_shape))}) with n >= 1")
    if chunk_images is not None and int(chunk_images) < 1:
        raise DataError(f"chunk_images={chunk_images!r}: the batched emulator needs at least "
                        "1 image per chunk (or None: its own choice)")
    window = s.window(n_steps)
    rng = np.random.default_rng(s.seed)
    start = time.time()
    sim = simulator or make_simulator(loihi_net, target, fast_routing and not batched)
    emulator = compat.emulator_of(sim)
    engine = None
    try:
        if batched and emulator is not None:
            engine = batched_emulator(sim, loihi_net)
            if chunk_images is None:
                chunk_images = default_chunk(loihi_net, engine.n, n_steps)
    except BaseException:
        if simulator is None:
            sim.close()
        raise
    build_seconds = time.time() - start if simulator is None else 0.0
    layers = {layer.name: layer for layer in loihi_net.on_chip_layers}
    counts = {name: np.zeros(layer.n_neurons) for name, layer in layers.items()}
    inputs = [layer.name for layer in loihi_net.layers.values() if not layer.on_chip]
    input_counts = {name: np.zeros(loihi_net.coder.n) for name in inputs}
    outputs, run_seconds = [], 0.0
    bar = tqdm(total=len(x) * n_steps, desc=f"Loihi ({sim.target})", unit="step", leave=False,
               disable=None if progress else True, dynamic_ncols=True)
    try:
        if engine is not None:
            for probed, spikes, coded, seconds in emulate(engine, loihi_net, x, n_steps, rng,
                                                          int(chunk_images), bar.update):
                for i, image_counts in enumerate(coded):
                    outputs.append(_read(loihi_net, probed(i), window))
                    _add_inputs(input_counts, image_counts, loihi_net.coder.n)
                _add_counts(counts, sim.model, emulator, spikes, layers)
                run_seconds += seconds
        else:
            run_seconds = _run_each(loihi_net, x, n_steps, sim, emulator, settle_steps, rng,
                                    (outputs, counts, input_counts, layers, window), bar)
    finally:
        bar.close()
        if simulator is None:
            sim.close()
    outputs = np.stack(outputs).astype(np.float32)
    rates = {}
    if emulator is not None:
        seconds = len(x) * n_steps * s.dt
        rates = {name: float(c.sum() / (c.size * seconds)) for name, c in counts.items()}
    from nengoseg.convert.simulate import read_out

    result = read_out(outputs, s, rates)
    return LoihiResult(
        outputs=result.outputs, readout=result.readout, masks=result.masks,
        firing_rates_hz=rates, spike_counts=counts if emulator is not None else {},
        input_counts=input_counts,
        n_steps=n_steps, n_images=len(x),
        steps_per_second=len(x) * n_steps / max(run_seconds, 1e-9),
        build_seconds=build_seconds, target=sim.target,
    )


def _run_each(loihi_net, x, n_steps, sim, emulator, settle_steps, rng, into, bar):
    """nengo-loihi's Simulator, one image after another; returns the seconds stepping."""
    outputs, counts, input_counts, layers, window = into
    run_seconds = 0.0
    for i, image in enumerate(x):
        if emulator is not None:
            compat.rest(emulator)
            before = compat.spike_counts(emulator)
        elif i > 0:
            loihi_net.coder.present(np.zeros_like(image), settle_steps, sim.n_steps, rng)
            sim.run_steps(settle_steps)
        sim.clear_probes()
        loihi_net.coder.present(image, n_steps, sim.n_steps, rng)
        _add_inputs(input_counts, loihi_net.coder.counts, loihi_net.coder.n)
        t0 = time.time()
        sim.run_steps(n_steps)
        run_seconds += time.time() - t0
        outputs.append(_read(loihi_net, {name: sim.data[probe] for name, probe
                                         in loihi_net.output_probes.items()}, window))
        if emulator is not None:
            spikes = compat.spike_counts(emulator) - before
            _add_counts(counts, sim.model, emulator, spikes, layers)
        bar.update(n_steps)
    return run_seconds


def _add_inputs(input_counts, coded, n):
    """Add one image's input coder counts to ``{relay layer: (n,)}``, relays in order."""
    for k, name in enumerate(input_counts):
        input_counts[name] += coded[k * n : (k + 1) * n]


def _read(loihi_net, probed, window):
    """The readout of one image: ``{layer: (n_steps, n)}`` probed spikes, host-side
    synapse, window average."""
    s = loihi_net.settings
    values = {}
    for name, data in probed.items():
        data = np.asarray(data, np.float64)
        if s.synapse is not None:
            data = nengo.Lowpass(s.synapse).filt(data, dt=s.dt, y0=0)
        values[name] = data[-window:].mean(axis=0)
    return loihi_net.readout(values)


def _add_counts(counts, model, emulator, spikes, layers):
    """Add per-compartment ``spikes`` to ``{layer: (n_neurons,)}``."""
    for name, layer in layers.items():
        found = model.objs[layer.ensemble]["out"]
        for block in found if isinstance(found, (list, tuple)) else [found]:
            where = compat.block_slice(emulator, block)
            counts[name][block_neurons(model, block)] += spikes[where]
