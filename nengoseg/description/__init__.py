"""The network description: one plain-data spiking network that every backend builds from.

`describe` makes it from a prepared Keras model (`nengoseg.description.from_keras`);
`save` / `load` write and read it (``network.json`` + ``network_weights.npz``,
versioned, checked on load: `nengoseg.description.format`). The Loihi rewrite builds
nengo-loihi networks from it (`nengoseg.loihi.rewrite.from_description`).
"""

from nengoseg.description.format import (
    DESCRIPTION_FILE,
    FORMAT_VERSION,
    OPS,
    WEIGHTS_FILE,
    Layer,
    NetworkDescription,
    Neurons,
    RunSettings,
    from_dict,
    load,
    save,
)
from nengoseg.description.from_keras import describe, scale_of

__all__ = [
    "DESCRIPTION_FILE", "FORMAT_VERSION", "OPS", "WEIGHTS_FILE", "Layer", "NetworkDescription",
    "Neurons", "RunSettings", "describe", "from_dict", "load", "save", "scale_of",
]
