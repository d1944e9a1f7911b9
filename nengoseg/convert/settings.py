"""`ConversionSettings`: every choice the conversion makes, validated, as plain data.

The settings travel beside the Keras weights as ``conversion.json`` (see
`nengoseg.convert.save_conversion`), so that the same spiking network can be
rebuilt from the Keras model file and this record alone. Bad values raise
`nengoseg.errors.ConfigError` naming the key, the value and what is allowed.
"""

import dataclasses
import math
import numbers
from typing import Optional, Union

from nengoseg import neuron_kinds
from nengoseg.convert.skip_factors import SKIP_NORMALISATIONS
from nengoseg.errors import ConfigError

INPUT_CODINGS = ("constant", "poisson")
NORMALISATIONS = (None, "percentile", "qcfs")
READOUTS = ("segmentation", "regression", "noise_map")
# synapse: "delay" -- a Lowpass whose time constant is so far below any step length
# that it decays completely within one step (exp(-dt / tau) underflows to 0 at
# dt = 1 ms, and is below 1e-40 for dt >= 0.1 ms): no filtering, only the synapse's
# one-step delay. nengo-loihi delivers every spike one step late whatever the synapse,
# so this is how NengoDL and the engine simulate what the Loihi emulator and chip run
# without a synapse.
ONE_STEP_DELAY = 1e-6
SYNAPSE_NAMES = {"delay": ONE_STEP_DELAY}


@dataclasses.dataclass
class ConversionSettings:
    """How a Keras model becomes a spiking network, and how that network is run and read.

    Chosen by the user:

    spiking
        True: ReLU -> `nengo.SpikingRectifiedLinear`, SoftLIF -> `nengo.LIF`.
        False: the rate neurons (`nengo.RectifiedLinear`, `nengo_dl.SoftLIFRate`),
        which reproduce the Keras model to float precision (a conversion check).
        The neuron type itself follows from the model's activations (relu or a
        `SoftLIF` layer); ``neuron_types`` records the result per layer.
    neuron_model
        Which spiking neurons (``spiking=True``): ``"nengo"``, Nengo's own
        (`nengo.SpikingRectifiedLinear`, whose voltage keeps what is left over a
        spike and ignores negative input currents; `nengo.LIF`), or ``"loihi"``,
        nengo-loihi's models of the chip's neurons
        (`nengo_loihi.neurons.LoihiSpikingRectifiedLinear`,
        `nengo_loihi.neurons.LoihiLIF`: negative currents lower the voltage, which
        is floored at 0 and reset to 0 at a spike, so inter-spike intervals are
        whole steps; at most one spike per step). A network that will run on
        Loihi should be converted, co-trained and scored with ``"loihi"``: the
        NengoDL simulation then computes what the chip computes. Further models
        come with further neuron kinds (`nengoseg.neuron_kinds.neuron_models`), e.g.
        ``"if_subtract"``: integrate-and-fire with reset by subtraction (ReLU layers).
    scale_firing_rates
        Post-training scaling (nengo-dl): neuron input currents are multiplied by
        the scale and outputs divided by it, so ReLU networks compute the same
        function at higher rates. One number for every neuron layer, or
        ``{layer_name: scale}`` (unlisted layers keep 1). The CAE recipe uses 1000.
    normalise, percentile, target_rate_hz
        ``"percentile"``: data-based layer-wise normalisation (Rueckauer et al.
        2016): each neuron layer's scale maps the ``percentile``-th percentile of
        its positive Keras activations to ``target_rate_hz``. Needs calibration
        data at conversion (or ``normalisation_factors`` recorded by an earlier
        one) and replaces ``scale_firing_rates``, which must then stay 1.
        ReLU networks only. ``target_rate_hz`` may not exceed ``1 / dt`` (one spike
        per step, the Loihi limit). ``"qcfs"``: each layer's factor is its
        `nengoseg.convert.QCFS` layer's learned clipping threshold (no calibration
        data); with ``target_rate_hz = 1 / dt``, ``if_subtract`` neurons,
        ``initial_voltage=0.5`` and ``n_steps`` = the QCFS levels L, the spiking network
        computes the quantised ANN (Bu et al. 2022). Threshold balancing as in the
        three-stage paper is ``"percentile"`` with ``percentile=100`` (the maximum) or
        99.9.
    skip_normalisation
        ``"connection"`` (default): each neuron layer keeps its own factor, so each part
        of a skip concatenation fires at its own scale (Spiking-UNet's connection-wise
        normalisation, which nengoseg's per-layer amplitudes give by construction).
        ``"layer"``: the neuron layers feeding one concatenation share the largest of
        their factors, the paper's layer-wise normalisation, for its ablation (see
        `nengoseg.convert.skip_factors`).
    synapse
        Lowpass time constant (s) on every connection leaving neurons; None = none.
        The papers use 0.005. ``"delay"``: no filtering but a one-step delay on every
        such connection (a Lowpass of `ONE_STEP_DELAY` seconds, which decays fully
        within a step, is recorded), as Loihi delivers spikes to the next layer one
        step late: a network for Loihi trained and scored without a synapse should
        use ``"delay"``, since ``None`` (no delay) is not what the chip runs.
    n_steps, dt
        Time steps each input is presented for, and the step length in seconds.
    input_coding, input_rate_hz
        ``"constant"``: the image is the input current at every step.
        ``"poisson"``: rate-coded spikes; a pixel ``x`` in [-1, 1] fires with
        probability ``|x| * input_rate_hz * dt`` per step, spikes carry the sign of
        ``x`` (binary {0, 1} spikes for [0, 1] images, ternary {-1, 0, 1} for
        zero-mean ones) and have height ``1 / (input_rate_hz * dt)`` so the expected
        input equals ``x`` (see `nengoseg.convert.coding`).
    readout, readout_steps, threshold
        ``"segmentation"``: the output (per-pixel logits) averaged over the last
        ``readout_steps`` steps (None: the last half), then a sigmoid; masks are
        ``probability > threshold``. ``"regression"`` (LocNet boxes): the mean
        output over those steps, with the model's own output activation.
        ``"noise_map"`` (denoising): read as regression, scored as a noise map (the
        Spiking-UNet paper's average membrane potential / accumulated flow over T).
    max_to_avg_pool
        Convert max pooling layers as average pooling (this changes the network).
    initial_voltage
        The voltage every spiking neuron starts from, in thresholds, in [0, 1).
        None: each kind's own (nengo's uniform draw in [0, 1) for rectified linear
        and LIF neurons, 0 for ``if_subtract``). 0.5, half the threshold, halves the
        worst error of a spike count after any number of steps and removes most of
        the start-up delay of deep networks in few steps (Bu et al. 2022, QCFS,
        Theorem 2). nengo-loihi starts every compartment at 0: the Loihi emulator
        and the chip do not apply it.
    thresholds
        The thresholds of multi-threshold neurons (``neuron_model="multi_threshold"``,
        Spiking-UNet eq. 4-6), in units of the layer threshold, strictly decreasing;
        None: the paper's 2, 1, 0.5, 0.25. Other neuron models have one threshold.
    seed
        Seeds the network build (initial neuron voltages), the NengoDL simulator
        and the Poisson spike generator, so runs repeat exactly. None: random.

    Recorded by `nengoseg.convert.convert` (leave empty; a loaded record keeps them):
    ``output_activation`` (the activation moved from the output layer into the
    readout), ``neuron_types``, ``layer_scales`` (the final scale of every neuron
    layer), ``normalisation_factors`` (each layer's percentile activation; reused
    when rebuilding without calibration data) and ``versions``.
    """

    spiking: bool = True
    neuron_model: str = "nengo"
    scale_firing_rates: Union[float, dict] = 1.0
    normalise: Optional[str] = None
    percentile: float = 99.9
    target_rate_hz: float = 1000.0
    skip_normalisation: str = "connection"
    synapse: Optional[float] = None
    n_steps: int = 100
    dt: float = 0.001
    input_coding: str = "constant"
    input_rate_hz: float = 1000.0
    readout: str = "segmentation"
    readout_steps: Optional[int] = None
    threshold: float = 0.5
    max_to_avg_pool: bool = False
    initial_voltage: Optional[float] = None
    thresholds: Optional[tuple] = None
    seed: Optional[int] = 0
    output_activation: Optional[str] = None
    neuron_types: dict = dataclasses.field(default_factory=dict)
    layer_scales: dict = dataclasses.field(default_factory=dict)
    normalisation_factors: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.synapse, str) and self.synapse in SYNAPSE_NAMES:
            self.synapse = SYNAPSE_NAMES[self.synapse]
        self.validate()

    def validate(self):
        """Raise ConfigError naming the first bad setting and what is allowed."""
        _check_bool("spiking", self.spiking)
        _check_choice("neuron_model", self.neuron_model, neuron_kinds.neuron_models())
        _check_scales(self.scale_firing_rates)
        _check_choice("normalise", self.normalise, NORMALISATIONS)
        _check_choice("skip_normalisation", self.skip_normalisation, SKIP_NORMALISATIONS)
        if self.skip_normalisation != "connection" and self.normalise is None:
            raise ConfigError(f"skip_normalisation={self.skip_normalisation!r} shares the "
                              "normalisation factors of a concatenation's parts; allowed "
                              "with normalise='percentile' or 'qcfs' only")
        _check_number(
            "percentile", self.percentile, low=0, high=100, allowed="a number in (0, 100]"
        )
        _check_number("dt", self.dt, low=0, allowed="a number > 0 (seconds)")
        max_rate = 1 / self.dt
        _check_number(
            "target_rate_hz", self.target_rate_hz, low=0, high=max_rate,
            allowed=f"a number in (0, 1/dt = {max_rate:g}] (at most one spike per step)",
        )
        if self.synapse is not None:
            _check_number(
                "synapse", self.synapse, low=0,
                allowed="None, 'delay' (one step, no filtering) or a time constant > 0 (seconds)"
            )
        check_int("n_steps", self.n_steps, low=1)
        if self.initial_voltage is not None and not (
                _is_number(self.initial_voltage) and 0 <= self.initial_voltage < 1):
            raise ConfigError(f"initial_voltage={self.initial_voltage!r} is not allowed; allowed: "
                              "None (each neuron kind's own) or a number in [0, 1) (thresholds)")
        if self.thresholds is not None:
            self.thresholds = _check_thresholds(self.thresholds, self.neuron_model)
        _check_choice("input_coding", self.input_coding, INPUT_CODINGS)
        _check_number(
            "input_rate_hz", self.input_rate_hz, low=0, high=max_rate,
            allowed=f"a number in (0, 1/dt = {max_rate:g}] (at most one spike per step)",
        )
        _check_choice("readout", self.readout, READOUTS)
        if self.readout_steps is not None:
            check_int("readout_steps", self.readout_steps, low=1, high=self.n_steps)
        _check_number(
            "threshold", self.threshold, low=0, high=1, high_open=True, allowed="a number in (0, 1)"
        )
        _check_bool("max_to_avg_pool", self.max_to_avg_pool)
        if self.seed is not None:
            check_int("seed", self.seed, low=0)
        if self.normalise is not None and self.scale_firing_rates != 1.0:
            raise ConfigError(
                f"scale_firing_rates={self.scale_firing_rates!r} and normalise={self.normalise!r} "
                "both set the firing-rate scales; allowed: scale_firing_rates=1.0 when "
                "normalise is set"
            )
        for key in ("neuron_types", "layer_scales", "normalisation_factors", "versions"):
            if not isinstance(getattr(self, key), dict):
                value = getattr(self, key)
                raise ConfigError(f"{key}={value!r} is not allowed; allowed: a mapping")
        for name, value in self.normalisation_factors.items():
            _check_number(f"normalisation_factors[{name!r}]", value, low=0, allowed="a number > 0")

    def window(self, n_steps=None):
        """The number of final steps the readout averages over, for a run of ``n_steps``:
        the last half, or the last ``readout_steps`` (all of a shorter run, so that a
        network read out over all its ``n_steps`` is read out over all steps of a
        shorter run too, e.g. in a curve of the readout against the steps)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        check_int("n_steps", n_steps, low=1)
        if self.readout_steps is None:
            return max(1, n_steps // 2)
        return min(self.readout_steps, n_steps)

    def to_dict(self):
        """Plain JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Settings from a mapping; unknown keys are a ConfigError listing the known ones."""
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown conversion setting {unknown[0]!r}; allowed: {', '.join(known)}"
            )
        return cls(**data)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_number(key, value, low, high=None, high_open=False, allowed=""):
    """Require low < value (<= or < high), finite."""
    ok = _is_number(value) and math.isfinite(value) and value > low
    if ok and high is not None:
        ok = value < high if high_open else value <= high * (1 + 1e-9)
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {allowed}")


def check_int(key, value, low, high=None):
    """Require an integer (not a bool) in [low, high]; ConfigError naming ``key`` otherwise."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: an integer {bound}")


def _check_bool(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: true or false")


def _check_choice(key, value, choices):
    if value not in choices:
        raise ConfigError(
            f"{key}={value!r} is not allowed; allowed: {', '.join(repr(c) for c in choices)}"
        )


def _check_thresholds(thresholds, neuron_model):
    """``thresholds`` as a tuple; ConfigError unless they are numbers > 0, strictly
    decreasing, for a neuron model whose neurons take thresholds."""
    try:
        values = neuron_kinds.check_thresholds(thresholds)
    except ValueError:
        raise ConfigError(f"thresholds={thresholds!r} is not allowed; allowed: None or a list of "
                          "numbers > 0, strictly decreasing (e.g. [2, 1, 0.5, 0.25])") from None
    if not neuron_kinds.has_thresholds(neuron_model):
        takes = [m for m in neuron_kinds.neuron_models() if neuron_kinds.has_thresholds(m)]
        raise ConfigError(f"thresholds={list(values)!r} is not allowed with neuron_model="
                          f"{neuron_model!r}, whose neurons have one threshold; allowed with "
                          f"neuron_model: {', '.join(map(repr, takes))}")
    return values


def _check_scales(scales):
    allowed = "a number > 0, or a mapping {layer_name: number > 0}"
    if isinstance(scales, dict):
        if not scales:
            raise ConfigError(f"scale_firing_rates={{}} is not allowed; allowed: {allowed}")
        for name, value in scales.items():
            if not isinstance(name, str):
                raise ConfigError(
                    f"scale_firing_rates key {name!r} is not allowed; "
                    "allowed: layer names (strings)"
                )
            _check_number(f"scale_firing_rates[{name!r}]", value, low=0, allowed=allowed)
    else:
        _check_number("scale_firing_rates", scales, low=0, allowed=allowed)
