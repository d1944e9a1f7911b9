"""Keras model -> spiking Nengo network, through ``nengo_dl.Converter``.

`convert` runs in four steps:

1. `prepare_model` rebuilds the Keras model from its config (the user's model is
   not touched): BatchNormalization is folded into the Conv2D / Conv2DTranspose /
   Dense before it (or frozen, where it cannot be folded), Keras regularisers and
   constraints are dropped, and a sigmoid on the output layer is moved into the
   readout (so the network outputs logits and needs no sigmoid "neurons").
2. Firing-rate scales: ``scale_firing_rates`` as given, or data-based percentile
   normalisation (`percentile_activations`, Rueckauer et al. 2016).
3. ``nengo_dl.Converter`` with ``allow_fallback=False``; any layer it cannot turn
   into native Nengo objects is a `ConversionError` naming the layer, its class and
   the converter's reason. nengoseg's converters (`nengoseg.convert.layers`) add
   Conv2DTranspose, Dropout and SoftLIF.
4. Rate neurons are swapped for spiking ones (``spiking=True``) and every neuron
   layer is probed, for firing rates.

Where nengo-dl 3.6 falls short (and what is done here instead):

- Its BatchNormalization converter needs ``inference_only=True`` (which makes the
  whole network untrainable in NengoDL, ruling out co-training) or a frozen layer,
  and then adds passthrough and bias Nodes that nengo-loihi rejects. Folding the
  normalisation into the preceding weights avoids both.
- With ``allow_fallback=False`` it raises a bare ``TypeError`` that suggests
  turning fallback on; an unsupported activation raises one that does not name the
  layer. `_StrictConverter` checks first and names the layer.
- ``swap_activations`` keys must equal the neuron instances the converter makes,
  and SoftLIF neurons differ per layer (their parameters), so the spiking swap is
  done on the built ensembles instead (`_swap_to_spiking`).
"""

import copy
import dataclasses
import warnings
from pathlib import Path

import keras
import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

import nengoseg
from nengoseg import neuron_kinds
from nengoseg.atomic import atomic_path, write_json
from nengoseg.convert.layers import TRAINING_ONLY_ARGS
from nengoseg.convert.settings import ConversionSettings
from nengoseg.errors import ConversionError, DataError

KERAS_MODEL_FILE = "keras_model.h5"
SETTINGS_FILE = "conversion.json"

# activations a layer may carry: they become no neurons (linear) or ReLU neurons.
SUPPORTED_ACTIVATIONS = (None, tf.keras.activations.linear, tf.keras.activations.relu, tf.nn.relu)
FOLDABLE = (tf.keras.layers.Conv2D, tf.keras.layers.Conv2DTranspose, tf.keras.layers.Dense)
DROPPED_OUTPUT_ACTIVATIONS = ("sigmoid",)


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
    """

    network: nengo.Network
    input_node: nengo.Node
    output_probe: nengo.Probe
    neuron_probes: dict
    settings: ConversionSettings
    keras_model: tf.keras.Model
    converter: nengo_dl.Converter

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
        A layer cannot be converted (names the layer, its class and why), or the
        scales do not fit the model.
    ConfigError
        A setting is not allowed.
    """
    settings = _as_settings(settings)
    model, output_activation = prepare_model(keras_model)
    factors = _normalisation_factors(model, settings, calibration_data)
    scales = _scales(settings, factors)
    converter = _build(model, settings, scales)
    neurons = _neuron_layers(model, converter)
    _check_scaled_layers(scales, neurons, model)
    _check_normalisable(settings, neurons)
    if settings.spiking:
        _swap_to_spiking(model, neurons, settings.neuron_model)

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
    )


def _as_settings(settings):
    if settings is None:
        return ConversionSettings()
    if isinstance(settings, dict):
        return ConversionSettings.from_dict(settings)
    settings.validate()
    return settings


# ---------------------------------------------------------------- Keras model preparation


def prepare_model(keras_model):
    """Rebuild ``keras_model`` ready for conversion; returns ``(model, output_activation)``.

    The new model computes the same function as ``keras_model`` except that a
    sigmoid on the output layer is removed (``output_activation="sigmoid"``; the
    readout applies it). Changes, all made on the model's config:

    - BatchNormalization directly after a Conv2D, Conv2DTranspose or Dense layer
      with linear activation, channels last, that feeds nothing else, is folded into
      that layer's kernel and bias: ``s = gamma / sqrt(var + eps)``,
      ``kernel *= s`` (per output channel), ``bias = s * (bias - mean) + beta``.
      Any other BatchNormalization is frozen (``trainable=False``) and converted by
      nengo-dl as a fixed per-channel affine map.
    - Regularisers and constraints are dropped (Keras-training only).

    Nested models and layers applied more than once are refused (ConversionError).
    """
    model = _functional(keras_model)
    config = copy.deepcopy(model.get_config())
    entries = {entry["name"]: entry for entry in config["layers"]}
    _refuse_nested_and_shared(model, entries)
    for entry in config["layers"]:
        for key in TRAINING_ONLY_ARGS:
            if entry["config"].get(key) is not None:
                entry["config"][key] = None

    output_activation = _drop_output_activation(config, entries)
    folds = {}
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        producer = _foldable_producer(model, layer, config)
        if producer is None:
            entries[layer.name]["config"]["trainable"] = False
        else:
            folds[producer.name] = _folded_weights(producer, layer)
            entries[producer.name]["config"]["use_bias"] = True
            _bypass(config, layer.name)

    custom_objects = {tf.keras.utils.get_registered_name(type(l)): type(l) for l in model.layers}
    prepared = tf.keras.Model.from_config(config, custom_objects=custom_objects)
    for layer in prepared.layers:
        if layer.weights:
            weights = folds.get(layer.name) or model.get_layer(layer.name).get_weights()
            layer.set_weights(weights)
    return prepared, output_activation


def _functional(keras_model):
    if isinstance(keras_model, tf.keras.Sequential):
        if not keras_model.built or keras_model.inputs is None:
            raise ConversionError(
                f"Sequential model '{keras_model.name}' has no input shape; "
                "give its first layer input_shape=... or start it with tf.keras.Input"
            )
        keras_model = tf.keras.Model(keras_model.inputs, keras_model.outputs, name=keras_model.name)
    if not isinstance(keras_model, nengo_dl.compat.Functional):
        raise ConversionError(
            f"model '{keras_model.name}' ({type(keras_model).__name__}) is a subclassed Keras "
            "model; only functional and Sequential models can be converted"
        )
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise ConversionError(
            f"model '{keras_model.name}' has {len(keras_model.inputs)} inputs and "
            f"{len(keras_model.outputs)} outputs; nengoseg converts models with one of each"
        )
    return keras_model


def _refuse_nested_and_shared(model, entries):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            raise ConversionError(
                f"layer '{layer.name}' ({type(layer).__name__}) is a nested Keras model; "
                "build the model from layers only (no sub-models) to convert it"
            )
        if len(entries[layer.name]["inbound_nodes"]) > 1:
            raise ConversionError(
                f"layer '{layer.name}' ({type(layer).__name__}) is applied more than once "
                "(shared weights); nengoseg converts models whose layers are used once"
            )


def _drop_output_activation(config, entries):
    """Remove a sigmoid from the output layer; return the removed activation or "linear"."""
    name = config["output_layers"][0][0]
    layer_config = entries[name]["config"]
    activation = layer_config.get("activation")
    if activation not in DROPPED_OUTPUT_ACTIVATIONS:
        return "linear"
    if entries[name]["class_name"] == "Activation":
        _bypass(config, name)
    else:
        layer_config["activation"] = "linear"
    return activation


def _consumers(config, name):
    """How many times the output of layer ``name`` is used (by layers or as model output)."""
    uses = sum(
        ref[0] == name
        for entry in config["layers"]
        for node in entry["inbound_nodes"]
        for ref in node
    )
    return uses + sum(ref[0] == name for ref in config["output_layers"])


def _foldable_producer(model, bn, config):
    """The layer ``bn`` can be folded into, or None."""
    producer = bn.inbound_nodes[0].inbound_layers
    foldable = (
        type(producer) in FOLDABLE
        and producer.activation is tf.keras.activations.linear
        and getattr(producer, "data_format", "channels_last") == "channels_last"
        and list(bn.axis) == [len(bn.input_shape) - 1]
        and _consumers(config, producer.name) == 1
    )
    return producer if foldable else None


def _folded_weights(producer, bn):
    """Kernel and bias of ``producer`` with ``bn`` (inference statistics) folded in."""
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    shift = beta - scale * bn.moving_mean.numpy()
    kernel = producer.kernel.numpy()
    bias = producer.bias.numpy() if producer.use_bias else 0.0
    if isinstance(producer, tf.keras.layers.Conv2DTranspose):
        kernel = kernel * scale[:, None]  # (kh, kw, out, in)
    else:
        kernel = kernel * scale  # (..., in, out)
    return [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]


def _bypass(config, name):
    """Remove layer ``name`` from a functional config, wiring its input to its users."""
    entry = next(e for e in config["layers"] if e["name"] == name)
    source = entry["inbound_nodes"][0][0]
    config["layers"].remove(entry)
    for other in config["layers"]:
        for node in other["inbound_nodes"]:
            for i, ref in enumerate(node):
                if ref[0] == name:
                    node[i] = [*source[:3], *ref[3:]]
    config["output_layers"] = [
        source[:3] if ref[0] == name else ref for ref in config["output_layers"]
    ]


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


def _normalisation_factors(model, settings, calibration_data):
    """Percentile factors per neuron layer: measured on ``calibration_data``, or recorded."""
    if settings.normalise is None:
        return {}
    if calibration_data is None:
        if not settings.normalisation_factors:
            raise ConversionError(
                "normalise='percentile' needs calibration_data (a few dozen inputs), or "
                "the normalisation_factors recorded by an earlier conversion"
            )
        return dict(settings.normalisation_factors)
    data = np.asarray(calibration_data, np.float32)
    if data.shape[1:] != tuple(model.input_shape[1:]) or len(data) == 0:
        raise DataError(
            f"calibration_data of shape {data.shape} does not fit model '{model.name}', "
            f"which takes (n, {', '.join(map(str, model.input_shape[1:]))}) with n >= 1"
        )
    rate_settings = dataclasses.replace(settings, spiking=False)
    names = list(_neuron_layers(model, _build(model, rate_settings, {})))
    return percentile_activations(model, names, data, settings.percentile)


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
                f"normalise='percentile' needs ReLU neurons, but layer '{name}' makes "
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


def _swap_to_spiking(model, neurons, neuron_model):
    """Replace each layer's rate neurons by the spiking kind ``neuron_model`` makes of them
    (`nengoseg.neuron_kinds.converted_kind`), with the same amplitude and time constants."""
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
        obj.ensemble.neuron_type = kind.make(rate)


def _neuron_type_names(neurons):
    return {name: type(obj.ensemble.neuron_type).__name__ for name, obj in neurons.items()}


# ---------------------------------------------------------------- save and load


def installed_versions():
    """Versions of the packages that decide what a conversion builds."""
    return {
        "nengoseg": nengoseg.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "nengo": nengo.__version__,
        "nengo-dl": nengo_dl.__version__,
        "numpy": np.__version__,
    }


def save_conversion(path, keras_model, settings):
    """Write ``<path>/keras_model.h5`` and ``<path>/conversion.json``, each atomically.

    Pass the original Keras model and ``converted.settings`` (the resolved
    settings): `load_conversion` then gives back what `convert` needs to rebuild the
    same network, with no calibration data.
    """
    path = Path(path)
    with atomic_path(path / KERAS_MODEL_FILE) as tmp:
        keras_model.save(tmp, save_format="h5", include_optimizer=False)
    record = {"keras_model": KERAS_MODEL_FILE, "settings": settings.to_dict()}
    write_json(path / SETTINGS_FILE, record)


def load_conversion(path):
    """Read what `save_conversion` wrote: ``(keras_model, settings)``.

    Rebuild the network with ``convert(keras_model, settings)``. Warns when the
    installed package versions differ from the recorded ones. A missing, damaged
    (truncated, not UTF-8, not a JSON object) or inconsistent conversion.json (a key
    missing, of the wrong type, or a setting not allowed), and a Keras model file
    that is missing or cannot be read, are DataErrors naming the file (and the key).
    """
    path = Path(path)
    record_file = path / SETTINGS_FILE
    if not record_file.is_file():
        raise DataError(f"{record_file}: no conversion record (written by save_conversion)")
    record = _read_conversion_record(record_file)
    model_file = path / record.get("keras_model", KERAS_MODEL_FILE)
    settings = record["settings"]
    if not model_file.is_file():
        raise DataError(f"{model_file}: the Keras model of {record_file} is missing")
    changed = {
        name: (version, installed_versions().get(name))
        for name, version in settings.versions.items()
        if installed_versions().get(name) != version
    }
    if changed:
        warnings.warn(
            f"{record_file} was written with other package versions "
            f"(recorded, installed): {changed}"
        )
    try:
        keras_model = tf.keras.models.load_model(model_file, compile=False)
    except Exception as err:  # h5py and Keras on a truncated or damaged file (OSError,
        # RuntimeError, ValueError, KeyError, ...): the message keeps their words
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise DataError(
            f"{model_file}: cannot read the Keras model of {record_file} ({reason}); "
            "a truncated or damaged file: redo the conversion"
        ) from None
    return keras_model, settings


def _read_conversion_record(record_file):
    """conversion.json checked: ``keras_model`` a file name, ``settings`` valid settings
    (as a ConversionSettings); a DataError naming the file and the key otherwise."""
    from nengoseg.atomic import read_json
    from nengoseg.errors import ConfigError

    try:
        record = read_json(record_file, "conversion record")
    except RecursionError:
        raise DataError(f"{record_file}: the conversion record is nested too deeply") from None
    model_name = record.get("keras_model", KERAS_MODEL_FILE)
    if not (isinstance(model_name, str) and model_name and Path(model_name).name == model_name
            and model_name not in (".", "..")):
        raise DataError(
            f"{record_file}: bad value {model_name!r:.60} for 'keras_model' in the conversion "
            f"record (allowed: a file name beside it, e.g. {KERAS_MODEL_FILE!r})"
        )
    if "settings" not in record:
        raise DataError(f"{record_file}: the conversion record has no 'settings'")
    data = record["settings"]
    if not isinstance(data, dict):
        raise DataError(
            f"{record_file}: bad value {data!r:.60} for 'settings' in the conversion record "
            "(allowed: a mapping of conversion settings)"
        )
    recorded = {  # recorded by convert: key -> what each value must be
        "neuron_types": (str, "layer name: neuron type name"),
        "layer_scales": ((int, float), "layer name: number"),
        "versions": ((str, type(None)), "package: version"),
    }
    for key, (kinds, allowed) in recorded.items():
        value = data.get(key, {})
        bad = [k for k, v in value.items() if not isinstance(v, kinds) or isinstance(v, bool)] \
            if isinstance(value, dict) else [None]
        if bad:
            where = f"settings.{key}" + (f"[{bad[0]!r}]" if bad[0] is not None else "")
            raise DataError(
                f"{record_file}: bad value in '{where}' of the conversion record "
                f"(allowed: a mapping of {allowed})"
            )
    try:
        settings = ConversionSettings.from_dict(data)
    except (ConfigError, TypeError) as err:
        raise DataError(f"{record_file}: bad conversion record: settings: {err}") from None
    return {"keras_model": model_name, "settings": settings}
