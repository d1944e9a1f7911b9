"""Everything nengoseg takes from nengo-loihi's internals, in one place.

nengoseg replaces or reads these parts of nengo-loihi 1.1, none of them public API:

- **vectorised build** (`nengoseg.loihi.fast_build`): ``split_blocks.split_synapse``,
  ``split_blocks.split_axon`` and ``validate.validate_axon`` are swapped for array
  versions during a build (`fast_building`); the block-shape search calls the
  vectorised ``split_synapse`` directly (`split_synapse`);
- **vectorised spike routing** (`nengoseg.loihi.fast_synapses`): the emulator's
  ``SynapseState.inject_current`` / ``update_input`` become sparse products
  (`vectorise_synapses`);
- **private simulator attributes**: the emulator of a Simulator
  (``sim.sims["emulator"]``, `emulator_of`), its compartment state (put back at rest
  between images, `rest`), its per-compartment spike counters (`spike_counts`) and
  where a block's compartments lie in them (`block_slice`);
- **the batched emulator** (`nengoseg.loihi.batched`): the emulator's parameter
  arrays, synapses, axons, spike inputs (and the host ensembles feeding them) and
  probes (`emulator_parts`), and nengo-loihi's integer decay and overflow functions.

Each replacement was checked against nengo-loihi's own code at the pinned version:
``tests/test_loihi_fast_build.py`` (the split model identical to nengo-loihi's, bad
atoms refused alike), ``tests/test_loihi_rewrite.py`` (the emulator's outputs with
and without vectorised routing identical), ``tests/test_loihi_batched.py`` (the batched
emulator's outputs and per-neuron spike counts identical to the emulator's). With
another nengo-loihi version the replacements are switched off (nengo-loihi's own,
slower code runs; `emulator_parts` gives None, so the batched emulator refuses) and
`version_problem` says what to do; the attribute readers fail with that message.
"""

import contextlib
import dataclasses
import warnings

import nengo
import nengo_loihi
from nengo_loihi.builder import discretize

from nengoseg.loihi import fast_build, fast_synapses

PINNED = "1.1.0"


def version_problem(installed=None):
    """None at the pinned nengo-loihi, else what is wrong and what to do."""
    installed = nengo_loihi.__version__ if installed is None else installed
    if installed == PINNED:
        return None
    return (
        f"nengoseg's vectorised nengo-loihi build and spike routing, and its readers of the "
        f"emulator's private state, were written for nengo-loihi {PINNED}, but "
        f"{installed} is installed; nengoseg uses nengo-loihi's own (slower) code instead. "
        f"Install the pinned version (`pip install -c constraints.txt nengo-loihi=={PINNED}`, "
        "or `bash scripts/setup.sh`) to get the fast paths back"
    )


def _fast_paths(installed=None):
    problem = version_problem(installed)
    if problem is not None:
        warnings.warn(problem)
    return problem is None


@contextlib.contextmanager
def fast_building(enabled=True):
    """Within the block, nengo-loihi's builds split and validate with array operations
    (at the pinned nengo-loihi; otherwise its own code runs, with a warning)."""
    with fast_build.fast_building(enabled and _fast_paths()):
        yield


def split_synapse(old_block, old_synapse, new_blocks, validate):
    """nengo-loihi's ``split_blocks.split_synapse``, vectorised (the pinned version's)."""
    if not _fast_paths():
        from nengo_loihi.builder import split_blocks

        return split_blocks.split_synapse(old_block, old_synapse, new_blocks, validate)
    return fast_build.split_synapse(old_block, old_synapse, new_blocks, validate=validate)


def vectorise_synapses(emulator):
    """Route ``emulator``'s spikes with sparse products; False when it keeps its own
    routing (a learning synapse, or another nengo-loihi version)."""
    return _fast_paths() and fast_synapses.vectorise_synapses(emulator)


def _attribute(read, what):
    try:
        return read()
    except (AttributeError, KeyError) as err:
        problem = version_problem() or f"nengo-loihi {PINNED} changed?"
        raise RuntimeError(f"cannot read {what} of nengo-loihi's emulator ({err}): "
                           f"{problem}") from err


def emulator_of(sim):
    """The ``EmulatorInterface`` of a ``nengo_loihi.Simulator``, or None on the board."""
    return _attribute(lambda: sim.sims.get("emulator"), "the emulator")


def rest(emulator):
    """Put every emulated compartment back at rest (state only; parameters untouched),
    and drop the input spikes still waiting to reach the chip.

    Input spikes arrive one step late (the host's spikes of step t reach the chip at
    step t + 1), so after an image its last step's input spikes are still queued in
    the ``SpikeInput``s; left there they would reach the next image's first step."""
    c = _attribute(lambda: emulator.compartment, "the compartment state")
    for array in (c.input, c.current, c.voltage, c.ref_count):
        array[...] = 0
    c.spiked[...] = False
    for spike_input in _attribute(lambda: emulator.inputs, "the spike inputs"):
        pending = spike_input.spikes
        for t in [t for t in pending if t not in spike_input.permanent]:
            del pending[t]


def spike_counts(emulator):
    """A copy of the emulator's spike count per compartment (all blocks, one array)."""
    return _attribute(lambda: emulator.compartment.spike_count.copy(), "the spike counters")


def block_slice(emulator, block):
    """Where ``block``'s compartments lie in `spike_counts`."""
    return _attribute(lambda: emulator.block_info.slices[block], "a block's compartments")


# ---------------------------------------------------------------- the batched emulator


@dataclasses.dataclass
class EmulatorParts:
    """What `nengoseg.loihi.batched` reads of a built nengo-loihi Simulator: the
    emulator's own arrays and objects (shared, not copied), nothing recomputed.

    compartment: ``{name: (n_compartments,) array}`` of the ``CompartmentState``
    parameters (decay_u, decay_v, scale_u, scale_v, vth, vmin, vmax, bias, ref);
    noise_enabled: per compartment; input_delay: rows of ``CompartmentState.input``;
    synapses / axons: ``[(Synapse or Axon, slice of its block's compartments)]``;
    routing: ``{synapse: (CSR matrix, n_pops)}`` already made by `vectorise_synapses`;
    spike_inputs: ``[(SpikeInput, relay ensemble, pre slice)]``, the host ensemble whose
    neurons' spikes each input carries; permanent_inputs: whether an input holds spikes
    fixed at build time; probes: ``{nengo probe: LoihiProbe or None}``
    (None: not an emulator probe); probe_slices: ``{LoihiProbe: [block slice]}``;
    learning: whether any synapse learns or PES errors are sent; host_sims: the
    Simulator's other simulators; strict: the emulator raises on overflow.
    """

    dtype: object
    n_compartments: int
    compartment: dict
    noise_enabled: object
    input_delay: int
    synapses: list
    axons: list
    routing: dict
    spike_inputs: list
    permanent_inputs: bool
    probes: dict
    probe_slices: dict
    learning: bool
    host_sims: tuple
    strict: bool


def emulator_parts(sim, nengo_probes):
    """`EmulatorParts` of ``sim`` (a nengo-loihi Simulator on the emulator) for reading
    ``nengo_probes``; None where nengo-loihi is not the pinned version."""
    if version_problem() is not None:
        return None
    return _attribute(lambda: _parts(sim, nengo_probes), "the emulator's state")


def _parts(sim, nengo_probes):
    emulator, model = sim.sims["emulator"], sim.model
    c, state = emulator.compartment, emulator.synapses
    names = ("decay_u", "decay_v", "scale_u", "scale_v", "vth", "vmin", "vmax", "bias", "ref")
    routing = getattr(state, "vectorised", None)
    senders = {}
    for host in (model.host_pre, model.host):
        for obj in host.params:
            if isinstance(obj, nengo.Connection) and obj.post_obj in model.host2chip_senders:
                senders[obj.post_obj] = obj
    inputs = []
    for send, receive in model.host2chip_senders.items():
        conn = senders.get(send)
        relay = getattr(conn.pre_obj, "ensemble", None) if conn is not None else None
        inputs.append((model.spike_targets[receive], relay,
                       conn.pre_slice if conn is not None else None))
    known = {id(p) for p in emulator.probes.probes}
    probes = {}
    for probe in nengo_probes:
        found = model.objs[probe]["out"] if probe in model.objs else None
        chip = probe in model.chip2host_params or found is None or id(found) not in known
        probes[probe] = None if chip else found
    return EmulatorParts(
        dtype=emulator.block_info.dtype, n_compartments=emulator.block_info.n_compartments,
        compartment={name: getattr(c, name) for name in names},
        noise_enabled=c.noise.enabled, input_delay=c.input.shape[0],
        synapses=list(state.items()), axons=list(emulator.axons.items()),
        routing={} if routing is None else {s: (routing.matrices[s], routing.n_pops[s])
                                            for s in routing.matrices},
        spike_inputs=inputs, permanent_inputs=any(i.permanent for i in emulator.inputs),
        probes=probes,
        probe_slices={p: list(blocks.values()) for p, blocks in emulator.probes.probes.items()},
        learning=bool(state.traces or state.pes_errors or model.host2chip_pes_senders
                      or any(s.learning for s, _ in state.items())),
        host_sims=tuple(name for name in sim.sims if name != "emulator"),
        strict=bool(emulator.strict),
    )


def overflow_signed(x, bits, out):
    """nengo-loihi's ``discretize.overflow_signed`` (wrap to ``bits`` + sign)."""
    return discretize.overflow_signed(x, bits=bits, out=out)


def decay_int(x, decay, offset=0):
    """nengo-loihi's ``discretize.decay_int`` (the chip's integer decay)."""
    return discretize.decay_int(x, decay, offset=offset)


Q_BITS, U_BITS = discretize.Q_BITS, discretize.U_BITS
# the routing pieces the batched emulator shares with `vectorise_synapses`
synapse_matrix, axon_rows = fast_synapses.synapse_matrix, fast_synapses.axon_rows
