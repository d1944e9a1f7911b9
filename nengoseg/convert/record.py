"""Saving and loading a conversion: what `convert` needs to rebuild a network.

A conversion folder holds ``keras_model.h5`` (`KERAS_MODEL_FILE`, the original
Keras model), ``conversion.json`` (`SETTINGS_FILE`: the resolved
`ConversionSettings`, with the package versions of `installed_versions`) and the
network description (``network.json`` + ``network_weights.npz``,
`nengoseg.description`), which the Loihi backend builds from. `save_conversion`
writes them atomically; `load_conversion` reads and checks the first two and returns
``(keras_model, settings)`` for ``convert(keras_model, settings)``;
``nengoseg.description.load`` reads the description.
"""

import warnings
from pathlib import Path

import keras
import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

import nengoseg
from nengoseg.atomic import atomic_path, read_json, write_json
from nengoseg.convert.settings import ConversionSettings
from nengoseg import description as nsdescription
from nengoseg.convert.describe import describe_conversion
from nengoseg.errors import ConfigError, ConversionError, DataError

KERAS_MODEL_FILE = "keras_model.h5"
SETTINGS_FILE = "conversion.json"


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


def save_conversion(path, keras_model, settings, description=None):
    """Write ``<path>/keras_model.h5``, ``<path>/conversion.json`` and the network
    description, each atomically.

    Pass the original Keras model and ``converted.settings`` (the resolved
    settings): `load_conversion` then gives back what `convert` needs to rebuild the
    same network, with no calibration data. ``description``: the conversion's
    `nengoseg.description.NetworkDescription` (``converted.description``, with the
    initial neuron state); None describes it here (neurons at rest). A model the
    description cannot hold (layers beyond the 2D set Loihi runs) gets none: the
    engine and NengoDL run it, deploying it names the layer.
    """
    path = Path(path)
    with atomic_path(path / KERAS_MODEL_FILE) as tmp:
        keras_model.save(tmp, save_format="h5", include_optimizer=False)
    record = {"keras_model": KERAS_MODEL_FILE, "settings": settings.to_dict()}
    write_json(path / SETTINGS_FILE, record)
    if description is None:
        try:
            description = describe_conversion(keras_model, settings)
        except ConversionError:
            description = None
    if description is not None:
        nsdescription.save(description, path)


def load_conversion(path, custom_objects=None):
    """Read what `save_conversion` wrote: ``(keras_model, settings)``.

    ``custom_objects``: the model's own Keras layers or functions, ``{name: object}``
    (as for ``tf.keras.models.load_model``; nengoseg's ``SoftLIF`` and ``QCFS`` are
    registered already).

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
        keras_model = tf.keras.models.load_model(model_file, compile=False,
                                                 custom_objects=custom_objects)
    except Exception as err:  # h5py and Keras on a truncated or damaged file (OSError,
        # RuntimeError, ValueError, KeyError, ...): the message keeps their words
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise DataError(
            f"{model_file}: cannot read the Keras model of {record_file} ({reason}); "
            "a truncated or damaged file: redo the conversion, or pass the model's own "
            "layers as custom_objects={name: class}"
        ) from None
    return keras_model, settings


def _read_conversion_record(record_file):
    """conversion.json checked: ``keras_model`` a file name, ``settings`` valid settings
    (as a ConversionSettings); a DataError naming the file and the key otherwise."""
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
