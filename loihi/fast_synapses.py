"""Spike routing for nengo-loihi's emulator as sparse matrix products: the same numbers, faster.

nengo-loihi 1.1's emulator (``nengo_loihi.emulator.interface``) routes every spike
in Python: ``SynapseState.inject_current`` makes one ``Axon.Spike`` tuple per spike
and ``SynapseState.update_input`` adds that axon's weights into the target
compartments one spike at a time. On a converted U-Net, where tens of thousands of
neurons spike at every step, that is over 99% of the emulator's time (measured
with py-spy on the default config: about 2 s per step, 0.5 steps/s).

`vectorise_synapses` replaces those two methods on one emulator instance. Each
``Synapse`` becomes a sparse matrix with one row per (input axon, atom) pair and
one column per compartment of its block, holding exactly the weights and
compartment indices ``Synapse.axon_weights_indices`` and
``axon_compartment_base`` give; every step, the spikes that reach a synapse are
counted per row and the block's input grows by ``counts @ matrix``. With
discretized (integer) weights this is the emulator's sum exactly (integer
addition does not depend on the order; int32 wrap-around is kept by the final
cast); with float weights it may differ in the last bits of float32.

Synapses with learning (PES) keep nengo-loihi's own path: the emulator is left
unchanged when any synapse learns.
"""

import numpy as np
import scipy.sparse


def synapse_matrix(synapse, n_compartments):
    """``(n_axons * n_pops, n_compartments)`` CSR matrix of ``synapse``'s weights."""
    n_axons = synapse.n_axons
    n_pops = synapse.axon_populations(0) if n_axons else 1
    rows, cols, values = [], [], []
    for axon in range(n_axons):
        base = synapse.axon_compartment_base(axon)
        if base is None:
            continue
        for atom in range(n_pops):
            weights, indices = synapse.axon_weights_indices(axon, atom=atom)
            columns = base + np.asarray(indices, np.int64)
            weights = np.asarray(weights)
            # numpy's ``qb[0, columns] += weights`` keeps only the last of repeated columns
            if len(np.unique(columns)) != len(columns):
                last = len(columns) - 1 - np.unique(columns[::-1], return_index=True)[1]
                columns, weights = columns[last], weights[last]
            rows.append(np.full(len(columns), axon * n_pops + atom, np.int64))
            cols.append(columns)
            values.append(weights)
    if rows:
        rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    dtype = np.int64 if np.issubdtype(np.asarray(values).dtype, np.integer) else np.float64
    matrix = scipy.sparse.csr_matrix(
        (np.asarray(values, dtype), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
        shape=(n_axons * n_pops, n_compartments),
    )
    return matrix, n_pops


def axon_rows(axon, compartments, n_pops):
    """``(used, rows)``: which of ``compartments`` (source indices) reach ``axon``'s
    target synapse, and the matrix row (``axon index * n_pops + atom``) of each one that
    does, as ``Axon.map_spikes`` maps them (a negative axon index: no spike sent)."""
    compartments = np.asarray(compartments, np.int64)
    ids = np.asarray(axon.map_axon(compartments), np.int64)
    if axon.compartment_atoms is None:
        atoms = np.zeros_like(ids)
    else:
        atoms = np.asarray(axon.compartment_atoms, np.int64)[compartments]
    used = ids >= 0
    return used, ids[used] * n_pops + atoms[used]


class _Routing:
    """The vectorised ``inject_current`` / ``update_input`` of one ``SynapseState``."""

    def __init__(self, synapse_state):
        self.state = synapse_state
        self.matrices, self.n_pops, self.counts = {}, {}, {}
        for synapse, where in synapse_state.items():
            n = where.stop - where.start
            matrix, n_pops = synapse_matrix(synapse, n)
            self.matrices[synapse] = matrix
            self.n_pops[synapse] = n_pops
            self.counts[synapse] = np.zeros(matrix.shape[0], np.int64)

    def _route(self, axon, compartments):
        compartments = np.asarray(compartments, np.int64)
        if compartments.size == 0:
            return
        _, rows = axon_rows(axon, compartments, self.n_pops[axon.target])
        counts = self.counts[axon.target]
        counts += np.bincount(rows, minlength=counts.size)

    def inject_current(self, t, spike_inputs, all_axons, spiked):
        for counts in self.counts.values():
            counts[:] = 0
        if t >= 2:  # input spikes take one time-step to arrive
            for spike_input in spike_inputs:
                compartments = spike_input.spike_idxs(t - 1)
                for axon in spike_input.axons:
                    self._route(axon, compartments)
        for axon, where in all_axons.items():
            self._route(axon, spiked[where].nonzero()[0])

    def update_input(self, input):
        for synapse, where in self.state.items():
            counts = self.counts[synapse]
            active = counts.nonzero()[0]
            if active.size == 0:
                continue
            added = self.matrices[synapse][active].T @ counts[active]
            block = input[0, where]
            block += np.asarray(added).astype(input.dtype, copy=False)


def vectorise_synapses(emulator):
    """Route the spikes of ``emulator`` (an ``EmulatorInterface``) with sparse products.

    Returns True, or False (the emulator unchanged) when a synapse learns.
    """
    state = emulator.synapses
    if state.traces or any(synapse.learning for synapse, _ in state.items()):
        return False
    routing = _Routing(state)
    state.inject_current = routing.inject_current
    state.update_input = routing.update_input
    state.vectorised = routing
    return True
