"""A `SpikingModel` built once for nengo-loihi, then run many times (``ns.loihi.compile``).

::

    chip = ns.loihi.compile(snn, target="sim")   # rewrite, tile over cores, validate
    chip.resources_table()                      # cores, compartments, synapses per layer
    probs = chip.predict(x_test[:8])
    scores = chip.evaluate(x_test[:8], y_test[:8], groups=subjects[:8])

Compiling does what ``nengoseg deploy`` does before it runs (`nengoseg.deploy`): the
network description is rebuilt as neurons -> neurons connections
(`nengoseg.loihi.rewrite.from_description`), every layer is tiled over cores
(`nengoseg.loihi.blocks.tile`) and nengo-loihi's own build checks the
result against the chip's limits (`confirm`): a network that does not fit raises here,
naming the layer, before anything runs.
"""

import nengo_loihi

from nengoseg.loihi import resources as _resources
from nengoseg.loihi.blocks import confirm, tile
from nengoseg.loihi.build import apply_block_shapes
from nengoseg.loihi.errors import LoihiError
from nengoseg.loihi.rewrite import from_description
from nengoseg.loihi.run import check_target, run_loihi
from nengoseg.loihi.settings import DeploySettings


def compile_model(snn, target="sim", pop_type=None, max_evaluations=None, settle_steps=None,
                  block_shapes=None, verbose=0, emulator=None, chunk_images=None):
    """Build ``snn`` (a `nengoseg.SpikingModel`) for nengo-loihi; returns a `LoihiModel`.

    ``target``: ``"sim"`` (nengo-loihi's emulator) or ``"loihi"`` (the board; needs
    NxSDK, else `nengoseg.loihi.LoihiUnavailable`). ``pop_type``, ``max_evaluations``,
    ``settle_steps``, ``emulator`` ("batched" or "nengo-loihi"), ``chunk_images``: as the
    config's ``loihi:`` section (`DeploySettings`; None: its defaults). ``block_shapes``:
    ``{layer name: block shape}`` found before (e.g. the ``block_shape`` column of an
    earlier `LoihiModel.resources`), used when every on-chip layer has one and
    nengo-loihi still accepts them; else (the default) they are searched. ``verbose=1``
    shows the block-shape search.
    """
    given = {"pop_type": pop_type, "max_evaluations": max_evaluations,
             "settle_steps": settle_steps, "emulator": emulator, "chunk_images": chunk_images}
    settings = DeploySettings(target=target, **{k: v for k, v in given.items() if v is not None})
    check_target(settings.target)
    loihi_net = from_description(snn.description, pop_type=settings.pop_type)
    built = _with_block_shapes(loihi_net, block_shapes) if block_shapes else None
    if built is None:
        _, built = tile(loihi_net, max_evaluations=settings.max_evaluations,
                        progress=bool(verbose))
    return LoihiModel(snn, loihi_net, built, settings)


def _with_block_shapes(loihi_net, block_shapes):
    """nengo-loihi's checked build with the given block shapes; None where they do not
    cover every on-chip layer or no longer fit (the caller searches anew)."""
    shapes = {}
    for layer in loihi_net.on_chip_layers:
        shape = block_shapes.get(layer.name)
        if not shape:
            return None
        shapes[layer.name] = nengo_loihi.BlockShape(tuple(shape), tuple(layer.shape))
    try:
        built = confirm(loihi_net, shapes)
    except LoihiError:
        return None
    loihi_net.block_shapes = shapes
    apply_block_shapes(loihi_net, shapes)
    return built


class LoihiModel:
    """A `SpikingModel` mapped onto Loihi cores (made by `compile_model`).

    Attributes
    ----------
    snn : nengoseg.SpikingModel
        What it was compiled from (the scores use its task and readout).
    loihi_net : nengoseg.loihi.network.LoihiNetwork
        The rewritten network, with its block shapes.
    settings : nengoseg.loihi.DeploySettings
    built_model : nengo_loihi.builder.Model
        nengo-loihi's checked build (the blocks on cores).
    """

    def __init__(self, snn, loihi_net, built_model, settings):
        self.snn = snn
        self.loihi_net = loihi_net
        self.settings = settings
        self.built_model = built_model

    @property
    def target(self):
        return self.settings.target

    def run(self, x, n_steps=None, verbose=0):
        """Run each input for ``n_steps`` (default: the conversion's) on the emulator the
        settings name (``emulator``: batched or nengo-loihi's; the board one by one); a
        `nengoseg.loihi.run.LoihiResult` (``readout``, ``masks``, ``firing_rates_hz``,
        ``spike_counts`` on the emulator, ``steps_per_second``)."""
        x = self.snn._inputs(x, "loihi predict")
        return run_loihi(self.loihi_net, x, n_steps=n_steps, target=self.target,
                         settle_steps=self.settings.settle_steps, progress=bool(verbose),
                         batched=self.settings.emulator == "batched",
                         chunk_images=self.settings.chunk_images)

    def predict(self, x, n_steps=None, verbose=0):
        """Probabilities or values per input, as `nengoseg.SpikingModel.predict`."""
        return self.run(x, n_steps, verbose).readout

    def evaluate(self, x, y, groups=None, n_steps=None, verbose=0):
        """Scores as `nengoseg.SpikingModel.evaluate`, from the Loihi run."""
        x, y, groups = self.snn._scored_arrays(x, y, groups, "loihi evaluate")
        result = self.run(x, n_steps, verbose)
        return self.snn._scores(result, x, y, groups, "loihi")

    def resources(self):
        """What the chip would hold: ``{"layers": {layer: {cores, compartments,
        synapse_bits, axons, ..., max_core, block_shape}}, "total": {...}, "chips": n}``
        (`nengoseg.loihi.resources.resource_report`)."""
        return _resources.resource_report(self.built_model, self.loihi_net)

    def resources_table(self):
        """`resources` as a Markdown table (what ``nengoseg deploy`` writes)."""
        return _resources.markdown(self.resources())
