"""The ANN stage: train the Keras network that later becomes a spiking network.

Adam, ReduceLROnPlateau and early stopping from Keras, a checkpoint after every
epoch (see :mod:`nengoseg.train.checkpoints`), and resume: running the stage
again on the same run folder continues from the last finished epoch, and a
finished stage is not trained again.

While training, ``RUN/work/ann/`` holds ``checkpoint/`` (latest epoch) and
``best.weights.h5`` (lowest monitored loss). When training ends, ``RUN/ann/`` is
swapped in whole: ``model.h5`` (the best model, loadable with
``tf.keras.models.load_model(path, compile=False)``), ``best.weights.h5``,
``history.json`` and ``stage.json`` (scores and provenance).
"""

import shutil

import numpy as np
import tensorflow as tf

from nengoseg import evaluate, losses, metrics, models, rundir
from nengoseg.atomic import write_json
from nengoseg.determinism import seed_everything
from nengoseg.rundir import model_path  # noqa: F401  (the ANN's path, for callers)
from nengoseg.train import checkpoints, guards
from nengoseg.train.guards import TrainingCollapsed

STAGE = "ann"


def build(cfg, data, learning_rate=None):
    """The Keras model of a config, compiled with its loss, optimizer and metric."""
    model = models.build_model(
        cfg["model"]["kind"],
        data.input_shape,
        **{"seed": cfg["seed"], **_output_option(cfg, data), **cfg["model"]["options"]},
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate or cfg["train"]["learning_rate"]),
        loss=make_loss(cfg["train"], data.n_outputs),
        metrics=[metrics.task_metric(data.task)],
    )
    return model


def make_loss(train_cfg, n_outputs):
    name = train_cfg["loss"]
    options = {}
    if name == "bce_dice":
        options = {"bce_weight": train_cfg["bce_weight"], "dice_weight": train_cfg["dice_weight"]}
    if name in ("bce", "dice", "bce_dice") and n_outputs > 1:
        options["n_classes"] = n_outputs
    return losses.get_loss(name, **options)


def _output_option(cfg, data):
    if cfg["model"]["kind"] == "locnet":
        return {"n_outputs": data.n_outputs}
    return {"n_classes": data.n_outputs}


def train_ann(cfg, run_dir, data, verbose=True, force=False):
    """Train (or resume, or reuse) the ANN of ``cfg`` in ``run_dir``; return its results.

    A finished ANN is reused when it was trained with the same config sections
    and data (`nengoseg.rundir`); otherwise `StageChanged` names what changed,
    unless ``force`` retrains it. A run that collapses (a dead network) restarts
    from a new initialisation with half the learning rate, at most
    ``MAX_ATTEMPTS`` times, then stops with `TrainingCollapsed`.
    """
    prov = rundir.provenance(cfg, STAGE, rundir.data_fingerprint(data))
    if rundir.check_current(run_dir, STAGE, prov, force) == "current":
        if verbose:
            print(f"ann: reusing the trained model in {model_path(run_dir)}")
        return rundir.read_record(run_dir, STAGE)["results"][STAGE]

    work = rundir.prepare_work(run_dir, STAGE, prov)
    attempts = guards.read_attempts(work)
    while True:
        attempt = len(attempts)
        model, state, collapse = _fit_attempt(cfg, data, work, attempt, verbose)
        if collapse is None:
            break
        attempts.append({"seed": _attempt_seed(cfg, attempt),
                         "learning_rate": _attempt_lr(cfg, attempt), "collapse": collapse})
        if len(attempts) >= MAX_ATTEMPTS:
            tried = ", ".join(f"seed {a['seed']} lr {a['learning_rate']:g}" for a in attempts)
            raise TrainingCollapsed(
                f"ann: training collapsed in {len(attempts)} attempts ({tried}): {collapse}; "
                "try train.loss=bce_dice, a lower train.learning_rate or train.warmup_epochs: 1"
            )
        if verbose:
            print(f"ann: training collapsed ({collapse}); restarting from a new initialisation "
                  f"with learning rate {_attempt_lr(cfg, attempt + 1):g}", flush=True)
        guards.restart(work, attempts)

    results = {
        "model": cfg["model"]["kind"],
        "n_weights": int(model.count_params()),
        "epochs_run": state["epochs_done"],
        "best_epoch": state.get("best_epoch"),
        "train_seconds": round(state["train_seconds"], 1),
        "seconds_per_epoch": round(state["train_seconds"] / max(1, state["epochs_done"]), 2),
        "attempts": attempts + [{"seed": _attempt_seed(cfg, len(attempts)),
                                 "learning_rate": _attempt_lr(cfg, len(attempts)),
                                 "collapse": None}],
        "test": score_model(model, data.test, data.task, cfg["train"]["batch_size"]),
    }
    if len(data.val):
        results["val"] = score_model(model, data.val, data.task, cfg["train"]["batch_size"])
    with rundir.writing_stage(run_dir, STAGE, prov) as new:
        model.save(str(new.path / "model.h5"), include_optimizer=False, save_format="h5")
        if (work / "best.weights.h5").exists():
            shutil.copyfile(work / "best.weights.h5", new.path / "best.weights.h5")
        write_json(new.path / "history.json", state["history"])
        new.results[STAGE] = results
    if verbose:
        print("ann: " + evaluate.summary_line("test", results["test"]))
    return results


MAX_ATTEMPTS = 3


def _attempt_seed(cfg, attempt):
    return cfg["seed"] + 1000 * attempt


def _attempt_lr(cfg, attempt):
    return cfg["train"]["learning_rate"] * 0.5 ** attempt


def _fit_attempt(cfg, data, work, attempt, verbose):
    """Train (or resume) one attempt; ``(model, state, collapse sentence or None)``."""
    tcfg = cfg["train"]
    seed_everything(_attempt_seed(cfg, attempt))
    model = build(dict(cfg, seed=_attempt_seed(cfg, attempt)), data,
                  learning_rate=_attempt_lr(cfg, attempt))
    state = checkpoints.read_state(work / "checkpoint")  # the saver restores it in fit
    start_epoch = state["epochs_done"] if state else 0
    if verbose:
        print(
            f"ann: {cfg['model']['kind']} with {model.count_params():,} weights; "
            f"{len(data.train)} training, {len(data.val)} validation, {len(data.test)} test examples"
        )
        if state:
            print(f"ann: resuming after epoch {start_epoch} from {work / 'checkpoint'}")

    monitor = tcfg["monitor"] if len(data.val) else "loss"
    steering = checkpoints.steering(tcfg, monitor)
    probe_part = data.val if len(data.val) else data.train
    probe_x = probe_part.x[np.unique(np.linspace(0, len(probe_part) - 1, 32).astype(int))]
    logits = data.task == "segmentation"
    guard_metric = {"segmentation": "dice", "boxes": "iou", "denoising": "mae"}[data.task]
    guard = guards.CollapseGuard(probe_x, guard_metric, logits=logits)
    saver = checkpoints.EpochCheckpoint(
        work / "checkpoint", work / "best.weights.h5", monitor, steering, state
    )
    callbacks = steering + [guard, saver]
    if tcfg["warmup_epochs"] and start_epoch < tcfg["warmup_epochs"]:
        batches = -(-len(data.train) // tcfg["batch_size"])
        callbacks.insert(0, guards.Warmup((tcfg["warmup_epochs"] - start_epoch) * batches))
    if verbose:
        callbacks.append(checkpoints.Progress(tcfg["epochs"]))

    if not (state and state.get("finished")) and start_epoch < tcfg["epochs"]:
        # a different but reproducible shuffle after a resume
        tf.keras.utils.set_random_seed(_attempt_seed(cfg, attempt) + start_epoch)
        model.fit(
            data.train.x,
            data.train.y,
            batch_size=tcfg["batch_size"],
            epochs=tcfg["epochs"],
            initial_epoch=start_epoch,
            validation_data=(data.val.x, data.val.y) if len(data.val) else None,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
        if guard.collapse is not None:
            return model, None, guard.collapse
        checkpoints.mark_finished(work / "checkpoint")
    state = checkpoints.read_state(work / "checkpoint")
    if (work / "best.weights.h5").exists():
        model.load_weights(str(work / "best.weights.h5"))
    # never pass a dead network on, even one that early stopping kept
    outputs = model.predict(probe_x, verbose=0)
    quality = score_model(model, data.val if len(data.val) else data.train, data.task,
                          tcfg["batch_size"])
    metric = quality.get("dice_2d_mean", quality.get("iou_mean", quality.get("psnr_mean")))
    if guards.is_dead(outputs, metric, logits=logits):
        return model, None, f"the best weights give a constant output (score {metric})"
    return model, state, None


def score_model(model, part, task, batch_size):
    predictions = model.predict(part.x, batch_size=batch_size, verbose=0)
    return evaluate.score(task, predictions, part)


def adopt_model(cfg, run_dir, data, keras_model, verbose=False):
    """Make a Keras model trained elsewhere the ANN stage of ``run_dir``.

    It is recorded as if trained with ``cfg`` on ``data`` (the later stages check
    that provenance) and scored on the test part like a trained one.
    """
    prov = rundir.provenance(cfg, STAGE, rundir.data_fingerprint(data))
    results = {
        "model": cfg["model"]["kind"],
        "n_weights": int(keras_model.count_params()),
        "adopted": True,
        "test": score_model(keras_model, data.test, data.task, cfg["train"]["batch_size"]),
    }
    with rundir.writing_stage(run_dir, STAGE, prov) as new:
        keras_model.save(str(new.path / "model.h5"), include_optimizer=False, save_format="h5")
        new.results[STAGE] = results
    if verbose:
        print("ann: adopted " + evaluate.summary_line("test", results["test"]))
    return results
