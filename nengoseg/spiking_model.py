"""The Python API: a Keras model in, a `SpikingModel` out, with Keras' verbs.

::

    import nengoseg as ns

    snn = ns.convert(my_unet, neuron_model="loihi", normalise="percentile", n_steps=16,
                     calibration_data=x_train[:256])
    snn.summary()
    snn.compile(loss=ns.losses.DiceLoss(), rate_target_hz=100)
    history = snn.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=4)
    probs = snn.predict(x_test)            # the engine; "nengo-dl" | "loihi-sim" | "loihi" | "ann"
    scores = snn.evaluate(x_test, y_test, groups=subject_ids)
    snn.save("my_snn/"); snn = ns.load("my_snn/")

Arrays in, arrays out: no config and no run folder. The pipeline stages (and so the
CLI) are thin wrappers over this API that add the run folder: ``nengoseg convert``
is `convert` then `SpikingModel.run` and `SpikingModel.save`; ``nengoseg cotrain`` is
`load` then `SpikingModel.fit` with the stage's Keras callbacks (schedule, early
stopping, a checkpoint per epoch to resume from); ``nengoseg deploy`` is
`nengoseg.loihi.compile` then ``chip.run``; ``nengoseg evaluate`` is `load` then
`SpikingModel.run`.

A `SpikingModel` is a Keras model and the `ConversionSettings` that turn it into the
spiking network (`convert` resolves the firing-rate scales once, so the pair rebuilds
the same network without calibration data); it is what a conversion folder holds
(`save`, `load`). Fine-tuning (`fit`) trains the spiking network on a simulator and
writes the trained weights back into that Keras model. Backend names are those of
`nengoseg.backends`: ``"ann"``, ``"engine"`` (the default spiking simulator),
``"nengo-dl"`` and ``"loihi"`` (nengo-loihi's emulator, ``target="sim"``, or the
board, ``target="loihi"``; ``"loihi-sim"`` names the emulator alone; see
`nengoseg.loihi.compile` to build it once for many runs).

Progress: ``verbose=0`` (the default) is quiet; ``verbose=1`` shows tqdm bars (which
render in Jupyter) and one line per training epoch.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from nengoseg import backends, evaluate, losses
from nengoseg import convert as nsconvert
from nengoseg.errors import ConfigError, ConversionError, DataError
from nengoseg.experiment_data import Part

FIT_METHODS = ("hybrid", "bptt", "spiking_flow")
# nengo-loihi's emulator by name: "loihi" with target="sim"
LOIHI_SIM = "loihi-sim"
# the readout -> the task nengoseg.evaluate scores
_TASKS = {"segmentation": "segmentation", "regression": "boxes", "noise_map": "denoising"}


def convert(model, calibration_data=None, custom_objects=None, settings=None, **options):
    """Convert a Keras model to a `SpikingModel` (``nengoseg.convert(...)``).

    Parameters
    ----------
    model : tf.keras.Model or path
        A functional or Sequential model with one input and one output (or a
        ``.h5`` / ``.keras`` file of one). BatchNormalization is folded, an output
        sigmoid or softmax moves into the readout; the model itself is not changed.
    calibration_data : array_like or None
        Inputs ``(n, H, W, C)`` for ``normalise="percentile"`` (a few dozen
        representative images).
    custom_objects : dict or None
        Custom Keras layers or functions of a model file (as for
        ``tf.keras.models.load_model``).
    settings : ConversionSettings or dict or None
        A whole set of settings; ``options`` override single fields.
    **options
        Fields of `nengoseg.convert.ConversionSettings`, e.g. ``neuron_model="loihi"``,
        ``normalise="percentile"``, ``n_steps=16``, ``synapse="delay"``.

    Raises
    ------
    ConversionError
        Before any work: every layer that cannot be converted, each with its reason.
    ConfigError
        A setting that is not allowed (names it and what is).
    """
    keras_model = _keras_model(model, custom_objects)
    if isinstance(settings, nsconvert.ConversionSettings):
        settings = settings.to_dict()
    merged = {**(settings or {}), **options}
    conversion = nsconvert.ConversionSettings.from_dict(merged)
    network = nsconvert.convert(keras_model, conversion, calibration_data=calibration_data)
    return SpikingModel(keras_model, network.settings, network=network)


def load(path, custom_objects=None):
    """The `SpikingModel` of a conversion folder (`SpikingModel.save`, ``nengoseg convert``,
    ``nengoseg cotrain``: ``RUN/snn/``, ``RUN/hybrid/``)."""
    from nengoseg import description

    keras_model, settings = nsconvert.load_conversion(path, custom_objects=custom_objects)
    model = SpikingModel(keras_model, settings)
    if (Path(path) / description.DESCRIPTION_FILE).is_file():
        # what the Loihi rewrite builds from, without building the NengoDL network first
        model._description = description.load(path)
    return model


def _keras_model(model, custom_objects):
    if isinstance(model, tf.keras.Model):
        return model
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise DataError(f"{path}: no such Keras model file")
        try:
            return tf.keras.models.load_model(path, compile=False, custom_objects=custom_objects)
        except (OSError, ValueError, TypeError) as err:
            raise DataError(f"{path}: not a readable Keras model ({' '.join(str(err).split())}); "
                            "custom layers go in custom_objects={name: class}") from None
    raise DataError(f"model must be a tf.keras.Model or the path of a Keras model file, "
                    f"not {type(model).__name__}")


@dataclasses.dataclass
class _Compiled:
    optimizer: object
    loss: object
    metrics: list
    rate_target_hz: object
    rate_weight_output: float
    rate_weight_hidden: float


class SpikingModel:
    """A spiking network made from a Keras model (see the module docstring).

    Attributes
    ----------
    keras_model : tf.keras.Model
        The model the network is built from (after `fit`: with the trained weights).
    settings : nengoseg.convert.ConversionSettings
        The resolved conversion settings (scales, neuron types, versions recorded).
    history : tf.keras.callbacks.History or None
        The last `fit`'s.
    """

    def __init__(self, keras_model, settings, network=None):
        self.keras_model = keras_model
        self.settings = settings
        self.history = None
        self.trained_outputs = None
        self._network = network
        self._description = None
        self._compiled = None

    # ------------------------------------------------------------ what it is

    @property
    def network(self):
        """The `nengoseg.convert.ConvertedNetwork` (Nengo objects), built on first use."""
        if self._network is None:
            self._network = nsconvert.convert(self.keras_model, self.settings)
        return self._network

    @property
    def description(self):
        """The `nengoseg.description.NetworkDescription` every backend builds from
        (a loaded folder's own, else the network's)."""
        if self._description is not None:
            return self._description
        return self.network.description

    @property
    def task(self):
        """What `evaluate` scores: ``"segmentation"``, ``"boxes"`` (regression readout) or
        ``"denoising"`` (noise-map readout)."""
        return _TASKS[self.settings.readout]

    @property
    def input_shape(self):
        return self.network.input_shape

    @property
    def output_shape(self):
        return self.network.output_shape

    def summary(self, print_fn=print):
        """Print (or hand ``print_fn``) one line per layer: operation, output shape, neuron
        kind, firing-rate scale, and whether it can go on Loihi (or why not)."""
        from nengoseg import neuron_kinds
        from nengoseg.convert.settings import SYNAPSE_NAMES

        s = self.settings
        description = self.description
        synapse = {v: k for k, v in SYNAPSE_NAMES.items()}.get(s.synapse, s.synapse)
        lines = [
            f"Spiking model '{description.name}': {s.neuron_model} neurons, {s.n_steps} steps of "
            f"{s.dt * 1e3:g} ms, synapse {synapse}, input {s.input_coding}, readout "
            f"{s.readout} over {s.window()} steps, normalise {s.normalise}",
            f"{'layer':<28} {'operation':<18} {'output shape':<16} {'neurons':<22} "
            f"{'scale':>9}  on Loihi",
        ]
        total = 0
        for layer in description.layers:
            shape = "x".join(map(str, layer.shape))
            neurons, scale, chip = "-", "", ""
            if layer.neurons is not None:
                n = int(np.prod(layer.shape))
                total += n
                kind = neuron_kinds.named(layer.neurons.kind)
                neurons = f"{n:,} {kind.name}"
                scale = f"{layer.neurons.gain:9.3g}"
                chip = "yes" if kind.on_chip is not None else f"no: {kind.off_chip}"
            lines.append(f"{layer.name:<28} {layer.op:<18} {shape:<16} {neurons:<22} "
                         f"{scale:>9}  {chip}")
        lines.append(f"{total:,} neurons in {len(description.neuron_layers)} layers; neuron "
                     f"depth {description.neuron_depth()}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------ training

    def compile(self, optimizer="adam", loss=None, metrics=None, rate_target_hz=None,
                rate_weight_output=1.0, rate_weight_hidden=0.01):
        """Set up `fit`, as Keras' ``compile``.

        ``optimizer``: a Keras optimizer or its name (a fresh copy is made for each
        `fit`). ``loss``: on the output layer's logits averaged over the readout window
        (`nengoseg.losses`; default: binary or softmax cross-entropy for segmentation,
        mean squared error for a regression readout). ``metrics``: Keras metrics on the
        same readout (default: Dice, or box IoU). ``rate_target_hz``: firing-rate
        regularisation, each neuron layer pulled towards that rate with weight
        ``rate_weight_output`` (the last neuron layer) or ``rate_weight_hidden``.
        """
        if loss is None:
            loss = self._default_loss()
        elif isinstance(loss, str):
            loss = losses.get_loss(loss)
        if metrics is None:
            from nengoseg.train.cotrain_fit import task_metric

            metrics = [task_metric(self.task)]
        self._compiled = _Compiled(optimizer, loss, list(metrics), rate_target_hz,
                                   float(rate_weight_output), float(rate_weight_hidden))

    def _default_loss(self):
        if self.task == "boxes":
            return losses.get_loss("mse")
        if self.task == "denoising":
            return losses.get_loss("mae")  # the Spiking-UNet paper's eq. 12
        n_classes = int(self.output_shape[-1])
        return losses.get_loss("bce", **({"n_classes": n_classes} if n_classes > 1 else {}))

    def fit(self, x, y, validation_data=None, epochs=1, batch_size=16, method="hybrid",
            backend="engine", n_steps=None, max_examples=None, callbacks=None, initial_epoch=0,
            surrogate_alpha=1.0, seed=0, check_inputs=None, verbose=0):
        """Fine-tune the spiking network; returns the Keras ``History``.

        ``method``: ``"hybrid"`` (spikes forward, rate-neuron gradients backward),
        ``"bptt"`` (backpropagation through time with the triangle surrogate of height
        ``surrogate_alpha``; engine only, the neuron kinds with a surrogate step,
        `nengoseg.neuron_kinds.surrogate_kinds`) or ``"spiking_flow"`` (Spiking-UNet:
        the spiking run, then one gradient pass on the accumulated flows; engine only,
        `nengoseg.engine.flow`).
        ``backend``: the simulator that trains, ``"engine"`` or ``"nengo-dl"``.
        ``n_steps``: steps per training example (default: the conversion's).
        ``max_examples``: training examples per epoch (a new random subset each epoch).
        ``callbacks``: Keras callbacks (``EarlyStopping``, ``ReduceLROnPlateau``,
        ``BackupAndRestore`` to resume an interrupted fit, ...); their ``monitor`` keys
        are ``loss``, ``task_loss``, the metric names and ``rate_hz``, with ``val_`` in
        front for the validation data. ``initial_epoch``: the epoch to start from (with
        the callbacks that restore a checkpoint; ``epochs`` counts from 0). The trained
        weights replace those of `keras_model` when the fit ends (after the callbacks'
        ``on_train_end``, which may put back the best epoch's).

        ``check_inputs`` (at most ``batch_size`` inputs): the trained network, as it
        ran in training and before its weights are written back, is run on them over
        the conversion's steps; ``trained_outputs`` then holds ``(inputs, outputs)``
        (the output layer, averaged over the readout window), against which the
        rebuilt network (`run`) can be checked.
        """
        from nengoseg.train.cotrain_fit import Batches, _Progress, compile_cotraining
        from nengoseg.train.cotrain_network import (
            _check_weights,
            export_model,
            hybrid_network,
            make_trainable,
        )

        if method not in FIT_METHODS:
            raise ConfigError(f"method={method!r} is not allowed; allowed: "
                              f"{', '.join(map(repr, FIT_METHODS))}")
        backend = backends.resolve(backend, backends.SIMULATORS, "backend")
        x, y = self._arrays(x, y, "fit")
        validation = None
        if validation_data is not None:
            validation = self._arrays(*validation_data, "fit validation_data")
        if self._compiled is None:
            self.compile()
        compiled = self._compiled
        n_steps = int(n_steps or self.settings.n_steps)
        self.settings.window(n_steps)  # ConfigError for a bad n_steps

        hybrid = hybrid_network(self.keras_model, self.settings)
        batch_size = min(int(batch_size), len(x), int(max_examples or len(x)))
        trainable = make_trainable(backend, hybrid, batch_size, method, surrogate_alpha)
        try:
            summary = compile_cotraining(
                trainable, compiled.loss, compiled.metrics[0], n_steps, None,
                compiled.rate_target_hz, compiled.rate_weight_output,
                compiled.rate_weight_hidden, optimizer=_fresh_optimizer(compiled.optimizer),
                extra_metrics=compiled.metrics[1:])
            train = Batches(trainable, x, y, n_steps, True, seed, initial_epoch, max_examples)
            val = None
            if validation is not None:
                val = Batches(trainable, *validation, n_steps, False, seed, 0, max_examples)
            callback_list = [summary] + list(callbacks or [])
            if verbose:
                keys = ["loss", "task_loss", *(m.name for m in compiled.metrics), "rate_hz"]
                callback_list.append(_Progress(epochs, keys + ["val_" + k for k in keys] + ["lr"]))
            tf.keras.utils.set_random_seed(seed + initial_epoch)
            self.history = trainable.fit(train, val, epochs, initial_epoch, callback_list)
            if check_inputs is not None:
                self.trained_outputs = self._trained_outputs(trainable, check_inputs)
            weights = trainable.trained_weights()
            _check_weights(hybrid.keras_model, weights)
            self.keras_model = export_model(hybrid.keras_model, weights,
                                            self.settings.output_activation)
            self.settings = hybrid.settings  # a fine-tuned network is a spiking one
            self._network = self._description = None
        finally:
            trainable.close()
        return self.history

    def _trained_outputs(self, trainable, x):
        x = self._inputs(x, "fit check_inputs")
        batch = trainable.minibatch_size
        if len(x) > batch:
            raise DataError(f"fit: {len(x)} check_inputs; at most batch_size={batch}")
        s = self.settings
        coded = nsconvert.encode_inputs(x, s.n_steps, s.input_coding, s.dt, s.input_rate_hz,
                                        np.random.default_rng(s.seed))
        padding = np.zeros((batch - len(x),) + coded.shape[1:], coded.dtype)
        out = np.asarray(trainable.predict(np.concatenate([coded, padding])))[: len(x)]
        out = out.reshape(len(x), s.n_steps, -1)[:, -s.window():].mean(axis=1)
        return x, out

    # ------------------------------------------------------------ inference

    def run(self, x, backend="engine", n_steps=None, batch_size=16, target="sim", verbose=0):
        """Run on ``x`` and return everything the run gives: a `nengoseg.convert.SNNResult`
        (``outputs`` logits, ``readout`` probabilities or values, ``masks``,
        ``firing_rates_hz``), or a `nengoseg.loihi.run.LoihiResult` on ``"loihi"``
        (``"loihi-sim"`` is ``"loihi"`` with ``target="sim"``)."""
        if backend == LOIHI_SIM:
            backend, target = "loihi", "sim"
        backend = backends.resolve(backend, (*backends.CHOICES, LOIHI_SIM), "backend")
        x = self._inputs(x, "predict")
        if backend == "ann":
            return nsconvert.run_ann(self.network, x, minibatch_size=batch_size)
        if backend == "loihi":
            from nengoseg.loihi.chip import compile_model

            return compile_model(self, target=target, verbose=verbose).run(x, n_steps=n_steps)
        return backends.simulate(backend, self.network, x, batch_size, n_steps, bool(verbose))

    def predict(self, x, backend="engine", n_steps=None, batch_size=16, target="sim", verbose=0):
        """Probabilities (segmentation: per pixel, after the output sigmoid or softmax) or
        values (regression), one per input, as a NumPy array (see `run`)."""
        return self.run(x, backend, n_steps, batch_size, target, verbose).readout

    def evaluate(self, x, y=None, groups=None, backend="engine", n_steps=None, batch_size=16,
                 target="sim", verbose=0):
        """Scores as the pipeline reports them, as a plain dict.

        ``x``: inputs with their targets ``y``, or an experiment part
        (`nengoseg.experiment_data.Part`, e.g. ``load_experiment_data(cfg).test``), which
        brings its groups, its region of interest (DRIVE's field of view) and its image
        layout (denoising test images scored whole).
        Segmentation: ``dice_2d_mean`` / ``_std`` (per slice), ``dice_3d_mean`` / ``_std``
        (per volume: the slices of each value of ``groups``; None: all inputs form one
        volume), ``f1``, ``jaccard``, ``pixel_accuracy``, ``dice_3d_per_subject``;
        boxes: ``iou_mean`` / ``_std``; denoising: ``psnr_mean``, ``ssim_mean`` and per
        noise level. Spiking backends add ``firing_rates_hz`` (per layer) and
        ``mean_firing_rate_hz``. ``backend`` names what ran.
        """
        part = x if isinstance(x, Part) else None
        if part is not None:
            x, y, groups = part.x, part.y, part.groups
        elif y is None:
            raise DataError("evaluate: the targets y are missing; give x and y, or an "
                            "experiment Part (nengoseg.experiment_data.Part)")
        x, y, groups = self._scored_arrays(x, y, groups, "evaluate")
        result = self.run(x, backend, n_steps, batch_size, target, verbose)
        return self._scores(result, x, y, groups, backend, part)

    def _scored_arrays(self, x, y, groups, where):
        x, y = self._arrays(x, y, where)
        groups = np.zeros(len(x), int) if groups is None else np.asarray(groups)
        if groups.shape != (len(x),):
            raise DataError(f"{where}: groups has shape {groups.shape}; it needs one entry per "
                            f"input ({len(x)},)")
        return x, y, groups

    def _scores(self, result, x, y, groups, backend, part=None):
        """The scores of run ``result`` on ``(x, y)`` or ``part`` (what the pipeline's
        stages report)."""
        if part is None:
            part = Part(x, y, groups, np.zeros(len(x), int))
        payload = evaluate.run_scores(self.task, result, part, self.network)
        scores = dict(payload["scores"])
        for key in ("firing_rates_hz", "mean_firing_rate_hz"):
            if key in payload:
                scores[key] = payload[key]
        scores["backend"] = backends.resolve(backend, backends.CHOICES)
        return scores

    # ------------------------------------------------------------ files

    def save(self, path):
        """Write the conversion folder (``keras_model.h5``, ``conversion.json`` and the
        network description; each file atomically) that `nengoseg.load` reads back, and
        every command of the CLI takes (``--checkpoint``)."""
        nsconvert.save_conversion(path, self.keras_model, self.settings,
                                  _description_or_none(self))
        return Path(path)

    # ------------------------------------------------------------ checks

    def _inputs(self, x, where):
        x = np.asarray(x, np.float32)
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != tuple(self.input_shape) \
                or len(x) == 0:
            raise DataError(f"{where}: inputs of shape {x.shape} do not fit the network, which "
                            f"takes (n, {', '.join(map(str, self.input_shape))}) with n >= 1")
        return x

    def _arrays(self, x, y, where):
        x = self._inputs(x, where)
        y = np.asarray(y, np.float32)
        if len(y) != len(x):
            raise DataError(f"{where}: {len(x)} inputs but {len(y)} targets")
        out = int(np.prod(self.output_shape))
        if int(np.prod(y.shape[1:])) != out and not (self.task == "segmentation"
                                                    and y.shape[1:-1] == self.output_shape[:-1]):
            raise DataError(f"{where}: targets of shape {y.shape} do not fit the network's "
                            f"output (n, {', '.join(map(str, self.output_shape))})")
        return x, y


def _fresh_optimizer(optimizer):
    """A new optimizer for one fit: a Keras optimizer is bound to the variables of the
    first model it trains, and each fit trains a newly built network."""
    if isinstance(optimizer, tf.keras.optimizers.Optimizer):
        return type(optimizer).from_config(optimizer.get_config())
    return tf.keras.optimizers.get(optimizer)


def _description_or_none(model):
    try:
        return model.description
    except ConversionError:  # layers beyond what a description holds: engine/NengoDL only
        return None
