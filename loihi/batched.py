"""nengo-loihi's emulator for many images at once: the same model, the same integers.

`run_loihi` (`nengoseg.loihi.run`) with ``batched=False`` runs one image after another
through nengo-loihi 1.1's ``EmulatorInterface``, putting the chip back at rest before
each. `BatchedEmulator` runs B images side by side through the SAME built model: it
reads the emulator's own parameter arrays (decays, thresholds, biases, refractory
delays, voltage limits), synapses, axons, spike inputs and probes
(`nengoseg.loihi.nengo_loihi_compat.emulator_parts`) and keeps the state (input,
current, voltage, refractory counter, spiked) as ``(B, n_compartments)`` arrays.

Why it is exact (spike for spike, bit for bit), step by step as
``EmulatorInterface.step``:

- input: the input coder's spikes (`nengoseg.loihi.network.InputCoder`); nengo-loihi
  sends the host relay neurons' nonzero outputs, which are exactly the coder's spikes
  (relay: rectified linear, gain 1, bias 0, checked), and they reach the chip one
  step later, so step s (from 1) gets the coder's spikes of step s - 1 and the first
  step none, as an emulator put at rest (`compat.rest`, which drops queued input
  spikes) gets them (the coder's last step never reaches the chip, in both);
- routing: spikes are counted per synapse row (``axon * n_pops + atom``, as
  ``Axon.map_spikes`` maps them, `fast_synapses.axon_rows`) and the input is
  ``counts @ weights`` with the per-synapse CSR matrices of `fast_synapses` (the
  emulator's own integer weights): integer sums do not depend on the order, and the
  final int32 cast wraps as the emulator's int32 ``+=`` does;
- compartments: the emulator's update on ``(B, n)`` arrays with nengo-loihi's own
  ``decay_int`` and ``overflow_signed`` (element-wise, so the batch changes nothing),
  overflow warned (or raised, for a strict emulator) with its messages;
- probes: the probed state recorded every step and weighted per image by the probe's
  own ``LoihiProbe.weight_outputs``.

Anything this does not reproduce raises `BatchedEmulatorUnsupported` naming it
(learning, noise, float/undiscretised models, delays, host-side simulation, filtered
or host probes, inputs not from the network's input relays, another nengo-loihi);
``tests/test_loihi_batched.py`` checks the identity against nengo-loihi's emulator.
"""

import time
import warnings
import weakref

import nengo
import numpy as np
import scipy.sparse
from nengo.exceptions import SimulationError

from nengoseg.loihi import nengo_loihi_compat as compat
from nengoseg.loihi.errors import BatchedEmulatorUnsupported

PROBE_KEYS = ("spiked", "voltage", "current")
MEMORY_BUDGET = 1 << 30  # bytes of batch state and records the default chunk aims at
MAX_CHUNK = 32

_CACHE = weakref.WeakKeyDictionary()  # Simulator -> (LoihiNetwork, BatchedEmulator)


def unsupported(what):
    """`BatchedEmulatorUnsupported` for ``what``, saying which path still runs it."""
    return BatchedEmulatorUnsupported(
        f"the batched Loihi emulator does not reproduce {what}; nengo-loihi's own "
        "emulator still runs it, one image at a time (loihi.emulator: nengo-loihi, or "
        "run_loihi(..., batched=False))")


def _check(parts):
    """Raise `BatchedEmulatorUnsupported` for what `BatchedEmulator` cannot reproduce."""
    c = parts.compartment
    refused = [
        (parts.dtype != np.int32, "floating-point (undiscretised) models (target 'simreal')"),
        (parts.learning, "learning synapses (PES) or synaptic traces"),
        (np.any(parts.noise_enabled),
         f"compartment noise (enabled on {int(np.sum(parts.noise_enabled))} compartments)"),
        (parts.input_delay != 1, "synaptic delays"),
        (np.any(c["scale_u"] != 1) or np.any(c["scale_v"] != 1), "scaled compartment inputs"),
        (set(parts.host_sims) - {"host_pre"},
         "a host simulation stepped with the chip (host objects fed by the chip)"),
        (any(relay is None for _, relay, _ in parts.spike_inputs),
         "chip inputs that are not spikes of host neurons"),
        (parts.permanent_inputs, "precomputed (permanent) input spikes"),
        (any(p is None for p in parts.probes.values()), "probes read through the host"),
        (any(p is not None and (p.synapse is not None or p.key not in PROBE_KEYS)
             for p in parts.probes.values()), "filtered chip probes or probes of other state"),
    ]
    for refuse, what in refused:
        if refuse:
            raise unsupported(what)


class BatchedEmulator:
    """The emulator of one built model, for B images at a time (see the module).

    ``parts``: `nengoseg.loihi.nengo_loihi_compat.EmulatorParts`; ``relays``:
    ``{host ensemble: offset of its neurons in the input spikes}``; ``n_inputs``: the
    length of one step's input spikes.
    """

    def __init__(self, parts, relays, n_inputs):
        _check(parts)
        self.n = parts.n_compartments
        self.params = parts.compartment
        self.strict = parts.strict
        self.probes = parts.probes
        self.probe_slices = parts.probe_slices
        offsets, self.weights = _weights(parts)
        chip = [(axon, np.arange(where.start, where.stop)) for axon, where in parts.axons]
        self.from_chip = _routes(chip, offsets, self.weights.shape[0], self.n)
        inputs = []
        for spike_input, relay, pre_slice in parts.spike_inputs:
            if relay not in relays:
                raise unsupported(f"chip inputs from host ensemble {relay} (not an input relay "
                                  "of the network)")
            positions = relays[relay] + np.arange(relay.n_neurons)[pre_slice]
            inputs += [(axon, positions) for axon in spike_input.axons]
        self.from_input = _routes(inputs, offsets, self.weights.shape[0], n_inputs)
        self.n_inputs = n_inputs

    def run(self, spikes, on_step=None):
        """Run each image's input spikes ``(B, n_steps, n_inputs)`` (bool) from rest.

        Returns ``(probed, spike_counts)``: ``probed(i)`` is ``{nengo probe: (n_steps,
        size)}`` for image i, as nengo-loihi's Simulator returns them (made when asked,
        one image at a time), and the spikes per compartment summed over the images.
        ``on_step(B)`` is called after every step.
        """
        spikes = np.asarray(spikes, bool)
        n_images, n_steps = spikes.shape[:2]
        shape = (n_images, self.n)
        state = {"current": np.zeros(shape, np.int32), "voltage": np.zeros(shape, np.int32),
                 "spiked": np.zeros(shape, bool)}
        ref_count = np.zeros(shape, np.int32)
        total = np.zeros(self.n, np.int64)
        records = {p: [[] for _ in self.probe_slices[p]] for p in set(self.probes.values())}
        for step in range(n_steps):
            counts = _sparse(state["spiked"]) @ self.from_chip
            if step >= 1:  # input spikes take one step to arrive
                counts = counts + _sparse(spikes[:, step - 1]) @ self.from_input
            q0 = (counts @ self.weights).toarray().astype(np.int32)  # wraps as int32 +=
            self._update(q0, state, ref_count)
            total += state["spiked"].sum(axis=0)
            for probe, per_block in records.items():
                target = state[probe.key]
                for k, where in enumerate(self.probe_slices[probe]):
                    per_block[k].append(target[:, where][:, probe.slice[k]].copy())
            if on_step is not None:
                on_step(n_images)
        return self._probed(records), total

    def _update(self, q0, state, ref_count):
        """``CompartmentState.update`` on ``(B, n)`` arrays (noise is refused, so none)."""
        p = self.params
        current, voltage, spiked = state["current"], state["voltage"], state["spiked"]
        self._overflow(q0, compat.Q_BITS, "q0")
        current[:] = compat.decay_int(current, p["decay_u"], offset=1) + q0
        self._overflow(current, compat.U_BITS, "current")
        u2 = current + p["bias"]
        self._overflow(u2, compat.U_BITS, "u2")
        voltage[:] = compat.decay_int(voltage, p["decay_v"]) + u2
        np.clip(voltage, p["vmin"], p["vmax"], out=voltage)
        voltage[ref_count > 0] = 0
        spiked[:] = voltage > p["vth"]
        voltage[spiked] = 0
        np.copyto(ref_count, np.broadcast_to(p["ref"], ref_count.shape), where=spiked)
        np.clip(ref_count - 1, 0, None, out=ref_count)

    def _overflow(self, x, bits, name):
        _, overflowed = compat.overflow_signed(x, bits, out=x)
        if np.any(overflowed):
            message = f"Overflow in {name}"
            if self.strict:
                raise SimulationError(message)
            warnings.warn(message)

    def _probed(self, records):
        per_block = {p: [np.stack(steps, axis=1) for steps in blocks]
                     for p, blocks in records.items()}
        records.clear()

        def probed(i):
            return {nengo_probe: probe.weight_outputs([np.ascontiguousarray(b[i])
                                                       for b in per_block[probe]])
                    for nengo_probe, probe in self.probes.items()}

        return probed


def _sparse(spikes):
    return scipy.sparse.csr_matrix(spikes).astype(np.int64)


def _weights(parts):
    """``({synapse: (first row, n_pops)}, CSR (rows of all synapses, n_compartments))``:
    the synapses' matrices stacked (rows) and shifted to their blocks' compartments
    (columns), their arrays joined without a COO detour (memory: the weights once more)."""
    offsets, indptr, indices, values, total, stored = {}, [np.zeros(1, np.int64)], [], [], 0, 0
    for synapse, where in parts.synapses:
        found = parts.routing.get(synapse)
        n = where.stop - where.start
        matrix, n_pops = found if found else compat.synapse_matrix(synapse, n)
        if not np.issubdtype(matrix.dtype, np.integer):
            raise unsupported("floating-point synapse weights")
        matrix = matrix.tocsr()
        indptr.append(matrix.indptr[1:].astype(np.int64) + stored)
        indices.append(matrix.indices.astype(np.int64) + where.start)
        values.append(matrix.data.astype(np.int64, copy=False))
        offsets[synapse] = (total, n_pops)
        total += matrix.shape[0]
        stored += matrix.nnz
    matrix = scipy.sparse.csr_matrix(
        (_joined(values), _joined(indices), np.concatenate(indptr)),
        shape=(total, parts.n_compartments))
    return offsets, matrix


def _routes(sources, offsets, n_rows, n_sources):
    """CSR ``(n_sources, n_rows)``: 1 where a source's spike reaches a synapse row.

    ``sources``: ``[(axon, position of each of its source compartments)]``."""
    rows, cols = [], []
    for axon, positions in sources:
        first, n_pops = offsets[axon.target]
        used, reached = compat.axon_rows(axon, np.arange(len(positions)), n_pops)
        rows.append(np.asarray(positions, np.int64)[used])
        cols.append(reached + first)
    return _csr(rows, cols, [np.ones(len(r), np.int64) for r in rows], (n_sources, n_rows))


def _joined(parts):
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _csr(rows, cols, values, shape):
    return scipy.sparse.csr_matrix((_joined(values), (_joined(rows), _joined(cols))),
                                   shape=shape)


def batched_emulator(sim, loihi_net):
    """The `BatchedEmulator` of ``sim`` (a nengo-loihi Simulator of ``loihi_net``),
    made once per simulator; `BatchedEmulatorUnsupported` where it cannot be exact."""
    cached = _CACHE.get(sim)
    if cached is not None and cached[0] is loihi_net:
        return cached[1]
    if compat.emulator_of(sim) is None:
        raise unsupported("the board (target 'loihi')")
    coder = loihi_net.coder
    if not coder.spiking:
        raise unsupported("rate (non-spiking) input")
    parts = compat.emulator_parts(sim, list(loihi_net.output_probes.values()))
    if parts is None:
        raise unsupported(f"another nengo-loihi version ({compat.version_problem()})")
    relay_layers = [layer for layer in loihi_net.layers.values() if not layer.on_chip]
    if not all(_spikes_pass(layer.ensemble) for layer in relay_layers):
        raise unsupported("input relays that do not pass the coder's spikes unchanged")
    relays = {layer.ensemble: k * coder.n for k, layer in enumerate(relay_layers)}
    emulator = BatchedEmulator(parts, relays, coder.size_out)
    _CACHE[sim] = (loihi_net, emulator)
    return emulator


def _spikes_pass(ensemble):
    """Whether a relay's outputs are nonzero exactly where its input (the coder's
    spikes, >= 0) is: a rectified linear neuron with gain 1 and bias 0 (the rewrite's)."""
    def only(dist, value):
        return isinstance(dist, nengo.dists.Choice) and np.all(dist.options == value)

    return (type(ensemble.neuron_type) is nengo.RectifiedLinear
            and only(ensemble.gain, 1.0) and only(ensemble.bias, 0.0))


def default_chunk(loihi_net, n_compartments, n_steps, budget=MEMORY_BUDGET):
    """Images per chunk so the batch's state and records stay within ``budget`` bytes:
    about 40 bytes per compartment and 2 bytes per probed neuron or input per step and
    image; at least 1, at most `MAX_CHUNK`."""
    probed = sum(loihi_net.layers[name].n_neurons for name in loihi_net.output_probes)
    per_image = 40 * n_compartments + 2 * n_steps * (probed + loihi_net.coder.size_out)
    return int(np.clip(budget // max(per_image, 1), 1, MAX_CHUNK))


def emulate(emulator, loihi_net, x, n_steps, rng, chunk_images, on_step=None):
    """Run the images ``x`` through ``emulator`` ``chunk_images`` at a time.

    Yields one ``(probed, spike_counts, input_counts, seconds)`` per chunk:
    ``probed(i)``, ``{layer: (n_steps, n) float64}`` of the network's output probes for
    the chunk's image i, the spikes per compartment over the chunk, the input coder's
    counts per image, and the seconds spent stepping. Input spikes are drawn image by
    image in order from ``rng``, as the one-image-at-a-time path draws them.
    """
    coder = loihi_net.coder
    for first in range(0, len(x), chunk_images):
        images = x[first:first + chunk_images]
        spikes = np.zeros((len(images), n_steps, coder.size_out), bool)
        input_counts = []
        for i, image in enumerate(images):
            coder.present(image, n_steps, 0, rng)
            spikes[i] = coder.spikes
            input_counts.append(coder.counts.copy())
        started = time.time()
        probed, counts = emulator.run(spikes, on_step)
        seconds = time.time() - started

        def named(i, probed=probed):
            found = probed(i)
            return {name: found[probe] for name, probe in loihi_net.output_probes.items()}

        yield named, counts, input_counts, seconds
