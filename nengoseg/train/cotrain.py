"""Hybrid ANN-SNN co-training: spikes forward, rate gradients backward.

The co-training paper (Baltes et al., sections 2.2 and 3.1) trains an ANN,
converts it, then fine-tunes the *spiking* network: every forward pass is an SNN
inference over ``n_steps`` time steps (spike trains through the synapses), every
backward pass uses the gradient of the matching rate neuron. Spiking neurons
become hybrid neurons for this (`nengoseg.neurons`: ReLU -> hybrid rectified
linear, SoftLIF -> hybrid soft LIF with the layer's own smoothing). The loss is
the task loss on the SNN's readout (the output averaged over the readout window,
``settings.window(n_steps)``), plus optional firing-rate regularisation: each
neuron layer's rate is pulled towards ``rate_target_hz`` with weight
``rate_weight_output`` (the last neuron layer) or ``rate_weight_hidden`` (the
others); see `nengoseg.train.snn_losses` and `compile_cotraining`. Adam,
ReduceLROnPlateau and early stopping as in the ANN stage.

``cotrain.method: bptt`` fine-tunes the same way but backpropagates through time
instead of through the rate neurons (the three-stage paper's third stage): the
engine differentiates the whole spiking run, the membrane voltage carried with its
gradient from step to step, each spike's derivative the paper's triangle
surrogate (`nengoseg.engine.dynamics.bptt_layer`). It needs the engine and neuron
kinds with a surrogate step (``convert.neuron_model: if_subtract`` or ``loihi``);
with ``convert.readout_steps`` equal to ``n_steps`` the loss sees the output
accumulated over all steps, as in the paper.

The stage (`cotrain_stage`, what ``nengoseg cotrain`` runs)
-----------------------------------------------------------
1. The network: ``checkpoint`` (a Keras ``.h5`` file, or a conversion folder),
   else ``RUN/snn/`` (the converted SNN of ``nengoseg convert``) if present, else
   ``RUN/ann/model.h5`` converted on the fly with the config's ``convert``
   settings. It is converted spiking (``spiking`` is forced on) and its neurons
   are swapped for hybrid ones (`hybrid_network`).
2. Training (`nengoseg.SpikingModel.fit`, the Python API's, with this stage's
   Keras callbacks), with a checkpoint after every epoch in ``RUN/hybrid/checkpoint/``
   (written atomically: model and optimizer variables, epochs done, history and
   the ReduceLROnPlateau / EarlyStopping counters, see
   `nengoseg.train.checkpoints`) and the best weights so far in
   ``RUN/hybrid/best.weights.h5``. Running the stage again resumes after the
   last finished epoch; a finished stage (results.json has ``hybrid_snn`` and
   ``RUN/hybrid/conversion.json`` exists) is reused. One progress line per epoch
   gives the loss, the task metric (Dice or IoU of the spiking readout) and the
   mean firing rate of the epoch's spiking forward passes (``rate_hz``).
3. The result is a normal conversion folder, ``RUN/hybrid/keras_model.h5`` and
   ``conversion.json`` (`nengoseg.convert.save_conversion`): the co-trained
   weights of the best epoch written back into the Keras layers (`export_model`),
   so that every later stage rebuilds the co-trained SNN with
   ``convert(*load_conversion(RUN/hybrid))`` (``nengoseg evaluate --checkpoint
   RUN/hybrid``, the Loihi backend, the engine). The stage scores the rebuilt
   network on the evaluation examples with the simulator of ``evaluate.engine``
   (as ``nengoseg convert`` scores the converted SNN), checks that the rebuilt
   network, in the kind of simulator that was trained, reproduces the trained one
   on one minibatch (``export_check_max_abs_diff``, 0 when exact), and writes
   results stage ``hybrid_snn`` (scores, per-layer firing rates, ``engine`` the
   scoring simulator, ``cotrain_engine``, epochs run, seconds per epoch, ...) and
   the predictions (``predictions/hybrid_snn.npz``).

CLI wiring (``nengoseg cotrain --config FILE [--checkpoint PATH] [--run-dir DIR]``)::

    def cmd_cotrain(args):
        cfg, run_dir = _config_and_run_dir(args)
        _quiet_tensorflow()
        from nengoseg.experiment_data import load_experiment_data
        from nengoseg.report import write_report
        from nengoseg.train.cotrain import cotrain_stage

        data = load_experiment_data(cfg)
        cotrain_stage(cfg, run_dir, data, checkpoint=args.checkpoint)
        print(write_report(run_dir))
        print(f"results: {run_dir / 'results.json'}, co-trained SNN: {run_dir / 'hybrid'}")

Modules
-------
The stage is here; its parts are in `nengoseg.train.cotrain_network` (the
engines, ``cotrain.engine``, that train the network: `make_trainable`; the
hybrid conversion, `hybrid_network`; the export, `export_model`) and
`nengoseg.train.cotrain_fit` (coded minibatches, `Batches`; losses, metrics and
compiling, `compile_cotraining`; progress lines). Those names can also be
imported from here.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from nengoseg import evaluate, rundir, spiking_model
from nengoseg.atomic import write_json
from nengoseg.determinism import seed_everything
from nengoseg.convert.record import SETTINGS_FILE
from nengoseg.errors import ConfigError, DataError
from nengoseg.predictions import save_examples
from nengoseg.train import checkpoints
from nengoseg.train.cotrain_fit import Batches, compile_cotraining, task_metric  # noqa: F401
from nengoseg.train.cotrain_network import (  # noqa: F401  (importable from here)
    _engine_factory,
    export_model,
    hybrid_network,
    make_trainable,
)
from nengoseg.train.trainable import TrainableSNN  # noqa: F401  (the engines' interface)

STAGE = "hybrid_snn"
_METHODS = {"hybrid": "hybrid training (rate gradients)",
            "bptt": "BPTT (triangle surrogate through time)",
            "spiking_flow": "spiking flow (gradients once, from the accumulated flows)"}


def stage_dir(run_dir):
    return rundir.stage_dir(run_dir, "cotrain")


# ---------------------------------------------------------------- the network


def _source_model(cfg, run_dir, data, checkpoint):
    """``(SpikingModel, description of its source)`` for the stage."""
    from nengoseg.snn_stage import conversion_settings, load_keras

    path = Path(checkpoint) if checkpoint else None
    snn_dir = rundir.stage_dir(run_dir, "convert")
    if path is not None and path.is_dir():
        return spiking_model.load(path), f"conversion {path}"
    if path is None and (snn_dir / SETTINGS_FILE).is_file():
        return spiking_model.load(snn_dir), f"conversion {snn_dir}"
    path = path or rundir.model_path(run_dir)
    settings = conversion_settings(cfg, data.task)
    calibration = None
    if settings.normalise is not None:
        calibration = data.train.x[: cfg["evaluate"]["calibration_examples"]]
    model = spiking_model.convert(load_keras(path), calibration, settings=settings)
    return model, f"ANN {path} (converted)"


# ---------------------------------------------------------------- the stage


def cotrain_stage(cfg, run_dir, data, checkpoint=None, verbose=True, force=False):
    """Co-train (or resume, or reuse) the SNN of ``cfg`` in ``run_dir``; return its results.

    The training is `nengoseg.SpikingModel.fit` with the config's settings and this
    stage's callbacks (learning-rate schedule, early stopping, the checkpoint of
    every epoch and the best weights).

    Parameters
    ----------
    cfg : dict
        A resolved config (`nengoseg.config.load_config`); its ``cotrain``,
        ``convert``, ``train`` (loss) and ``evaluate`` sections are used.
    run_dir : path
    data : nengoseg.experiment_data.ExperimentData
    checkpoint : path or None
        A Keras ``.h5`` ANN or a conversion folder to start from (default:
        ``RUN/snn/`` if present, else ``RUN/ann/model.h5``).
    verbose : bool
        Progress lines on stdout.
    force : bool
        Redo a finished stage that was made with other settings (else `StageChanged`).

    Returns
    -------
    dict
        The ``hybrid_snn`` entry written to results.json.
    """
    from nengoseg.snn_stage import evaluation_part
    from nengoseg.train.ann import make_loss

    run_dir = Path(run_dir)
    prov = rundir.provenance(cfg, "cotrain", rundir.data_fingerprint(data),
                             _source_inputs(run_dir, checkpoint))
    if rundir.check_current(run_dir, "cotrain", prov, force) == "current":
        if verbose:
            print(f"cotrain: reusing the co-trained SNN in {stage_dir(run_dir)}")
        return rundir.read_record(run_dir, "cotrain")["results"][STAGE]
    folder = rundir.prepare_work(run_dir, "cotrain", prov)
    seed_everything(cfg["seed"])

    ccfg = cfg["cotrain"]
    _engine_factory(ccfg["engine"])  # fail early on an engine that is not there
    if len(data.train) == 0:
        raise ConfigError("cotrain: the training part of the data is empty")
    snn, source = _source_model(cfg, run_dir, data, checkpoint)
    settings = snn.settings
    n_steps = ccfg["n_steps"] or settings.n_steps
    try:
        settings.window(n_steps)
    except ConfigError as err:
        raise ConfigError(f"cotrain.n_steps: {err}") from None
    n_train = len(data.train)
    if ccfg["max_train_examples"] is not None:
        n_train = min(n_train, ccfg["max_train_examples"])
    minibatch = min(ccfg["batch_size"], n_train)

    snn.compile(
        optimizer=tf.keras.optimizers.Adam(ccfg["learning_rate"]),
        loss=make_loss(cfg["train"], data.n_outputs),
        metrics=[task_metric(data.task)],
        rate_target_hz=ccfg["rate_target_hz"],
        rate_weight_output=ccfg["rate_weight_output"],
        rate_weight_hidden=ccfg["rate_weight_hidden"],
    )
    state = checkpoints.read_state(folder / "checkpoint")
    start_epoch = state["epochs_done"] if state else 0
    if verbose:
        _describe(ccfg, snn.settings, source, n_steps, n_train, len(data.train), len(data.val),
                  minibatch)
        if state:
            print(f"cotrain: resuming after epoch {start_epoch} from {folder / 'checkpoint'}")
    if state and state.get("finished"):
        start_epoch = ccfg["epochs"]  # only the checkpoint and best weights are read back
    part = evaluation_part(cfg, data)
    snn.fit(
        data.train.x, data.train.y,
        validation_data=(data.val.x, data.val.y) if len(data.val) else None,
        epochs=ccfg["epochs"],
        batch_size=ccfg["batch_size"],
        method=ccfg["method"],
        backend=ccfg["engine"],
        n_steps=n_steps,
        max_examples=ccfg["max_train_examples"],
        callbacks=_callbacks(ccfg, folder, state, validation=len(data.val) > 0),
        initial_epoch=start_epoch,
        surrogate_alpha=ccfg["surrogate_alpha"],
        seed=cfg["seed"],
        check_inputs=part.x[:minibatch],
        verbose=int(verbose),
    )
    if not (state and state.get("finished")):
        checkpoints.mark_finished(folder / "checkpoint")
    state = checkpoints.read_state(folder / "checkpoint")

    with rundir.writing_stage(run_dir, "cotrain", prov) as new:
        write_json(new.path / "history.json", state["history"])
        snn.save(new.path)
        payload = _score_export(cfg, data, new.path, part, ccfg["engine"], snn.trained_outputs,
                                verbose)
        payload.update(_training_summary(ccfg, state, minibatch, source, n_steps, n_train))
        new.results[STAGE] = payload
    if verbose and payload.get("best_epoch") == 0:
        print(f"cotrain: note: no epoch beat the starting network's validation loss "
              f"({payload['baseline_val_loss']:.4g}); the network it started from is kept")
    if verbose:
        print(
            "hybrid_snn: " + evaluate.summary_line(cfg["evaluate"]["split"], payload["scores"])
            + f"; mean firing rate {payload.get('mean_firing_rate_hz', 0):.1f} Hz"
        )
    return payload


def _describe(ccfg, settings, source, n_steps, n_train, n_all, n_val, minibatch):
    rates = "off" if ccfg["rate_target_hz"] is None else (
        f"{ccfg['rate_target_hz']:g} Hz (weights {ccfg['rate_weight_output']:g} last layer, "
        f"{ccfg['rate_weight_hidden']:g} others)"
    )
    print(
        f"cotrain: {ccfg['engine']} engine, {_METHODS[ccfg['method']]}, SNN from {source}; "
        f"{n_steps} steps per example, "
        f"synapse {settings.synapse}, {n_train} of {n_all} training examples per "
        f"epoch in minibatches of {minibatch}, {n_val} validation; "
        f"rate regularisation {rates}"
    )
    if n_steps != settings.n_steps:
        print(
            f"cotrain: note: training on {n_steps} steps, scoring on the conversion's "
            f"{settings.n_steps}; deep networks with synapses or low firing rates may "
            "behave differently over the two (cotrain.n_steps: null trains on the latter)"
        )


def _callbacks(ccfg, folder, state, validation):
    """The stage's Keras callbacks: learning-rate schedule, early stopping, checkpoints."""
    monitor = ccfg["monitor"] if validation else "loss"
    steering = checkpoints.steering(ccfg, monitor)
    saver = checkpoints.EpochCheckpoint(
        folder / "checkpoint", folder / "best.weights.h5", monitor, steering, state
    )
    return steering + [saver]


def _source_inputs(run_dir, checkpoint):
    """What co-training starts from: a checkpoint, the conversion, or the ANN."""
    if checkpoint:
        path = Path(checkpoint)
        if path.is_dir():
            return {"checkpoint": rundir.file_fingerprint(path / "keras_model.h5")
                    if (path / "keras_model.h5").is_file() else str(path.resolve())}
        if not path.is_file():
            raise DataError(f"{path}: no such Keras model or conversion folder (--checkpoint)")
        return {"checkpoint": rundir.file_fingerprint(path)}
    for name in ("convert", "ann"):
        if rundir.finished(run_dir, name):
            return {name: rundir.stage_id(run_dir, name)}
    raise DataError(f"{run_dir}: nothing to co-train: no conversion and no trained ANN "
                    "(run `nengoseg train-ann` and `nengoseg convert` first, or pass --checkpoint)")


def _score_export(cfg, data, folder, part, trained_engine, trained_outputs, verbose):
    """Score the exported network rebuilt from ``folder``; check it is what was trained."""
    from nengoseg.snn_stage import save_snn_predictions

    # score what every later stage sees: the network rebuilt from the saved folder,
    # in the simulator of evaluate.engine (as the converted SNN was scored)
    rebuilt = spiking_model.load(folder)
    simulator = cfg["evaluate"]["engine"]
    minibatch = cfg["evaluate"]["minibatch_size"]
    result = rebuilt.run(part.x, backend=simulator, batch_size=minibatch, verbose=verbose)
    # the export check runs the rebuilt network in the kind of simulator that was trained
    check_x, trained_out = trained_outputs
    check_simulator = "nengo-dl" if trained_engine == "nengo-dl" else "engine"
    if check_simulator == simulator:
        first = result.outputs[: len(check_x)]
    else:
        first = rebuilt.run(check_x, backend=check_simulator, batch_size=len(check_x)).outputs
    first = np.asarray(first).reshape(len(check_x), -1)
    difference = float(np.max(np.abs(first - trained_out)))
    # NengoDL rebuilds its own training exactly; the engine to float rounding
    tolerance = 0.0 if trained_engine == "nengo-dl" else 1e-5 * max(1.0, float(np.max(np.abs(trained_out))))
    if difference > tolerance and verbose:
        print(f"cotrain: warning: the rebuilt SNN differs from the trained one by up to {difference:g}")

    payload = evaluate.run_scores(data.task, result, part, rebuilt.network)
    payload.update(engine=simulator, export_check_max_abs_diff=difference)
    save_examples(folder, part)
    save_snn_predictions(folder, STAGE, result, part, data.task, rebuilt.settings.threshold)
    return payload


def _training_summary(ccfg, state, minibatch, source, n_steps, n_train):
    epochs_done = state["epochs_done"]
    return dict(
        cotrain_engine=ccfg["engine"],
        cotrain_method=ccfg["method"],
        source=source,
        epochs_run=epochs_done,
        best_epoch=state.get("best_epoch"),
        # the starting network's validation loss (a best_epoch of 0 kept that network)
        baseline_val_loss=(state.get("baseline") or {}).get("val_loss"),
        train_seconds=round(state["train_seconds"], 1),
        seconds_per_epoch=round(state["train_seconds"] / max(1, epochs_done), 2),
        n_steps_train=n_steps,
        minibatch_size=minibatch,
        train_examples_per_epoch=minibatch * max(1, n_train // minibatch),
        learning_rate=ccfg["learning_rate"],
        final_learning_rate=state["history"].get("lr", [ccfg["learning_rate"]])[-1],
        rate_regularisation={
            "target_hz": ccfg["rate_target_hz"],
            "weight_output": ccfg["rate_weight_output"],
            "weight_hidden": ccfg["rate_weight_hidden"],
        },
        history_last={k: v[-1] for k, v in state["history"].items() if v},
    )
