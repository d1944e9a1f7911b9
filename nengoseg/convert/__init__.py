"""Keras model -> spiking Nengo network (NengoDL Converter), and running it.

Most users want the Python API: ``nengoseg.convert(keras_model, **settings)`` (this
package is callable for that; it returns a `nengoseg.SpikingModel`, see
`nengoseg.spiking_model`). Underneath, the functions the pipeline's stages use::

    from nengoseg.convert import ConversionSettings, convert, run_ann, run_snn, save_conversion

    settings = ConversionSettings(neuron_model="loihi", normalise="percentile", n_steps=16)
    converted = convert(keras_model, settings, calibration_data=x_train[:256])
    snn = run_snn(converted, images, minibatch_size=16)  # .readout .masks .firing_rates_hz
    ann = run_ann(converted, images)                     # the same fields, for the ANN
    save_conversion(run_dir / "snn", keras_model, converted.settings)

Importing this package registers nengoseg's NengoDL layer converters
(Conv2DTranspose, Dropout, SoftLIF) and the `SoftLIF` and `QCFS` Keras layers.
"""

import sys
import types

from nengoseg.convert.coding import encode_inputs, spike_height
from nengoseg.convert.converter import (ConvertedNetwork, check_convertible, convert,
                                        percentile_activations)
from nengoseg.convert.layers import QCFS, SoftLIF
from nengoseg.convert.prepare import prepare_model
from nengoseg.convert.record import load_conversion, save_conversion
from nengoseg.convert.settings import ConversionSettings
from nengoseg.convert.simulate import SNNResult, read_out, run_ann, run_snn

__all__ = [
    "ConversionSettings",
    "ConvertedNetwork",
    "QCFS",
    "SNNResult",
    "SoftLIF",
    "check_convertible",
    "convert",
    "encode_inputs",
    "load_conversion",
    "percentile_activations",
    "prepare_model",
    "read_out",
    "run_ann",
    "run_snn",
    "save_conversion",
    "spike_height",
]


class _CallablePackage(types.ModuleType):
    """``nengoseg.convert(...)`` is the Python API's `nengoseg.spiking_model.convert`.

    ``ns.convert`` has to be both this package (``nengoseg.convert.ConversionSettings``,
    which the import system binds as the attribute ``convert`` of ``nengoseg``) and the
    API's verb, so the package is made callable.
    """

    def __call__(self, model, calibration_data=None, custom_objects=None, settings=None,
                 **options):
        from nengoseg.spiking_model import convert as convert_to_spiking_model

        return convert_to_spiking_model(model, calibration_data, custom_objects, settings,
                                        **options)


sys.modules[__name__].__class__ = _CallablePackage
