"""Vectorised versions of nengo-loihi's block splitting and axon validation.

nengo-loihi's ``split_model`` (run by every build: the block-shape search's
rounds, the confirming build and the Simulator's) cuts each layer's synapse into
one synapse per core. Its ``split_synapse`` intersects the compartment set of
every new core with the target set of every old axon in Python (a U-Net layer:
tens of thousands of axons times tens of cores), and ``split_axon`` maps every
compartment's axon through a dict; on the default network that is about three
quarters of a build's time. Once split, ``validate_model`` checks every compartment's
axon atom in Python (``validate_axon``: millions of calls on the default network).

`split_synapse` and `split_axon` here compute the same new synapses and axons
(the same weights and indices, in the same order, the same weight sharing, axon
maps, compartment bases and labels) with array operations: each old compartment's
core and position on it are looked up once, and each axon's targets are grouped
by core with one sort; `validate_axon` makes the same check on arrays.
`fast_building` swaps them into nengo-loihi's modules for the duration of a
build; `tests/test_loihi_fast_build.py` checks, on convolutional, dense and
population-coded layers and several tilings, that the split model is identical to
nengo-loihi's own and that a bad atom fails validation as it does in nengo-loihi.

At ``ValidationLevel.FULL`` the originals run (their extra per-axon checks).
"""

import contextlib
from collections import OrderedDict

import numpy as np
from nengo_loihi.block import Axon, Synapse
from nengo_loihi.builder import split_blocks, validate
from nengo_loihi.builder.builder import ValidationLevel

ORIGINAL_SPLIT_SYNAPSE = split_blocks.split_synapse
ORIGINAL_SPLIT_AXON = split_blocks.split_axon
ORIGINAL_VALIDATE_AXON = validate.validate_axon


def _input_axons(old_synapse, validate):
    """``(axon_ids, weight_ids, bases)`` of the used axons of ``old_synapse``, in order."""
    n_axons = old_synapse.n_axons
    axon_ids = np.arange(n_axons)
    if old_synapse.axon_to_weight_map is None:
        weight_ids = axon_ids
    else:
        weight_ids = np.asarray(old_synapse.axon_to_weight_map)[:n_axons]
    if old_synapse.axon_compartment_bases is None:
        bases = np.zeros(n_axons, dtype=np.int64)
    else:
        bases = np.asarray(old_synapse.axon_compartment_bases)[:n_axons]
    if validate >= ValidationLevel.MINIMAL:
        for w in np.unique(weight_ids):
            indices = old_synapse.indices[w]
            assert np.all(indices == indices[:1]), "All atoms must target same indices"
    used = bases >= 0  # a negative base marks an unused axon
    return axon_ids[used], weight_ids[used], bases[used]


def split_synapse(old_block, old_synapse, new_blocks, validate=ValidationLevel.MINIMAL):
    """nengo-loihi's ``split_synapse`` (same arguments, same result), vectorised."""
    if validate >= ValidationLevel.FULL:
        return ORIGINAL_SPLIT_SYNAPSE(old_block, old_synapse, new_blocks, validate=validate)
    assert (
        old_synapse.axon_to_weight_map is None
        and old_synapse.axon_compartment_bases is None
        and old_synapse.pop_type == 0
    ) or (
        old_synapse.axon_to_weight_map is not None
        and old_synapse.axon_compartment_bases is not None
        and old_synapse.pop_type != 0
    )
    assert all(isinstance(w, np.ndarray) for w in old_synapse.weights), \
        "Sparse weights not yet supported"
    has_shared_weights = old_synapse.axon_to_weight_map is not None

    # each old compartment's new block (-1: none) and position in that block's list
    n_old = old_block.compartment.n_compartments
    owner = np.full(n_old, -1, dtype=np.int64)
    position = np.zeros(n_old, dtype=np.int64)
    blocks = list(new_blocks.items())
    for k, (_, comp_ids) in enumerate(blocks):
        ids = np.asarray(comp_ids.list, dtype=np.int64)
        owner[ids] = k
        position[ids] = np.arange(len(ids))

    axon_ids, weight_ids, bases = _input_axons(old_synapse, validate)
    new_synapse_axons = OrderedDict()
    if len(axon_ids) == 0:
        return new_synapse_axons
    targets = [np.asarray(old_synapse.indices[w][0]) for w in weight_ids]
    lengths = np.array([len(t) for t in targets], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(targets).astype(np.int64) + np.repeat(bases.astype(np.int64), lengths)
    element_axon = np.repeat(np.arange(len(axon_ids)), lengths)  # row in axon_ids
    element_owner = owner[flat]
    # group elements by (new block, axon), keeping each axon's target order
    order = np.lexsort((np.arange(len(flat)), element_axon, element_owner))
    order = order[element_owner[order] >= 0]
    if len(order) == 0:
        return new_synapse_axons
    group_key = element_owner[order] * len(axon_ids) + element_axon[order]
    cut = np.flatnonzero(np.diff(group_key)) + 1
    group_starts, group_ends = np.concatenate([[0], cut]), np.concatenate([cut, [len(order)]])
    group_owner = element_owner[order[group_starts]]
    group_row = element_axon[order[group_starts]]

    for k in np.unique(group_owner):  # ascending: the order of new_blocks
        block = blocks[k][0]
        in_block = np.flatnonzero(group_owner == k)
        rows = [int(r) for r in group_row[in_block]]
        new_synapse = Synapse(len(rows))
        if old_synapse.label is not None:
            new_synapse.label = "%s[%d]" % (old_synapse.label, k)
        block.add_synapse(new_synapse)
        new_synapse_axons[new_synapse] = [int(axon_ids[r]) for r in rows]

        weights, indices, weight_idx_map = [], [], {}
        axon_weight_map, compartment_bases = [], []
        for g, row in zip(in_block, rows):
            elements = order[group_starts[g]:group_ends[g]]
            w = int(weight_ids[row])
            n_rows = old_synapse.indices[w].shape[0]
            ww = old_synapse.weights[w][:, elements - starts[row]]  # a copy, as nengo-loihi's
            new_ids = position[flat[elements]]
            if not has_shared_weights:
                new_base = 0
                new_ii = np.tile(new_ids, (n_rows, 1))
            else:
                new_base = new_ids[np.argmin(flat[elements])] % 256
                new_ii = np.tile(new_ids - new_base, (n_rows, 1))
            key = (split_blocks.array_hash(ww), split_blocks.array_hash(new_ii))
            if key not in weight_idx_map:
                weight_idx_map[key] = len(weights)
                weights.append(ww)
                indices.append(new_ii)
            axon_weight_map.append(weight_idx_map[key])
            compartment_bases.append(new_base)

        new_synapse._set_weights_indices(
            weights, indices, weight_dtype=weights[0].dtype,
            compression=old_synapse.synapse_cfg.compression,
        )
        new_synapse.axon_to_weight_map = np.asarray(axon_weight_map)
        new_synapse.axon_compartment_bases = np.asarray(compartment_bases)
        new_synapse.pop_type = old_synapse.pop_type
    return new_synapse_axons


def split_axon(old_axon, old_axon_idxs, old_atoms, new_synapses):
    """nengo-loihi's ``split_axon`` (same arguments, same result), vectorised."""
    if new_synapses is None:
        return ORIGINAL_SPLIT_AXON(old_axon, old_axon_idxs, old_atoms, new_synapses)
    old_idxs = np.asarray(old_axon_idxs, dtype=np.int64)
    new_axons = []
    for k, (new_synapse, old_synapse_axon_ids) in enumerate(new_synapses.items()):
        if len(old_synapse_axon_ids) == 0:
            continue
        # old synapse axon -> new synapse axon (-1: not on this synapse); a negative old
        # index (no axon) maps to -1, as in nengo-loihi's dict lookup
        table = np.full(max(max(old_synapse_axon_ids), int(old_idxs.max(initial=-1))) + 1, -1,
                        dtype=np.int64)
        table[np.asarray(old_synapse_axon_ids)] = np.arange(len(old_synapse_axon_ids))
        new_axon_idxs = np.where(old_idxs >= 0, table[np.maximum(old_idxs, 0)], -1)
        n_axons = np.unique(new_axon_idxs[new_axon_idxs >= 0]).size
        if n_axons == 0:
            continue
        new_axon = Axon(n_axons)
        if old_axon.label is not None:
            new_axon.label = "%s[%d]" % (old_axon.label, k)
        new_axon.target = new_synapse
        new_axon.compartment_map = new_axon_idxs
        new_axon.compartment_atoms = np.asarray(old_atoms)
        new_axons.append(new_axon)
    return new_axons


def validate_axon(axon):
    """nengo-loihi's ``validate_axon``: every compartment's atom is below its target
    axon's number of populations (an AssertionError otherwise), on arrays."""
    if not isinstance(axon.target, Synapse) or axon.compartment_atoms is None:
        return
    atoms = np.asarray(axon.compartment_atoms)
    if atoms.size == 0:
        return
    axon_ids = np.asarray(axon.map_axon(np.arange(len(atoms))), dtype=np.int64)
    target = axon.target
    weight_ids = (axon_ids if target.axon_to_weight_map is None
                  else np.asarray(target.axon_to_weight_map)[axon_ids])
    populations = np.array([w.shape[0] for w in target.weights])[weight_ids]
    assert np.all((0 <= atoms) & (atoms < populations))


def split_signature(model):
    """Everything a split writes, as plain lists: per core its synapses (labels, weights,
    indices, axon maps, bases) and axons (targets, compartment maps, atoms), and the
    inputs' axons. Two builds are the same split when their signatures are equal."""
    synapse_ids = {}
    for b, block in enumerate(model.blocks):
        for s, synapse in enumerate(block.synapses):
            synapse_ids[id(synapse)] = (b, s)

    def array(a):
        return None if a is None else (np.asarray(a).dtype.kind, np.asarray(a).tolist())

    def axons(owner):
        return [(a.label, a.n_axons, synapse_ids[id(a.target)], array(a.compartment_map),
                 array(a.compartment_atoms)) for a in owner.axons]

    blocks = []
    for block in model.blocks:
        synapses = [(s.label, s.n_axons, s.pop_type, [array(w) for w in s.weights],
                     [array(i) for i in s.indices], array(s.axon_to_weight_map),
                     array(s.axon_compartment_bases)) for s in block.synapses]
        blocks.append((block.compartment.n_compartments, synapses, axons(block)))
    return blocks, [axons(item) for item in model.inputs]


@contextlib.contextmanager
def fast_building(enabled=True):
    """Within the block, nengo-loihi's builds split and validate with this module."""
    if not enabled:
        yield
        return
    saved = split_blocks.split_synapse, split_blocks.split_axon, validate.validate_axon
    split_blocks.split_synapse, split_blocks.split_axon = split_synapse, split_axon
    validate.validate_axon = validate_axon
    try:
        yield
    finally:
        split_blocks.split_synapse, split_blocks.split_axon, validate.validate_axon = saved
