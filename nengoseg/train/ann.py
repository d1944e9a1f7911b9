"""The ANN stage: train the Keras network that later becomes a spiking network.

Adam, ReduceLROnPlateau and early stopping from Keras, a checkpoint after every
epoch (see :mod:`nengoseg.train.checkpoints`), and resume: running the stage
again on the same run folder continues from the last finished epoch, and a
finished stage is not trained again.

Files in ``RUN/ann/``: ``checkpoint/`` (latest epoch), ``best.weights.h5``
(lowest monitored loss), ``model.h5`` (the best model, loadable with
``tf.keras.models.load_model(path, compile=False)``), ``history.json``.
"""

from pathlib import Path

import tensorflow as tf

from nengoseg import evaluate, losses, metrics, models
from nengoseg.atomic import atomic_path, write_json
from nengoseg.results import read_results, update_results
from nengoseg.train import checkpoints

STAGE = "ann"


def stage_dir(run_dir):
    return Path(run_dir) / STAGE


def model_path(run_dir):
    return stage_dir(run_dir) / "model.h5"


def build(cfg, data):
    """The Keras model of a config, compiled with its loss, optimizer and metric."""
    model = models.build_model(
        cfg["model"]["kind"],
        data.input_shape,
        **{"seed": cfg["seed"], **_output_option(cfg, data), **cfg["model"]["options"]},
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(cfg["train"]["learning_rate"]),
        loss=make_loss(cfg["train"], data.n_outputs),
        metrics=[_progress_metric(data)],
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


def _progress_metric(data):
    if data.task == "boxes":
        return metrics.MeanIoUBoxes(name="iou")
    return metrics.DiceMetric(name="dice")


def train_ann(cfg, run_dir, data, verbose=True):
    """Train (or resume, or reuse) the ANN of ``cfg`` in ``run_dir``; return its results."""
    folder = stage_dir(run_dir)
    done = read_results(run_dir)["stages"].get(STAGE)
    if done is not None and model_path(run_dir).exists():
        if verbose:
            print(f"ann: reusing the trained model in {model_path(run_dir)}")
        return done

    tcfg = cfg["train"]
    model = build(cfg, data)
    state = checkpoints.restore(folder / "checkpoint", model, model.optimizer)
    start_epoch = state["epochs_done"] if state else 0
    if verbose:
        print(
            f"ann: {cfg['model']['kind']} with {model.count_params():,} weights; "
            f"{len(data.train)} training, {len(data.val)} validation, {len(data.test)} test examples"
        )
        if state:
            print(f"ann: resuming after epoch {start_epoch} from {folder / 'checkpoint'}")

    monitor = tcfg["monitor"] if len(data.val) else "loss"
    steering = [
        tf.keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            factor=tcfg["reduce_lr_factor"],
            patience=tcfg["reduce_lr_patience"],
            min_lr=tcfg["min_lr"],
        )
    ]
    if tcfg["early_stopping_patience"]:
        steering.append(
            tf.keras.callbacks.EarlyStopping(monitor=monitor, patience=tcfg["early_stopping_patience"])
        )
    saver = checkpoints.EpochCheckpoint(
        folder / "checkpoint", folder / "best.weights.h5", monitor, steering, state
    )
    callbacks = steering + [saver] + ([checkpoints.Progress(tcfg["epochs"])] if verbose else [])

    if not (state and state.get("finished")) and start_epoch < tcfg["epochs"]:
        # a different but reproducible shuffle after a resume
        tf.keras.utils.set_random_seed(cfg["seed"] + start_epoch)
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
        checkpoints.mark_finished(folder / "checkpoint")
    state = checkpoints.read_state(folder / "checkpoint")

    if (folder / "best.weights.h5").exists():
        model.load_weights(str(folder / "best.weights.h5"))
    with atomic_path(model_path(run_dir)) as tmp:
        model.save(str(tmp), include_optimizer=False, save_format="h5")
    write_json(folder / "history.json", state["history"])

    results = {
        "model": cfg["model"]["kind"],
        "n_weights": int(model.count_params()),
        "epochs_run": state["epochs_done"],
        "best_epoch": state.get("best_epoch"),
        "train_seconds": round(state["train_seconds"], 1),
        "seconds_per_epoch": round(state["train_seconds"] / max(1, state["epochs_done"]), 2),
        "test": score_model(model, data.test, data.task, tcfg["batch_size"]),
    }
    if len(data.val):
        results["val"] = score_model(model, data.val, data.task, tcfg["batch_size"])
    update_results(run_dir, STAGE, results)
    if verbose:
        print("ann: " + evaluate.summary_line("test", results["test"]))
    return results


def score_model(model, part, task, batch_size):
    predictions = model.predict(part.x, batch_size=batch_size, verbose=0)
    return evaluate.score(task, predictions, part)
