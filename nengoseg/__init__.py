"""nengoseg: Keras segmentation networks as spiking networks on Nengo, NengoDL and Loihi.

The Python API (`nengoseg.spiking_model`)::

    import nengoseg as ns

    snn = ns.convert(keras_unet, neuron_model="loihi", n_steps=16)   # a SpikingModel
    snn.compile(loss=ns.losses.DiceLoss()); snn.fit(x, y, epochs=4)
    probs = snn.predict(x_test); scores = snn.evaluate(x_test, y_test, groups=subjects)
    chip = ns.loihi.compile(snn); chip.predict(x_test[:8]); chip.resources()
    ns.energy(snn, x_test[:8]).summary()
    snn.save("my_snn/"); snn = ns.load("my_snn/")

Those names are imported on first use, so ``import nengoseg`` stays light (no
TensorFlow) for the CLI's own start-up.
"""

import os as _os

from nengoseg._versions import check_versions as _check_versions

__version__ = "0.1.0"

if not _os.environ.get("NENGOSEG_SKIP_VERSION_CHECK"):
    _check_versions()

from nengoseg.errors import ConfigError, DataError, NengosegError  # noqa: E402

# name -> (module, attribute or None for the module itself), imported on first use
_LAZY = {
    "convert": ("nengoseg.convert", None),  # a callable package: see nengoseg.convert
    "load": ("nengoseg.spiking_model", "load"),
    "SpikingModel": ("nengoseg.spiking_model", "SpikingModel"),
    "energy": ("nengoseg.energy_report", "energy"),
    "losses": ("nengoseg.losses", None),
    "metrics": ("nengoseg.metrics", None),
    "loihi": ("nengoseg.loihi", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'nengoseg' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ConfigError", "DataError", "NengosegError", "SpikingModel", "__version__", "convert",
           "energy", "load", "loihi", "losses", "metrics"]
