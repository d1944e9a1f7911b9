"""Choose a block shape (tiling over cores) per layer that fits Loihi, with few cores.

nengo-loihi places each ensemble on cores by a ``nengo_loihi.BlockShape``; without
one it cuts the flattened neurons into equal consecutive chunks, sized from the
unsplit block's totals. That default ignores how a chunk's input axons and synapse
memory depend on its shape (a chunk of half an image row of a convolution needs
nearly the axons of a whole row; shared convolution weights are stored again on
every core) and how many cores of the next layer each neuron reaches, so it can
fail validation where another tiling fits.

`choose_block_shapes` searches, per layer of shape ``(H, W, C)`` (or ``(N,)``):

1. candidate tilings: every block shape whose sides are ``ceil(n / k)`` for each
   axis (all distinct tile counts), with at most 1024 neurons, ordered by the
   number of cores, then full channels before split channels, then the least
   padding waste, then the squarest tile;
2. feasibility first: the layer's neuron with the most input axons, alone on a
   core, must fit (else no tiling can: `LoihiResourceError` naming the limit);
3. the first candidate whose cores fit the input side (compartments, input axons,
   synapse memory, nengo-loihi's synapse checks), evaluated with nengo-loihi's
   ``split_synapse`` (vectorised: `nengoseg.loihi.fast_build`) on the unsplit
   build for the ``SAMPLED_TILES`` most central tiles (the likeliest to fail:
   they see the most inputs; edge tiles see padding);
4. the whole network is then split with the chosen shapes and *every* core is
   checked against every limit (output axons depend on how the next layers are
   tiled); a layer with a core over a limit moves on to its next candidate (more,
   smaller cores), and the split is repeated;
5. finally nengo-loihi's full build (split, discretize, validate) confirms it.

Sampling tiles in step 3 only orders the search: step 4 checks all cores, so a
tiling is never accepted on the strength of the sample.
"""

import itertools
import math
from collections import OrderedDict

import nengo_loihi
import numpy as np
from nengo.exceptions import BuildError
from nengo_loihi.block import LoihiBlock
from nengo_loihi.builder.builder import ValidationLevel
from nengo_loihi.builder.split_blocks import IndicesList
from nengo_loihi.builder.validate import validate_synapse

from nengoseg.loihi import limits
from nengoseg.loihi.build import apply_block_shapes, build_model, layer_blocks, whole_shapes
from nengoseg.loihi.errors import LoihiResourceError
from nengoseg.loihi.nengo_loihi_compat import split_synapse
from nengoseg.loihi.validate import block_usage, first_excess, resource_error

MAX_ROUNDS = 12  # re-splits after a core of the whole split is over a limit
SAMPLED_TILES = 3  # central tiles checked per candidate in the per-layer search


def candidate_shapes(shape, max_compartments=limits.MAX_COMPARTMENTS):
    """Block shapes for a layer of ``shape``, best first (see the module docstring)."""
    shape = tuple(int(n) for n in shape)
    sides = [sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True) for n in shape]
    size = math.prod(shape)
    found = []
    for tile in itertools.product(*sides):
        n_tile = math.prod(tile)
        if n_tile > max_compartments:
            continue
        cores = math.prod(-(-n // t) for n, t in zip(shape, tile))
        split_channels = len(shape) == 3 and tile[-1] < shape[-1]
        waste = cores * n_tile - size
        squareness = abs(tile[0] - tile[1]) if len(shape) == 3 else 0
        found.append(((cores, split_channels, waste, squareness), tile))
    found.sort()
    return [nengo_loihi.BlockShape(tile, shape) for _, tile in found]


def tiles(block_shape):
    """Neuron index arrays of each tile of ``block_shape``, central tiles first."""
    ens_shape, tile = block_shape.ensemble_shape, block_shape.shape
    index = np.arange(math.prod(ens_shape)).reshape(ens_shape)
    starts = [range(0, n, t) for n, t in zip(ens_shape, tile)]
    found = []
    for corner in itertools.product(*starts):
        where = tuple(slice(c, min(c + t, n)) for c, t, n in zip(corner, tile, ens_shape))
        centre = sum(abs(c + t / 2 - n / 2) / n for c, t, n in zip(corner, tile, ens_shape))
        found.append((centre, index[where].ravel()))
    found.sort(key=lambda item: item[0])
    return [ids for _, ids in found]


def tile_usage(block, ids):
    """Input-side resources of a core holding neurons ``ids`` of an unsplit ``block``.

    Uses ``split_synapse`` (`nengoseg.loihi.fast_build`'s copy of the code that
    splits the real build), so axons, shared weights and memory rounding are
    counted exactly.
    Returns ``(usage, problem)`` where ``problem`` is ``(limit, value)``, a
    nengo-loihi check message, or None.
    """
    ids = IndicesList(sorted(int(i) for i in ids))
    tile = LoihiBlock(len(ids))
    for synapse in block.synapses:
        split_synapse(block, synapse, OrderedDict([(tile, ids)]), validate=ValidationLevel.NONE)
    usage = block_usage(tile)
    usage["out_axons"] = 0  # depends on the next layers' tiling; checked on the whole split
    excess = first_excess(usage)
    if excess is not None:
        return usage, excess
    try:
        for synapse in tile.synapses:
            validate_synapse(synapse)
    except (AssertionError, BuildError) as err:
        return usage, f"nengo-loihi synapse check failed: {err}"
    return usage, None


def busiest_neuron(block):
    """The neuron of ``block`` that the most input axons reach."""
    reached = np.zeros(block.n_neurons)
    for synapse in block.synapses:
        for axon in range(synapse.n_axons):
            base = synapse.axon_compartment_base(axon)
            if base is None:
                continue
            targets = np.unique(base + synapse.indices[synapse.axon_weight_idx(axon)][0])
            reached[targets] += 1
    return int(np.argmax(reached))


class _LayerSearch:
    """Candidates of one layer, evaluated lazily in order."""

    def __init__(self, name, block, shape, max_evaluations):
        self.name = name
        self.block = block
        self.candidates = candidate_shapes(shape)
        self.max_evaluations = max_evaluations
        self.position = -1
        self.last_problem = "no candidate left"
        self.evaluated = 0
        self.failed = []  # tile shapes that failed on input axons or synapse memory

    def check_feasible(self):
        usage, problem = tile_usage(self.block, [busiest_neuron(self.block)])
        if problem is not None:
            if isinstance(problem, str):
                raise LoihiResourceError(f"layer '{self.name}' cannot be placed on Loihi: {problem}",
                                         layer=self.name)
            raise resource_error(self.name, *problem, finest=True)

    def next_fitting(self):
        """Advance to the next candidate whose every core fits its inputs; return it.

        A candidate whose tile is at least as large, along every axis, as one that
        already failed on input axons or synapse memory is skipped (those only grow
        with the tile).
        """
        while self.position + 1 < len(self.candidates) and self.evaluated < self.max_evaluations:
            self.position += 1
            candidate = self.candidates[self.position]
            if any(all(a >= b for a, b in zip(candidate.shape, bad)) for bad in self.failed):
                continue
            self.evaluated += 1
            if self.fits(candidate):
                return candidate
            if isinstance(self.last_problem, tuple):
                self.failed.append(candidate.shape)
        if not isinstance(self.last_problem, tuple):
            raise LoihiResourceError(
                f"layer '{self.name}': no block shape among the {self.evaluated} tried fits a "
                f"Loihi core ({self.last_problem}); change: fewer neurons or inputs in this layer",
                layer=self.name,
            )
        limit, value = self.last_problem
        raise resource_error(self.name, limit, value, shape=self.candidates[self.position])

    def fits(self, candidate):
        for ids in tiles(candidate)[:SAMPLED_TILES]:
            _, problem = tile_usage(self.block, ids)
            if problem is not None:
                self.last_problem = problem
                return False
        return True


def choose_block_shapes(loihi_net, max_evaluations=60, progress=False):
    """Choose and set a block shape for every on-chip layer; return ``{layer: BlockShape}``.

    The shapes are stored in ``loihi_net.block_shapes`` and in the network config.
    See `tile` for the same with nengo-loihi's checked build of the result.
    """
    return tile(loihi_net, max_evaluations, progress)[0]


def tile(loihi_net, max_evaluations=60, progress=False):
    """`choose_block_shapes`, returning ``(shapes, built)``: also the model of
    nengo-loihi's checked build with them (`confirm`), which the search ends with.

    Raises
    ------
    LoihiResourceError
        A layer cannot fit whatever the tiling (names the layer, the limit and
        what to change), or no candidate among ``max_evaluations`` fits.
    """
    unsplit = build_model(loihi_net, whole_shapes(loihi_net), discretize=False, validation="none")
    blocks = layer_blocks(unsplit, loihi_net)
    searches = OrderedDict()
    for layer in loihi_net.on_chip_layers:
        (block,) = blocks[layer.name]
        search = _LayerSearch(layer.name, block, layer.shape, max_evaluations)
        search.check_feasible()
        searches[layer.name] = search
    chosen = OrderedDict((name, search.next_fitting()) for name, search in searches.items())
    if progress:
        print("block shapes:", {n: s.shape for n, s in chosen.items()})

    posts = _posts(loihi_net)
    for _ in range(MAX_ROUNDS):
        model = build_model(loihi_net, chosen, discretize=False, validation="none")
        over = _excess(layer_blocks(model, loihi_net))
        if not over:
            break
        for name, (limit, value) in over.items():
            try:
                chosen[name] = searches[name].next_fitting()
            except LoihiResourceError:
                raise resource_error(name, limit, value, shape=chosen[name],
                                     posts=posts.get(name)) from None
    else:
        name, (limit, value) = next(iter(over.items()))
        raise resource_error(name, limit, value, shape=chosen[name], posts=posts.get(name))

    confirmed = confirm(loihi_net, chosen)
    loihi_net.block_shapes = dict(chosen)
    apply_block_shapes(loihi_net, loihi_net.block_shapes)
    return dict(chosen), confirmed


def confirm(loihi_net, block_shapes):
    """nengo-loihi's full build (split, discretize, validate) with ``block_shapes``.

    Returns the built model; a failure becomes a LoihiResourceError naming the layer.
    """
    from nengoseg.loihi.validate import check_blocks

    model = build_model(loihi_net, block_shapes, discretize=True, validation="none")
    check_blocks(layer_blocks(model, loihi_net), block_shapes, _posts(loihi_net))
    model.validation_level = ValidationLevel.MINIMAL
    from nengo_loihi.builder.validate import validate_model

    try:
        validate_model(model)
    except (BuildError, AssertionError) as err:
        raise LoihiResourceError(f"nengo-loihi's validation failed: {err}") from err
    return model


def _excess(blocks_by_layer):
    """``{layer: (limit, value)}`` for each layer with a core over a limit (its worst)."""
    over = {}
    for name, blocks in blocks_by_layer.items():
        for block in blocks:
            excess = first_excess(block_usage(block))
            if excess is not None and (name not in over or excess[1] > over[name][1]):
                over[name] = excess
    return over


def _posts(loihi_net):
    posts = {}
    for item in loihi_net.connections:
        posts.setdefault(item.pre, [])
        if item.post not in posts[item.pre]:
            posts[item.pre].append(item.post)
    return posts
