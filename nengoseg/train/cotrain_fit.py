"""What Keras ``fit`` needs to co-train a `TrainableSNN`.

`Batches` (minibatches of coded inputs and targets, coded anew each epoch),
`compile_cotraining` (Adam, the task loss and metric on the SNN's readout,
firing-rate regularisation and firing rates; see `nengoseg.train.snn_losses`),
`task_metric`, `rate_weights`, and the progress lines of an epoch (`_Progress`).
"""

import itertools
import math

import numpy as np
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg import metrics
from nengoseg.train import checkpoints
from nengoseg.train.snn_losses import (
    EpochSummary,
    FiringRate,
    RateRegularisation,
    ReadoutLoss,
    ReadoutMetric,
    probe_target,
)


# ---------------------------------------------------------------- data


class Batches:
    """Minibatches of coded inputs and targets for Keras ``fit``: an endless generator.

    Each pass over the data (an epoch) codes the inputs anew with a generator
    seeded by ``(seed, pass)`` (Poisson spikes differ per epoch, reproducibly,
    also after a resume). Training (``shuffle=True``): a new permutation each
    epoch, at most ``max_examples`` of it, in full minibatches (the rest of the
    permutation waits for another epoch). Validation (``shuffle=False``): the same
    examples (a fixed random subset of ``max_examples``) and the same coding each
    pass, the last minibatch filled up with examples from the start.

    Targets: ``{output_name: y as (batch, 1, prod(output_shape))}`` and a
    ``(batch, 1, 1)`` placeholder for each neuron layer (its losses and metrics
    ignore it).
    """

    def __init__(self, snn, x, y, n_steps, shuffle, seed, first_pass=0, max_examples=None):
        self.snn = snn
        self.x = x
        self.y = y
        self.n_steps = n_steps
        self.shuffle = shuffle
        self.seed = seed
        self.first_pass = first_pass
        self.batch = snn.minibatch_size
        n = len(x) if max_examples is None else min(len(x), max_examples)
        self.n_examples = n
        if shuffle:
            self.steps = max(1, n // self.batch)
            self.fixed = None
        else:
            self.steps = math.ceil(n / self.batch)
            order = np.random.default_rng([seed, 1]).permutation(len(x))[:n]
            self.fixed = np.sort(order) if max_examples is not None else np.arange(n)

    def __len__(self):
        return self.steps

    def __iter__(self):
        for epoch in itertools.count(self.first_pass):
            rng = np.random.default_rng([self.seed, 0 if self.shuffle else 1, epoch if self.shuffle else 0])
            if self.shuffle:
                order = rng.permutation(len(self.x))[: self.n_examples]
            else:
                order = self.fixed
            order = np.resize(order, self.steps * self.batch)
            for step in range(self.steps):
                yield self.batch_at(order[step * self.batch : (step + 1) * self.batch], rng)

    def batch_at(self, index, rng):
        settings = self.snn.converted.settings
        coded = nsconvert.encode_inputs(
            self.x[index], self.n_steps, settings.input_coding, settings.dt,
            settings.input_rate_hz, rng,
        )
        targets = {self.snn.output_name: np.asarray(self.y[index], np.float32).reshape(len(index), 1, -1)}
        for name in self.snn.rate_names.values():
            targets[name] = np.zeros((len(index), 1, 1), np.float32)
        return self.snn.model_inputs(coded), targets


# ---------------------------------------------------------------- losses and metrics


task_metric = metrics.task_metric  # the Keras metric each task's training reports


def rate_weights(layer_names, weight_output, weight_hidden):
    """``{layer: weight}``: ``weight_output`` for the last neuron layer, ``weight_hidden`` else."""
    names = list(layer_names)
    return {name: weight_output if i == len(names) - 1 else weight_hidden for i, name in enumerate(names)}


def compile_cotraining(snn, task_loss, metric, n_steps, learning_rate, rate_target_hz=None,
                       weight_output=1.0, weight_hidden=0.01, optimizer=None, extra_metrics=()):
    """Compile ``snn`` with Adam (or ``optimizer``), the readout loss and metric (and
    ``extra_metrics``), rate regularisation and rates.

    Returns the `EpochSummary` callback that names the results in the logs.
    """
    converted = snn.converted
    window = converted.settings.window(n_steps)
    loss = {snn.output_name: ReadoutLoss(task_loss, window, converted.output_shape)}
    loss_weights = {snn.output_name: 1.0}
    task_metrics = [metric, *extra_metrics]
    metric_list = {snn.output_name: [ReadoutMetric(m, window, converted.output_shape)
                                     for m in task_metrics]}
    weights = rate_weights(converted.neuron_probes, weight_output, weight_hidden)
    sizes = {}
    for layer, probe in converted.neuron_probes.items():
        amplitude = probe.target.ensemble.neuron_type.amplitude
        name = snn.rate_names[layer]
        metric_list[name] = [FiringRate(amplitude)]
        sizes[f"{name}_rate_hz"] = probe.target.ensemble.n_neurons
        if rate_target_hz is not None and weights[layer] > 0:
            loss[name] = RateRegularisation(probe_target(rate_target_hz, amplitude))
            loss_weights[name] = float(weights[layer])
    snn.compile(
        optimizer=optimizer or tf.keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=metric_list,
        loss_weights=loss_weights,
    )
    aliases = {m.name: f"{snn.output_name}_{m.name}" for m in task_metrics}
    aliases["task_loss"] = f"{snn.output_name}_loss"
    return EpochSummary(sizes, aliases)


class _Progress(checkpoints.Progress):
    """`checkpoints.Progress` (tqdm bars on a terminal, one line per epoch always)
    showing only the summary keys (not every layer's rate)."""

    def __init__(self, epochs, keys):
        # stream None: the sys.stdout of each epoch's end, not of now (pytest and
        # notebooks redirect stdout)
        super().__init__(epochs)
        self.keys = keys

    def _metrics(self, logs):
        logs = logs or {}
        return {k: logs[k] for k in self.keys if k in logs}
