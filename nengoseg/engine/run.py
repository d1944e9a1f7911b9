"""Build, run and train the engine: `build_engine`, `run_engine`, `engine_training_model`."""

import numpy as np
from tqdm.auto import tqdm

from nengoseg.convert.coding import encode_inputs
from nengoseg.convert.settings import check_int
from nengoseg.convert.simulate import outputs_over_time, read_out, step_checkpoints
from nengoseg.engine.model import CHUNK_IMAGES, SpikingEngine
from nengoseg.engine.plan import EnginePlan, make_plan
from nengoseg.errors import DataError


def _plan(keras_model, settings, plan, converted, calibration_data):
    if plan is not None:
        return plan
    return make_plan(keras_model, settings, converted=converted, calibration_data=calibration_data)


def build_engine(keras_model, settings=None, training=False, rate_outputs=False, n_steps=None,
                 inputs="coded", sequences=False, converted=None, plan=None,
                 calibration_data=None, chunk_images=CHUNK_IMAGES):
    """A `SpikingEngine` (Keras model) simulating ``keras_model`` converted with ``settings``.

    Parameters
    ----------
    keras_model : tf.keras.Model
        The Keras model (as given to ``nengoseg.convert.convert``).
    settings : ConversionSettings or dict or None
        The conversion settings (neurons, scales, synapse, dt, coding, readout, seed).
    training : bool
        Hybrid neurons for co-training (see `SpikingEngine`).
    rate_outputs : bool
        (training) also output per-neuron firing rates per layer.
    n_steps : int or None
        Steps per input; None: ``settings.n_steps``.
    inputs : "coded" or "images"
        What the model takes (see `SpikingEngine`).
    sequences : bool
        (inference) also output the output layer at every step.
    converted : ConvertedNetwork or None
        An existing conversion of this model and these settings (skips converting).
    plan : EnginePlan or None
        An existing plan (skips everything above but ``n_steps`` and the modes).
    calibration_data : array_like or None
        For ``normalise="percentile"`` without recorded factors.
    chunk_images : int or None
        (inference) steps are simulated in chunks of about this many images (see
        `SpikingEngine`); None: all at once.
    """
    plan = _plan(keras_model, settings, plan, converted, calibration_data)
    n_steps = plan.settings.n_steps if n_steps is None else n_steps
    check_int("n_steps", n_steps, low=1)
    return SpikingEngine(plan, n_steps, training=training, inputs=inputs,
                         rate_outputs=rate_outputs, sequences=sequences, chunk_images=chunk_images)


def engine_training_model(keras_model, settings=None, n_steps=None, rate_outputs=False,
                          converted=None, plan=None, calibration_data=None):
    """A Keras model ``images -> readout logits`` (and per-layer rates) for co-training.

    Takes images ``(batch, H, W, C)`` (coded inside, as ``settings.input_coding``)
    and outputs the output layer averaged over the readout window
    (``settings.window(n_steps)``): the logits the SNN's readout uses. Spikes
    forward, rate-neuron gradients backward; the voltage carries across steps.
    Its trainable weights are the Keras model's own (``model.plan.keras_model``;
    that is ``keras_model`` itself unless BatchNormalization had to be folded), so
    after ``fit`` save that Keras model and convert it as usual.

    With ``rate_outputs=True`` the output is a dict: ``"readout"`` and
    ``"rate_<layer>"`` ``(batch, n_neurons)`` in Hz, for firing-rate regularisation
    (losses keyed by those names in ``compile``).
    """
    return build_engine(keras_model, settings, training=True, rate_outputs=rate_outputs,
                        n_steps=n_steps, inputs="images", converted=converted, plan=plan,
                        calibration_data=calibration_data)


def run_engine(keras_model, settings=None, x=None, minibatch_size=16, n_steps=None,
               progress=True, converted=None, plan=None, calibration_data=None,
               return_counts=False, chunk_images=CHUNK_IMAGES):
    """Simulate the converted network on ``x`` with the engine; the same result as `run_snn`.

    Inputs are coded exactly as `nengoseg.convert.run_snn` codes them (the same
    numpy generator, seeded with ``settings.seed``, drawing minibatch after
    minibatch of ``minibatch_size``), so with the same ``minibatch_size`` both see
    the same input spikes. Constant coding feeds the images themselves (the engine
    repeats them over time without recomputing the first layers).

    Returns
    -------
    SNNResult
        Averaged outputs, readout, masks, per-layer firing rates in Hz, and the
        outputs after fewer steps (``outputs_by_steps``), as `run_snn` gives them.
        With ``return_counts=True``: ``(result, counts)``, ``counts`` mapping each
        neuron layer to its per-neuron spike counts ``(n, n_neurons)`` over all
        steps (spiking neurons; rate neurons give their output integrated over time
        in units of spikes).

    ``progress``: a tqdm bar of the inputs done, with the time left, on stderr where
    stderr is a terminal (nothing otherwise).

    ``chunk_images``: the steps are simulated in chunks of about this many images
    (steps x minibatch), see `SpikingEngine`; None: all steps at once.
    """
    plan = _plan(keras_model, settings, plan, converted, calibration_data)
    settings = plan.settings
    n_steps = settings.n_steps if n_steps is None else n_steps
    check_int("n_steps", n_steps, low=1)
    check_int("minibatch_size", minibatch_size, low=1)
    x = _check_inputs(plan, x)
    constant = settings.input_coding == "constant"
    engine = build_engine(None, plan=plan, n_steps=n_steps,
                          inputs="images" if constant else "coded", sequences=True,
                          chunk_images=chunk_images)
    steps = step_checkpoints(n_steps)
    by_steps = {k: [] for k in steps}
    batch = min(minibatch_size, len(x))
    rng = np.random.default_rng(settings.seed)
    outputs = []
    rate_sums = {name: 0.0 for name in plan.neuron_layers}
    counts = {name: [] for name in plan.neuron_layers}
    with tqdm(total=len(x), desc=f"engine ({n_steps} steps)", unit="input", leave=False,
              disable=None if progress else True, dynamic_ncols=True) as bar:
        for first in range(0, len(x), batch):
            real = x[first : first + batch]
            if constant:
                data = real
            else:
                data = encode_inputs(real, n_steps, settings.input_coding, settings.dt,
                                     settings.input_rate_hz, rng)
            result = engine.predict_on_batch(data)
            outputs.append(np.asarray(result["readout"]))
            series = np.asarray(result["steps"])
            for k, early in outputs_over_time(series, settings, steps).items():
                by_steps[k].append(early)
            for name in rate_sums:
                rates = np.asarray(result[f"rate_{name}"], np.float64)
                rate_sums[name] += rates.mean(axis=1).sum()
                if return_counts:
                    integral = rates * (n_steps * settings.dt)
                    spiking = plan.neuron_layers[name].spiking
                    counts[name].append(np.rint(integral) if spiking else integral)
            bar.update(len(real))
    rates = {name: float(total / len(x)) for name, total in rate_sums.items()}
    outputs = np.concatenate(outputs).reshape((len(x),) + plan.output_shape)
    snn = read_out(outputs, settings, rates)
    shape = (len(x),) + plan.output_shape
    snn.outputs_by_steps = {k: np.concatenate(v).reshape(shape) for k, v in by_steps.items()}
    if return_counts:
        return snn, {name: np.concatenate(c) for name, c in counts.items()}
    return snn


def _check_inputs(plan, x):
    x = np.asarray(x, np.float32)
    if x.ndim < 1 or x.shape[1:] != plan.input_shape or len(x) == 0:
        raise DataError(
            f"inputs of shape {x.shape} do not fit the network, which takes "
            f"(n, {', '.join(map(str, plan.input_shape))}) with n >= 1"
        )
    return x


__all__ = ["EnginePlan", "build_engine", "engine_training_model", "run_engine"]
