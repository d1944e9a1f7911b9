"""nengoseg.loihi: map converted networks onto nengo-loihi (emulator by default, board with NxSDK).

`rewrite.from_conversion` rebuilds a converted or co-trained network as
neurons -> neurons connections nengo-loihi accepts; `blocks.choose_block_shapes`
tiles each layer over cores; `resources.resource_report` reads what the chip
would hold; `run.run_loihi` runs it (target "sim" or "loihi"); `energy` estimates
the energy per inference. `nengoseg.deploy.deploy_stage` drives all of it.
"""

from nengoseg.loihi.errors import (LoihiError, LoihiNetworkError, LoihiResourceError,
                                   LoihiUnavailable)
from nengoseg.loihi.settings import DeploySettings

__all__ = ["DeploySettings", "LoihiError", "LoihiNetworkError", "LoihiResourceError",
           "LoihiUnavailable"]
