"""nengoseg.loihi: map converted networks onto nengo-loihi (emulator by default, board with NxSDK).

`rewrite.from_conversion` rebuilds a converted or co-trained network as
neurons -> neurons connections nengo-loihi accepts; `blocks.choose_block_shapes`
tiles each layer over cores; `resources.resource_report` reads what the chip
would hold; `run.run_loihi` runs it (target "sim" or "loihi"); `energy` estimates
the energy per inference. `nengoseg.deploy.deploy_stage` drives all of it; `compile`
(``ns.loihi.compile(snn)``, `nengoseg.loihi.chip`) does the same for a
`nengoseg.SpikingModel` from Python.
"""

from nengoseg.loihi.errors import (LoihiError, LoihiNetworkError, LoihiResourceError,
                                   LoihiUnavailable)
from nengoseg.loihi.settings import DeploySettings


def compile(snn, target="sim", **options):  # noqa: A001 (Keras' verb)
    """Build a `nengoseg.SpikingModel` for nengo-loihi (``target="sim"``: the emulator;
    ``"loihi"``: the board): a `nengoseg.loihi.chip.LoihiModel` with ``predict``,
    ``evaluate``, ``run`` and ``resources``. ``options``: see
    `nengoseg.loihi.chip.compile_model`."""
    from nengoseg.loihi.chip import compile_model

    return compile_model(snn, target=target, **options)


__all__ = ["DeploySettings", "LoihiError", "LoihiNetworkError", "LoihiResourceError",
           "LoihiUnavailable", "compile"]
