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
  where a block's compartments lie in them (`block_slice`).

Each replacement was checked against nengo-loihi's own code at the pinned version:
``tests/test_loihi_fast_build.py`` (the split model identical to nengo-loihi's, bad
atoms refused alike), ``tests/test_loihi_rewrite.py`` (the emulator's outputs with
and without vectorised routing identical). With another nengo-loihi version the
replacements are switched off (nengo-loihi's own, slower code runs) and
`version_problem` says what to do; the attribute readers fail with that message.
"""

import contextlib
import warnings

import nengo_loihi

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
    """Put every emulated compartment back at rest (state only; parameters untouched)."""
    c = _attribute(lambda: emulator.compartment, "the compartment state")
    for array in (c.input, c.current, c.voltage, c.ref_count):
        array[...] = 0
    c.spiked[...] = False


def spike_counts(emulator):
    """A copy of the emulator's spike count per compartment (all blocks, one array)."""
    return _attribute(lambda: emulator.compartment.spike_count.copy(), "the spike counters")


def block_slice(emulator, block):
    """Where ``block``'s compartments lie in `spike_counts`."""
    return _attribute(lambda: emulator.block_info.slices[block], "a block's compartments")
