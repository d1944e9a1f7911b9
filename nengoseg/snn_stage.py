"""The converted-SNN stage: convert the trained ANN, run it in NengoDL, score both.

``convert_stage`` is what ``nengoseg convert`` does: it reads ``RUN/ann/model.h5``
(or any Keras checkpoint), converts it with the config's ``convert`` settings,
writes ``RUN/snn/`` (the Keras model and ``conversion.json``, enough to rebuild
the same spiking network) and scores the ANN and the SNN on the same held-out
examples. ``evaluate_checkpoint`` scores any ANN file or conversion folder on any
data, for ``nengoseg evaluate``.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from nengoseg import evaluate, rundir, spiking_model
from nengoseg.convert import ConversionSettings
from nengoseg.errors import ConfigError, DataError
from nengoseg.predictions import save_examples, save_predictions
from nengoseg.results import read_results, update_results


def latest_conversion(run_dir):
    """The co-trained SNN of a run if there is one, else the converted SNN."""
    for name in ("cotrain", "convert"):
        if rundir.finished(run_dir, name):
            return rundir.stage_dir(run_dir, name)
    raise DataError(
        f"{run_dir}: no finished conversion in {rundir.stage_dir(run_dir, 'cotrain')} or "
        f"{rundir.stage_dir(run_dir, 'convert')} (run `nengoseg convert` or `nengoseg cotrain` first)"
    )


READOUT_OF_TASK = {"segmentation": "segmentation", "boxes": "regression",
                   "denoising": "noise_map"}


def conversion_settings(cfg, task):
    """The config's ``convert`` section as ConversionSettings (readout set by the task)."""
    options = dict(cfg["convert"])
    options.setdefault("readout", READOUT_OF_TASK[task])
    options.setdefault("seed", cfg["seed"])
    try:
        return ConversionSettings.from_dict(options)
    except ConfigError as err:
        raise ConfigError(f"convert: {err}") from None


def evaluation_part(cfg, data):
    """The examples that SNNs are scored on: the config's split, maybe fewer subjects."""
    ecfg = cfg["evaluate"]
    part = getattr(data, ecfg["split"])
    if len(part) == 0:
        raise ConfigError(f"evaluate.split: the '{ecfg['split']}' part of the data is empty")
    if ecfg["max_subjects"] is not None:
        groups = sorted(set(part.groups.tolist()))[: ecfg["max_subjects"]]
        part = part.select(groups)
    return part


def load_keras(path, input_shape=None):
    """A Keras model file; with ``input_shape``, checked to take inputs of that shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no Keras model at {path} (train one with `nengoseg train-ann`)")
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable Keras model ({' '.join(str(err).split())})") from None
    check_input_shape(model, input_shape, path)
    return model


def check_input_shape(model, input_shape, source):
    """A DataError naming ``source`` when the model cannot take inputs of ``input_shape``."""
    if input_shape is None:
        return
    expected = tuple(model.input_shape[1:])
    if len(expected) != len(input_shape) or any(
            e is not None and e != int(g) for e, g in zip(expected, input_shape)):
        raise DataError(
            f"{source}: the model takes inputs of shape {expected}, the data gives "
            f"{tuple(input_shape)} (data.size / the model's training config differ)"
        )


def convert_stage(cfg, run_dir, data, checkpoint=None, verbose=True, force=False):
    """Convert the ANN of ``run_dir`` (or ``checkpoint``) and score ANN and SNN.

    A finished conversion made with the same settings from the same ANN is reused;
    one made otherwise raises `StageChanged` unless ``force``. Returns the results.
    """
    prov = rundir.provenance(cfg, "convert", rundir.data_fingerprint(data),
                             _source_inputs(run_dir, checkpoint))
    if rundir.check_current(run_dir, "convert", prov, force) == "current":
        if verbose:
            print(f"convert: reusing the conversion in {rundir.stage_dir(run_dir, 'convert')}")
        return read_results(run_dir)

    keras_model = load_keras(checkpoint or rundir.model_path(run_dir), data.input_shape)
    calibration = data.train.x[: cfg["evaluate"]["calibration_examples"]]
    snn = spiking_model.convert(keras_model, calibration, settings=conversion_settings(cfg, data.task))
    part = evaluation_part(cfg, data)
    engine = cfg["evaluate"]["engine"]
    ann = snn.run(part.x, backend="ann", batch_size=32)
    spiking = snn.run(part.x, backend=engine, batch_size=cfg["evaluate"]["minibatch_size"],
                      verbose=verbose)
    converted = snn.network
    with rundir.writing_stage(run_dir, "convert", prov) as new:
        snn.save(new.path)
        new.results["ann_on_snn_examples"] = evaluate.run_scores(data.task, ann, part, converted)
        new.results["converted_snn"] = {**evaluate.run_scores(data.task, spiking, part, converted),
                                        "engine": engine}
        save_examples(new.path, part)
        save_predictions(new.path, "ann_on_snn_examples", ann.outputs)
        save_snn_predictions(new.path, "converted_snn", spiking, part, data.task,
                             converted.settings.threshold)
    if verbose:
        for name, payload in new.results.items():
            print(f"{name}: " + evaluate.summary_line(cfg["evaluate"]["split"], payload["scores"]))
    return read_results(run_dir)


def _source_inputs(run_dir, checkpoint):
    """What the conversion is made from: the run's ANN stage, or a checkpoint file."""
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise DataError(f"no Keras model at {path} (--checkpoint)")
        return {"checkpoint": rundir.file_fingerprint(path)}
    ann_id = rundir.stage_id(run_dir, "ann")
    if ann_id is None:
        raise DataError(f"{run_dir}: no trained ANN in {rundir.stage_dir(run_dir, 'ann')} "
                        "(run `nengoseg train-ann` first, or pass --checkpoint)")
    return {"ann": ann_id}


def save_snn_predictions(folder, stage, result, part, task, threshold):
    """Save a SNN stage's outputs, with its mean 2D Dice after fewer steps when it has them."""
    extra = {}
    if result.outputs_by_steps and task == "segmentation":
        steps = sorted(result.outputs_by_steps)
        extra["steps"] = np.array(steps)
        extra["dice_2d_by_steps"] = np.array(
            [evaluate.score(task, result.outputs_by_steps[k], part, threshold)["dice_2d_mean"]
             for k in steps]
        )
    save_predictions(folder, stage, result.outputs, **extra)


def evaluate_checkpoint(cfg, run_dir, data, engine, checkpoint=None, n_steps=None, verbose=True):
    """Score an ANN file (engine "ann") or a conversion folder (engine "snn": the
    simulator of ``evaluate.engine``; "engine" or "nengo-dl": that simulator).

    The results stage is ``evaluate_ann`` or ``evaluate_snn`` (whatever simulated the
    SNN, recorded under the payload's ``engine`` key).
    """
    part = evaluation_part(cfg, data)
    if engine == "ann":
        keras_model = load_keras(checkpoint or rundir.model_path(run_dir), data.input_shape)
        # the prepared model (BatchNormalization folded) and the readout of the conversion
        snn = spiking_model.SpikingModel(keras_model, conversion_settings(cfg, data.task))
        result = snn.run(part.x, backend="ann", batch_size=32)
    else:
        folder = Path(checkpoint) if checkpoint else rundir.stage_dir(run_dir, "convert")
        snn = spiking_model.load(folder)
        check_input_shape(snn.keras_model, data.input_shape, folder)
        simulator = cfg["evaluate"]["engine"] if engine == "snn" else engine
        result = snn.run(part.x, backend=simulator, n_steps=n_steps,
                         batch_size=cfg["evaluate"]["minibatch_size"], verbose=verbose)
    payload = evaluate.run_scores(data.task, result, part, snn.network)
    payload["engine"] = "ann" if engine == "ann" else simulator
    payload["checkpoint"] = str(checkpoint) if checkpoint else None
    if n_steps:
        payload["n_steps"] = n_steps
    stage = "evaluate_ann" if engine == "ann" else "evaluate_snn"
    update_results(run_dir, stage, payload)
    if verbose:
        print(f"evaluate {payload['engine']}: " + evaluate.summary_line(cfg["evaluate"]["split"], payload["scores"]))
    return payload
