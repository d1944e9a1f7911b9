"""Keras model -> spiking Nengo network, through ``nengo_dl.Converter``.

`convert` runs in four steps:

1. `nengoseg.convert.prepare.prepare_model` rebuilds the Keras model from its
   config (the user's model is not touched): BatchNormalization folded or frozen,
   regularisers and constraints dropped, an output sigmoid moved into the readout
   (see that module).
2. Firing-rate scales: ``scale_firing_rates`` as given, or data-based percentile
   normalisation (`percentile_activations`, Rueckauer et al. 2016).
3. ``nengo_dl.Converter`` with ``allow_fallback=False``; any layer it cannot turn
   into native Nengo objects is a `ConversionError` naming the layer, its class and
   the converter's reason (`check_convertible` lists every such layer before step 2). nengoseg's converters (`nengoseg.convert.layers`) add
   Conv2DTranspose, Dropout and SoftLIF.
4. Rate neurons are swapped for spiking ones (``spiking=True``) and every neuron
   layer is probed, for firing rates.

Saving and loading a conversion is in `nengoseg.convert.record`.

Where nengo-dl 3.6 falls short (and what is done here instead):

- Its BatchNormalization converter does not suit co-training or Loihi; the
  normalisation is folded into the preceding weights instead
  (`nengoseg.convert.prepare`).
- With ``allow_fallback=False`` it raises a bare ``TypeError`` that suggests
  turning fallback on; an unsupported activation raises one that does not name the
  layer. `_StrictConverter` checks first and names the layer.
- ``swap_activations`` keys must equal the neuron instances the converter makes,
  and SoftLIF neurons differ per layer (their parameters), so the spiking swap is
  done on the built ensembles instead (`_swap_to_spiking`).
"""

import dataclasses
import types
import warnings
from typing import Optional

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

from nengoseg import neuron_kinds
from nengoseg.convert import skip_factors
from nengoseg.convert.describe import describe_conversion
from nengoseg.convert.layers import qcfs_thresholds
from nengoseg.convert.prepare import prepare_model
from nengoseg.convert.record import installed_versions
from nengoseg.convert.settings import ConversionSettings
from nengoseg.errors import ConversionError, DataError

# activations a layer may carry: they become no neurons (linear) or ReLU neurons.
SUPPORTED_ACTIVATIONS = (None, tf.keras.activations.linear, tf.keras.activations.relu, tf.nn.relu)


@dataclasses.dataclass
class ConvertedNetwork:
    """A converted network and what is needed to run and read it.

    Attributes
    ----------
    network : nengo.Network
        The spiking (or rate) network; native Nengo objects only.
    input_node : nengo.Node
        Fed with ``(batch, n_steps, H*W*C)`` arrays (see `nengoseg.convert.encode_inputs`).
    output_probe : nengo.Probe
        The output layer (logits for segmentation).
    neuron_probes : dict of {str: nengo.Probe}
        One unfiltered probe per neuron layer, by Keras layer name, for firing rates.
        They are part of ``network``; a deployment that does not want them (Loihi
        sends every probed spike off chip) can remove them from ``network.probes``.
    settings : ConversionSettings
        The settings with the recorded fields filled in (neuron types, final
        per-layer scales, normalisation factors, versions).
    keras_model : tf.keras.Model
        The prepared Keras model that was converted (see `prepare_model`); it
        outputs what ``output_probe`` probes, e.g. logits.
    converter : nengo_dl.Converter
        The nengo-dl converter (its ``layers`` maps Keras layers to Nengo objects).
    ann_model : tf.keras.Model or None
        The ANN as trained, prepared like ``keras_model`` but with its QCFS
        activations (`nengoseg.convert.QCFS`) kept, where it has any (``keras_model``
        has plain ReLUs in their place); None: ``keras_model`` is the ANN.
    """

    network: nengo.Network
    input_node: nengo.Node
    output_probe: nengo.Probe
    neuron_probes: dict
    settings: ConversionSettings
    keras_model: tf.keras.Model
    converter: nengo_dl.Converter
    ann_model: Optional[tf.keras.Model] = None

    @property
    def description(self):
        """The `nengoseg.description.NetworkDescription` of this network (plain data:
        layers, weights, neuron kinds, scales and initial state, run settings)."""
        return describe_conversion(self.keras_model, self.settings, self.network,
                                   self.neuron_probes, prepared=True)

    @property
    def input_shape(self):
        """Shape of one input, e.g. ``(H, W, C)``."""
        return tuple(self.keras_model.input_shape[1:])

    @property
    def output_shape(self):
        """Shape of one output, e.g. ``(H, W, 1)``."""
        return tuple(self.keras_model.output_shape[1:])


def convert(keras_model, settings=None, calibration_data=None):
    """Convert a functional or Sequential Keras model to a spiking Nengo network.

    Parameters
    ----------
    keras_model : tf.keras.Model
        One input, one output; layers nengo-dl or nengoseg can convert.
    settings : ConversionSettings or dict or None
        None: the defaults.
    calibration_data : array_like or None
        Inputs ``(n, H, W, C)`` for ``normalise="percentile"``; a few dozen
        representative images suffice. Without it, the ``normalisation_factors``
        recorded in ``settings`` by an earlier conversion are used.

    Returns
    -------
    ConvertedNetwork

    Raises
    ------
    ConversionError
        Layers cannot be converted (before any work: every such layer, with its class
        and why; `check_convertible`), or the scales do not fit the model.
    ConfigError
        A setting is not allowed.
    """
    settings = _as_settings(settings)
    thresholds = qcfs_thresholds(keras_model)
    model, output_activation = prepare_model(keras_model)
    _check_layers(model, settings, keras_model.name)
    factors = _normalisation_factors(model, settings, calibration_data, thresholds)
    if settings.skip_normalisation == "layer":
        factors = skip_factors.layer_wise(
            factors, skip_factors.concatenation_sources(model, factors))
    scales = _scales(settings, factors)
    converter = _build(model, settings, scales)
    neurons = _neuron_layers(model, converter)
    _check_scaled_layers(scales, neurons, model)
    _check_normalisable(settings, neurons)
    if settings.spiking:
        _swap_to_spiking(model, neurons, settings.neuron_model, settings.initial_voltage,
                         settings.thresholds)

    # nengo draws build-time randomness (initial voltages) from the global numpy
    # generator unless the network has a seed; seeding it makes runs repeatable.
    converter.net.seed = settings.seed
    with converter.net:
        neuron_probes = {
            name: nengo.Probe(obj, synapse=None, label=f"{name}.neurons")
            for name, obj in neurons.items()
        }
    resolved = dataclasses.replace(
        settings,
        output_activation=output_activation,
        neuron_types=_neuron_type_names(neurons),
        layer_scales={name: _scale_of(scales, name) for name in neurons},
        normalisation_factors=factors,
        versions=installed_versions(),
    )
    return ConvertedNetwork(
        network=converter.net,
        input_node=converter.inputs[model.inputs[0]],
        output_probe=converter.outputs[model.outputs[0]],
        neuron_probes=neuron_probes,
        settings=resolved,
        keras_model=model,
        converter=converter,
        ann_model=prepare_model(keras_model, keep_qcfs=True)[0] if thresholds else None,
    )


def _as_settings(settings):
    if settings is None:
        return ConversionSettings()
    if isinstance(settings, dict):
        return ConversionSettings.from_dict(settings)
    settings.validate()
    return settings


# ---------------------------------------------------------------- firing-rate scales


def percentile_activations(model, layer_names, data, percentile=99.9, batch_size=32):
    """The ``percentile``-th percentile of each layer's positive Keras activations.

    This is the robust normalisation factor of Rueckauer et al. (2016, "Theory and
    tools for the conversion of analog to spiking convolutional neural networks"):
    the maximum activation is replaced by a high percentile, so that rare outliers
    do not push every other neuron to low, imprecise rates. As there (and in their
    SNN toolbox), zeros are left out: ReLU layers are sparse, and counting their
    zeros would make the factor depend on the sparsity rather than on the scale of
    the active units. A layer that is never active on ``data`` gets factor 1 (with a
    warning).
    """
    outputs = [model.get_layer(name).output for name in layer_names]
    probe_model = tf.keras.Model(model.inputs, outputs)
    values = probe_model.predict(data, batch_size=batch_size, verbose=0)
    if len(layer_names) == 1:
        values = [values]
    factors = {}
    for name, activation in zip(layer_names, values):
        positive = activation[activation > 0]
        if positive.size == 0:
            warnings.warn(f"layer '{name}' is never active on the calibration data; using factor 1")
            factors[name] = 1.0
        else:
            factors[name] = float(np.percentile(positive, percentile))
    return factors


def _normalisation_factors(model, settings, calibration_data, thresholds):
    """The factor of each neuron layer: its percentile activation measured on
    ``calibration_data`` (``"percentile"``) or its QCFS layer's learned threshold
    (``"qcfs"``, from ``thresholds``), or the factors an earlier conversion recorded."""
    if settings.normalise is None:
        return {}

    def neuron_layer_names():
        rate_settings = dataclasses.replace(settings, spiking=False)
        return list(_neuron_layers(model, _build(model, rate_settings, {})))

    if settings.normalise == "qcfs" and thresholds:
        names = neuron_layer_names()
        missing = [name for name in names if name not in thresholds]
        if missing:
            raise ConversionError(
                f"normalise='qcfs' takes each neuron layer's scale from its QCFS threshold, but "
                f"layer '{missing[0]}' of model '{model.name}' is not a QCFS layer; allowed: "
                "models whose every activation is QCFS (model option activation: qcfs<L>), or "
                "normalise='percentile'"
            )
        return {name: thresholds[name] for name in names}
    if calibration_data is None or settings.normalise == "qcfs":
        if not settings.normalisation_factors:
            raise ConversionError(
                "normalise='percentile' needs calibration_data (a few dozen inputs), "
                "normalise='qcfs' a model with QCFS layers; or either the "
                "normalisation_factors recorded by an earlier conversion"
            )
        return dict(settings.normalisation_factors)
    data = np.asarray(calibration_data, np.float32)
    if data.shape[1:] != tuple(model.input_shape[1:]) or len(data) == 0:
        raise DataError(
            f"calibration_data of shape {data.shape} does not fit model '{model.name}', "
            f"which takes (n, {', '.join(map(str, model.input_shape[1:]))}) with n >= 1"
        )
    return percentile_activations(model, neuron_layer_names(), data, settings.percentile)


def _scales(settings, factors):
    """The scale of each layer: ``{name: scale}``, or one number for every layer.

    With normalisation, ``scale = target_rate_hz / factor``: a ReLU neuron with
    gain ``scale`` fires at ``scale * a`` Hz for a Keras activation ``a`` (its output
    is divided by ``scale`` again, so the next layer sees ``a``), so the percentile
    activation fires at ``target_rate_hz``. Unlike Rueckauer's weight rescaling by
    ``lambda_{l-1} / lambda_l``, no chaining over layers is needed, because the
    output amplitude already returns every layer to Keras units.
    """
    if settings.normalise is not None:
        return {name: settings.target_rate_hz / factor for name, factor in factors.items()}
    if isinstance(settings.scale_firing_rates, dict):
        return dict(settings.scale_firing_rates)
    return settings.scale_firing_rates


def _scale_of(scales, name):
    return float(scales.get(name, 1.0)) if isinstance(scales, dict) else float(scales)


def _check_scaled_layers(scales, neurons, model):
    if not isinstance(scales, dict):
        return
    unknown = sorted(set(scales) - set(neurons))
    if unknown:
        raise ConversionError(
            f"scale_firing_rates (or normalisation_factors) names layer {unknown[0]!r}, which is "
            f"not a neuron layer of model '{model.name}'; allowed: {', '.join(neurons) or 'none'}"
        )


def _check_normalisable(settings, neurons):
    if settings.normalise is None:
        return
    for name, obj in neurons.items():
        if not isinstance(obj.ensemble.neuron_type, nengo.RectifiedLinear):
            raise ConversionError(
                f"normalise={settings.normalise!r} needs ReLU neurons, but layer '{name}' makes "
                f"{type(obj.ensemble.neuron_type).__name__} neurons (the LIF rate is not "
                "linear in its input, so scaling it changes the output); use "
                "scale_firing_rates or firing-rate regularisation instead"
            )


# ---------------------------------------------------------------- nengo-dl conversion


class _StrictConverter(nengo_dl.Converter):
    """``nengo_dl.Converter`` that refuses unconvertible layers with a ConversionError.

    The error names the layer and its class and gives the registered converter's
    own reason (``LayerConverter.convertible``), or says that no converter exists.
    """

    def get_converter(self, layer):
        converter_class = self.converters.get(type(layer))
        if converter_class is None:
            reason = f"no NengoDL converter is registered for {type(layer).__name__} layers"
        else:
            convertible, reason = converter_class.convertible(layer, self)
            reason = None if convertible else reason or "its converter refuses it"
        if reason is not None:
            raise ConversionError(_layer_message(layer, reason))
        _check_activation(layer)
        try:
            return super().get_converter(layer)
        except (TypeError, ValueError) as err:
            raise ConversionError(_layer_message(layer, str(err))) from err


def check_convertible(keras_model, settings=None):
    """Raise one ConversionError listing every layer of ``keras_model`` that cannot be
    converted, each with its reason; return None when all can.

    `convert` runs this check itself, on the prepared model and before any work
    (calibration, NengoDL's converter, which would stop at the first such layer).
    The checks: a NengoDL converter is registered for the layer's class and accepts
    the layer (``convertible``, with ``settings.max_to_avg_pool``), and its activation
    has a spiking neuron.
    """
    _check_layers(prepare_model(keras_model)[0], _as_settings(settings), keras_model.name)


def _check_layers(model, settings, name):
    """`check_convertible` on ``model`` as `prepare_model` made it (``name``: the user's)."""
    # what LayerConverter.convertible reads of the converter running it
    running = types.SimpleNamespace(inference_only=False, allow_fallback=False,
                                    max_to_avg_pool=settings.max_to_avg_pool)
    refused = []
    for layer in model.layers:
        converter_class = _StrictConverter.converters.get(type(layer))
        if converter_class is None:
            refused.append(_layer_message(
                layer, f"no NengoDL converter is registered for {type(layer).__name__} layers"))
            continue
        convertible, reason = converter_class.convertible(layer, running)
        if not convertible:
            refused.append(_layer_message(layer, reason or "its converter refuses it"))
            continue
        try:
            _check_activation(layer)
        except ConversionError as err:
            refused.append(str(err))
    if len(refused) == 1:
        raise ConversionError(refused[0])
    if refused:
        head = f"{len(refused)} layer(s) of model '{name}' cannot be converted:"
        raise ConversionError("\n  ".join([head, *refused]))


def _layer_message(layer, reason):
    return (
        f"layer '{layer.name}' ({type(layer).__name__}) cannot be converted to Nengo "
        f"objects: {reason}"
    )


def _check_activation(layer):
    activation = getattr(layer, "activation", None)
    if activation in SUPPORTED_ACTIVATIONS:
        return
    name = getattr(activation, "__name__", repr(activation))
    raise ConversionError(
        _layer_message(
            layer,
            f"activation '{name}' has no spiking neuron in nengoseg; allowed: linear, relu, "
            "or a SoftLIF layer (a sigmoid on the output layer is moved into the readout)",
        )
    )


def _build(model, settings, scales):
    """Run the nengo-dl converter; ``scales`` is a number or ``{layer_name: scale}``."""
    if isinstance(scales, dict):
        scales = {model.get_layer(name): s for name, s in scales.items() if name in _names(model)}
    return _StrictConverter(
        model,
        allow_fallback=False,
        inference_only=False,
        max_to_avg_pool=settings.max_to_avg_pool,
        scale_firing_rates=scales,
        synapse=settings.synapse,
    )


def _names(model):
    return {layer.name for layer in model.layers}


def _neuron_layers(model, converter):
    """``{layer_name: nengo.ensemble.Neurons}`` for every layer that became neurons.

    A layer converted to the identity (Dropout) hands on its input's Neurons
    object; those are listed once, under the layer that made them.
    """
    neurons = {}
    for layer in model.layers:
        obj = converter.layers[layer]
        if isinstance(obj, nengo.ensemble.Neurons) and obj not in neurons.values():
            neurons[layer.name] = obj
    return neurons


def _swap_to_spiking(model, neurons, neuron_model, initial_voltage=None, thresholds=None):
    """Replace each layer's rate neurons by the spiking kind ``neuron_model`` makes of them
    (`nengoseg.neuron_kinds.converted_kind`), with the same amplitude and time constants,
    starting from ``initial_voltage`` (None: the kind's own initial state), with
    ``thresholds`` (multi-threshold kinds; None: the kind's own)."""
    for name, obj in neurons.items():
        rate = obj.ensemble.neuron_type
        layer = model.get_layer(name)
        activation = neuron_kinds.activation_of(rate)
        if activation is None:
            reason = (
                f"it makes {type(rate).__name__} neurons, which have no spiking counterpart "
                "in nengoseg; allowed activations: relu, or a SoftLIF layer"
            )
            raise ConversionError(_layer_message(layer, reason))
        where = f"layer '{name}' ({type(layer).__name__})"
        kind = neuron_kinds.converted_kind(activation, neuron_model, where=where)
        neuron = kind.make(rate)
        if thresholds is not None:
            neuron = neuron_kinds.with_thresholds(neuron, thresholds)
        if initial_voltage is not None:
            neuron = neuron_kinds.with_initial_voltage(neuron, initial_voltage)
        obj.ensemble.neuron_type = neuron


def _neuron_type_names(neurons):
    return {name: type(obj.ensemble.neuron_type).__name__ for name, obj in neurons.items()}
