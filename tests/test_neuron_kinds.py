"""The neuron-kind registry, and the IF neuron with reset by subtraction added through it.

The IF kind (`nengoseg.neuron_kinds.if_subtract`) is the registry's proof: it lives in
one module, and converts, runs in the reference simulator, in NengoDL and in the
engine with the same spikes, and co-trains, through the records alone.
"""

import ast
from pathlib import Path

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengoseg import convert as nsconvert
from nengoseg import neuron_kinds
from nengoseg.engine import dynamics
from nengoseg.engine.plan import NeuronLayer
from nengoseg.errors import ConfigError, ConversionError
from nengoseg.neuron_kinds.if_subtract import HybridIFSubtract, IFSubtract
from nengoseg.train.cotrain import hybrid_network, make_trainable

ROOT = Path(__file__).resolve().parents[1]
DT = 0.001


def test_every_kind_is_a_complete_record():
    impl = nengo_dl.neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL
    names = [kind.name for kind in neuron_kinds.kinds()]
    assert {"relu", "lif", "loihi_relu", "loihi_lif", "softlif", "lifrate",
            "if_subtract"} <= set(names)
    for kind in neuron_kinds.kinds():
        for cls, spiking in kind.types.items():
            assert neuron_kinds.of_type(cls) == (kind, spiking)
        if kind.spiking:
            assert kind.step is not None and kind.state and kind.hybrid_type is not None
            assert neuron_kinds.of_type(kind.hybrid_type) == (kind, True)
            assert impl[kind.hybrid_type] in kind.builders.values()
        assert (kind.on_chip is None) != (kind.off_chip is None)
        for activation, model in kind.converts:
            assert neuron_kinds.converted_kind(activation, model) is kind
    assert neuron_kinds.neuron_models() == ["nengo", "loihi", "if_subtract", "multi_threshold"]


def test_registry_refuses_a_second_record_for_a_name_or_a_type():
    relu = neuron_kinds.named("relu")
    with pytest.raises(ValueError, match="already registered"):
        neuron_kinds.register(relu)
    with pytest.raises(ValueError, match="SpikingRectifiedLinear already belongs to .*relu"):
        neuron_kinds.register(neuron_kinds.NeuronKind(
            name="other", summary="", types={nengo.SpikingRectifiedLinear: True},
            state=("voltage",), rate=relu.rate, step=relu.step, on_chip=relu.on_chip))
    with pytest.raises(ConversionError, match="Sigmoid neurons, which no nengoseg neuron kind"):
        neuron_kinds.of_type(nengo.Sigmoid(), where="layer 'x'")


def test_no_module_outside_the_registry_names_a_kind():
    """Backends look kinds up by record; a kind's name in their code would be a branch
    that the next kind has to edit (docstrings and comments do not count)."""
    names = {kind.name for kind in neuron_kinds.kinds()} - {"relu", "softlif"}  # also
    # the ANN activations' names, which the Keras side uses
    found = []
    for folder in ("nengoseg", "loihi"):
        for path in (ROOT / folder).rglob("*.py"):
            if "neuron_kinds" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                          and node.body and isinstance(node.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and node.value in names
                        and id(node) not in docstrings):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found


# ------------------------------------------------------------------ IF with subtraction


def currents(n_steps=40, n=64, seed=0):
    """Signed currents changing every step: up to 3 threshold crossings per step."""
    rng = np.random.default_rng(seed)
    return (rng.normal(200.0, 900.0, (n_steps, n))).astype(np.float32)


def nengo_spikes(neuron_type, J, simulator):
    with nengo.Network(seed=0) as net:
        node = nengo.Node(nengo.processes.PresentInput(J, DT))
        ens = nengo.Ensemble(J.shape[1], 1, neuron_type=neuron_type,
                             gain=nengo.dists.Choice([1.0]), bias=nengo.dists.Choice([0.0]))
        nengo.Connection(node, ens.neurons, synapse=None)
        probe = nengo.Probe(ens.neurons, synapse=None)
    kwargs = {"progress_bar": False} if simulator is nengo_dl.Simulator else {}
    with simulator(net, dt=DT, **kwargs) as sim:
        sim.run_steps(len(J))
    return np.asarray(sim.data[probe]).reshape(len(J), -1) * DT / neuron_type.amplitude


def engine_spikes(J, min_voltage=-np.inf):
    spec = NeuronLayer(name="if", kind="if_subtract", spiking=True, shape=(J.shape[1],),
                       gain=1.0, amplitude=1.0, min_voltage=min_voltage,
                       initial_state={"voltage": np.zeros(J.shape[1], np.float32)})
    outputs, _ = dynamics.simulate(spec, dynamics.constants(spec, DT), tf.constant(J[:, None]),
                                   len(J), static=False)
    return outputs["raw"].numpy()[:, 0] * DT


@pytest.mark.parametrize("min_voltage", [-np.inf, 0.0])
def test_if_subtract_same_spikes_in_nengo_nengo_dl_and_the_engine(min_voltage):
    J = currents()
    neuron = IFSubtract(min_voltage=min_voltage)
    reference = nengo_spikes(neuron, J, nengo.Simulator)
    in_nengo_dl = nengo_spikes(neuron, J, nengo_dl.Simulator)
    in_engine = engine_spikes(J, min_voltage)
    np.testing.assert_array_equal(in_engine, in_nengo_dl)
    # float64 (NumPy) against float32 (TensorFlow): the same spike counts per neuron
    np.testing.assert_array_equal(reference.sum(axis=0), in_nengo_dl.sum(axis=0))
    assert set(np.unique(in_nengo_dl)) == {0.0, 1.0}  # binary: at most one spike per step
    hybrid = nengo_spikes(HybridIFSubtract(min_voltage=min_voltage), J, nengo_dl.Simulator)
    np.testing.assert_array_equal(hybrid, in_nengo_dl)


def test_if_subtract_integrates_signed_input_and_subtracts_the_threshold():
    # 2.5 thresholds per second... at 1 ms steps: 2500 per second is 2.5 per step, but at
    # most one spike a step: the rest accumulates (rate clipped at 1/dt)
    fast = engine_spikes(np.full((10, 1), 2500.0, np.float32))
    assert fast.sum() == 10  # one every step
    # 300 per second: a spike every 3.33 steps, and the residual is kept (reset by
    # subtraction): exactly floor-ish of the integral, not one per 4 steps as a reset to 0
    slow = engine_spikes(np.full((101, 1), 300.0, np.float32))
    assert slow.sum() == 30  # 101 steps of 0.3: 30.3 thresholds
    # a negative phase is remembered without a floor, and forgotten with min_voltage 0
    J = np.concatenate([np.full((50, 1), -300.0), np.full((51, 1), 300.0)]).astype(np.float32)
    assert engine_spikes(J).sum() == 0  # -15 + 15.3 never crosses 1
    assert engine_spikes(J, min_voltage=0.0).sum() == 15  # 51 steps of 0.3


def relu_model(soft_lif=False):
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((6, 6, 1))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    if soft_lif:
        x = nsconvert.SoftLIF(name="lif")(x)
    out = tf.keras.layers.Conv2D(1, 1, name="logits")(x)
    return tf.keras.Model(inp, out)


def test_if_subtract_converts_relu_layers_and_says_why_it_cannot_go_on_chip():
    from nengoseg.loihi.rewrite import from_conversion

    settings = nsconvert.ConversionSettings(neuron_model="if_subtract", scale_firing_rates=50.0)
    converted = nsconvert.convert(relu_model(), settings)
    assert converted.settings.neuron_types == {"conv": "IFSubtract"}
    ensemble = converted.neuron_probes["conv"].target.ensemble
    assert ensemble.neuron_type.amplitude == pytest.approx(1 / 50.0)
    with pytest.raises(ConversionError, match="layer 'conv' has if_subtract neurons, which "
                                              "cannot run on Loihi: Loihi 1 resets"):
        from_conversion(converted)
    with pytest.raises(ConversionError, match="layer 'lif' .*neuron_model 'if_subtract' has no "
                                              "spiking neuron.*it converts: relu"):
        nsconvert.convert(relu_model(soft_lif=True), settings)
    with pytest.raises(ConfigError, match="neuron_model.*'if_subtract'"):
        nsconvert.ConversionSettings(neuron_model="if").validate()


@pytest.mark.parametrize("engine", ["engine", "nengo-dl"])
def test_if_subtract_cotrains(engine):
    settings = nsconvert.ConversionSettings(neuron_model="if_subtract", scale_firing_rates=200.0,
                                            n_steps=8, synapse=0.005)
    hybrid = hybrid_network(relu_model(), settings)
    assert type(hybrid.neuron_probes["conv"].target.ensemble.neuron_type) is HybridIFSubtract
    batch = 2
    snn = make_trainable(engine, hybrid, batch)
    x = np.random.default_rng(0).random((batch, 6, 6, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32).reshape(batch, 1, -1)
    coded = nsconvert.encode_inputs(x, 8)
    snn.keras_model.compile(tf.keras.optimizers.Adam(0.05),
                            {snn.output_name: tf.keras.losses.MeanSquaredError()})
    inputs = snn.model_inputs(coded)
    before = [w.copy() for w in snn.trained_weights()["conv"]]
    losses = [snn.keras_model.train_on_batch(inputs, {snn.output_name: y}) for _ in range(6)]
    after = snn.trained_weights()["conv"]
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
