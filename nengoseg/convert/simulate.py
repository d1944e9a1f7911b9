"""Run a converted network (`run_snn`) or its Keras model (`run_ann`) and read the output.

Both return an `SNNResult` of the same shape, so the same metrics score them.

Readout (`read_out`): ``outputs`` is the output layer averaged over the last
``settings.window()`` steps (the ANN's output as it is). Segmentation:
``readout = sigmoid(outputs)``, ``masks = readout > threshold``. Regression:
``readout`` is ``outputs`` passed through the output activation the conversion
moved into the readout (``settings.output_activation``), ``masks`` is None.

Firing rates: a spiking neuron's output is ``amplitude / dt`` at a spike and 0
otherwise, so its time-average is ``amplitude * rate``; a rate neuron outputs
``amplitude * rate`` directly. In both cases ``rate_hz = mean(output) / amplitude``,
where ``amplitude`` is the ensemble's (nengo-dl divides it by the layer's
``scale_firing_rates``). `run_snn` averages this over neurons, steps and inputs.
"""

import dataclasses
from typing import Optional

import nengo_dl
import numpy as np
from tqdm.auto import tqdm

from nengoseg.convert.coding import encode_inputs
from nengoseg.convert.settings import check_int
from nengoseg.errors import DataError


@dataclasses.dataclass
class SNNResult:
    """What a run produced, one entry per input.

    outputs : numpy.ndarray
        ``(n, *output_shape)``: the output layer (logits for segmentation),
        averaged over the readout window for the SNN.
    readout : numpy.ndarray
        ``(n, *output_shape)``: probabilities (segmentation) or values (regression).
    masks : numpy.ndarray or None
        ``readout > threshold`` (segmentation); None for regression.
    firing_rates_hz : dict of {str: float}
        Average firing rate of each neuron layer, in Hz (empty for the ANN).
    outputs_by_steps : dict of {int: numpy.ndarray} or None
        SNN only: ``outputs`` as a shorter run of ``k`` steps would have read them
        (the readout window of ``k`` steps, ending at step ``k``), for the step
        counts of `step_checkpoints`; the Dice-against-steps figure uses them.
    """

    outputs: np.ndarray
    readout: np.ndarray
    masks: Optional[np.ndarray]
    firing_rates_hz: dict
    outputs_by_steps: Optional[dict] = None


def step_checkpoints(n_steps, count=10):
    """The step counts at which `run_snn` also reads the output: about ``count``, up to ``n_steps``."""
    return sorted({max(1, int(round(n_steps * (i + 1) / count))) for i in range(count)})


def outputs_over_time(series, settings, steps):
    """``{k: readout window of the first k steps}`` of an output time series ``(n, T, ...)``."""
    return {k: series[:, k - settings.window(k) : k].mean(axis=1) for k in steps}


def run_snn(converted, x, n_steps=None, minibatch_size=16, progress=True):
    """Simulate ``converted`` on inputs ``x`` in NengoDL, ``minibatch_size`` inputs at a time.

    Parameters
    ----------
    converted : ConvertedNetwork
    x : array_like
        Inputs ``(n, *input_shape)``, coded as ``converted.settings.input_coding``.
    n_steps : int or None
        Time steps per input; None: ``settings.n_steps``.
    minibatch_size : int
        Inputs simulated together. Every neuron layer is probed at every step, so
        memory grows with ``minibatch_size * n_steps * neurons``.
    progress : bool
        Show NengoDL's build bars and a tqdm bar of the inputs simulated, with the
        time left (on stderr, where it is a terminal).

    Returns
    -------
    SNNResult
    """
    settings = converted.settings
    n_steps = settings.n_steps if n_steps is None else n_steps
    window = settings.window(n_steps)
    x = _check_inputs(converted, x)
    check_int("minibatch_size", minibatch_size, low=1)
    batch = min(minibatch_size, len(x))
    rng = np.random.default_rng(settings.seed)
    outputs = []
    steps = step_checkpoints(n_steps)
    by_steps = {k: [] for k in steps}
    spikes = {name: 0.0 for name in converted.neuron_probes}
    simulator = nengo_dl.Simulator(
        converted.network,
        dt=settings.dt,
        minibatch_size=batch,
        seed=settings.seed,
        progress_bar=progress,
    )
    bar = tqdm(total=len(x), desc=f"SNN ({n_steps} steps)", unit="input", leave=False,
               disable=None if progress else True, dynamic_ncols=True)
    with simulator as sim, bar:
        for first in range(0, len(x), batch):
            real = x[first : first + batch]
            coded = encode_inputs(
                real, n_steps, settings.input_coding, settings.dt, settings.input_rate_hz, rng
            )
            data = sim.predict_on_batch({converted.input_node: _pad(coded, batch)})
            series = data[converted.output_probe][: len(real)]
            outputs.append(series[:, -window:].mean(axis=1))
            for k, early in outputs_over_time(series, settings, steps).items():
                by_steps[k].append(early)
            for name, probe in converted.neuron_probes.items():
                amplitude = probe.target.ensemble.neuron_type.amplitude
                spikes[name] += data[probe][: len(real)].mean(axis=(1, 2)).sum() / amplitude
            bar.update(len(real))
    rates = {name: float(total / len(x)) for name, total in spikes.items()}
    shape = (len(x),) + converted.output_shape
    outputs = np.concatenate(outputs).reshape(shape)
    result = read_out(outputs, settings, rates)
    result.outputs_by_steps = {k: np.concatenate(v).reshape(shape) for k, v in by_steps.items()}
    return result


def run_ann(converted, x, minibatch_size=32):
    """Run the Keras model that was converted (``converted.keras_model``) on ``x``.

    It is the original model with BatchNormalization folded and the output
    activation moved into the readout, so `read_out` treats it like the SNN. It
    keeps max pooling even where the SNN averages (``max_to_avg_pool``): this is
    the ANN as trained, and its QCFS activations (``converted.ann_model``).
    """
    x = _check_inputs(converted, x)
    model = converted.keras_model if converted.ann_model is None else converted.ann_model
    outputs = model.predict(x, batch_size=minibatch_size, verbose=0)
    return read_out(outputs, converted.settings, {})


def read_out(outputs, settings, firing_rates_hz):
    """Turn averaged outputs into an `SNNResult` (see the module docstring)."""
    outputs = np.asarray(outputs, np.float32)
    if settings.readout == "segmentation":
        readout = _sigmoid(outputs)
        return SNNResult(outputs, readout, readout > settings.threshold, firing_rates_hz)
    readout = _sigmoid(outputs) if settings.output_activation == "sigmoid" else outputs
    return SNNResult(outputs, readout, None, firing_rates_hz)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def _check_inputs(converted, x):
    x = np.asarray(x, np.float32)
    if x.shape[1:] != converted.input_shape or len(x) == 0:
        raise DataError(
            f"inputs of shape {x.shape} do not fit the network, which takes "
            f"(n, {', '.join(map(str, converted.input_shape))}) with n >= 1"
        )
    return x


def _pad(coded, batch):
    """Pad the last, short minibatch with zeros (NengoDL needs full minibatches)."""
    missing = batch - len(coded)
    if not missing:
        return coded
    return np.concatenate([coded, np.zeros((missing,) + coded.shape[1:], coded.dtype)])
