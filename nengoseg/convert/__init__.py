"""Keras model -> spiking Nengo network (NengoDL Converter), and running it.

Typical use::

    from nengoseg.convert import ConversionSettings, convert, run_ann, run_snn, save_conversion

    settings = ConversionSettings(scale_firing_rates=1000, synapse=0.005, n_steps=100)
    converted = convert(keras_model, settings)
    snn = run_snn(converted, images, minibatch_size=16)  # .readout .masks .firing_rates_hz
    ann = run_ann(converted, images)                     # the same fields, for the ANN
    save_conversion(run_dir / "snn", keras_model, converted.settings)

Importing this package registers nengoseg's NengoDL layer converters
(Conv2DTranspose, Dropout, SoftLIF) and the `SoftLIF` and `QCFS` Keras layers.
"""

from nengoseg.convert.coding import encode_inputs, spike_height
from nengoseg.convert.converter import ConvertedNetwork, convert, percentile_activations
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
