"""The compatibility modules: every reach into nengo-dl / nengo-loihi internals goes
through `nengoseg.nengo_dl_compat` or `nengoseg.loihi.nengo_loihi_compat`, each checks
the pinned version, and with another version nengoseg falls back or says what to do."""

import ast
from pathlib import Path

import nengo
import nengo_dl
import nengo_loihi
import numpy as np
import pytest
from nengo_loihi.builder import split_blocks, validate

from nengoseg import nengo_dl_compat
from nengoseg.loihi import fast_build
from nengoseg.loihi import nengo_loihi_compat as loihi_compat

ROOT = Path(__file__).resolve().parents[1]
COMPAT = {"nengoseg/nengo_dl_compat.py", "loihi/nengo_loihi_compat.py"}
# what only the compatibility modules (and the replacements they wrap) may touch
PRIVATE_NAMES = {"TF_NEURON_IMPL", "_generate_inputs", "_get_ss", "sims", "block_info",
                 "spike_count", "host2chip_senders", "spike_targets", "chip2host_params",
                 "host_pre", "permanent", "noise"}
REPLACEMENTS = {"loihi/fast_build.py", "loihi/fast_synapses.py"}


def package_files():
    for folder in ("nengoseg", "loihi"):
        for path in (ROOT / folder).rglob("*.py"):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


def test_only_the_compat_modules_reach_into_library_internals():
    found = []
    for name, tree in package_files():
        if name in COMPAT or name in REPLACEMENTS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
                found.append(f"{name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.split(".")[-1] in ("fast_build", "fast_synapses")
                    or any(a.name in ("fast_build", "fast_synapses") for a in node.names)):
                found.append(f"{name}:{node.lineno} imports {node.module}")
    assert not found


def test_pinned_versions_pass_and_others_say_what_to_do():
    assert nengo_dl_compat.version_problem() is None
    assert loihi_compat.version_problem() is None
    problem = nengo_dl_compat.version_problem({"nengo-dl": "3.7.0", "nengo": "3.2.0"})
    assert "nengo-dl 3.7.0 (pinned: 3.6.0)" in problem and "scripts/setup.sh" in problem
    problem = loihi_compat.version_problem("1.2.0")
    assert "nengo-loihi 1.1.0" in problem and "1.2.0 is installed" in problem
    assert "own (slower) code" in problem and "constraints.txt" in problem


def test_another_nengo_loihi_gets_its_own_build_and_routing(monkeypatch):
    with loihi_compat.fast_building():
        assert split_blocks.split_synapse is fast_build.split_synapse
        assert validate.validate_axon is fast_build.validate_axon
    assert split_blocks.split_synapse is fast_build.ORIGINAL_SPLIT_SYNAPSE
    monkeypatch.setattr(nengo_loihi, "__version__", "1.2.0")
    with pytest.warns(UserWarning, match="1.2.0 is installed"):
        with loihi_compat.fast_building():
            assert split_blocks.split_synapse is fast_build.ORIGINAL_SPLIT_SYNAPSE
            assert validate.validate_axon is fast_build.ORIGINAL_VALIDATE_AXON
    with pytest.warns(UserWarning, match="1.2.0 is installed"):
        assert loihi_compat.vectorise_synapses(object()) is False


def test_private_readers_fail_with_the_version_advice():
    with pytest.raises(RuntimeError, match="cannot read the emulator of nengo-loihi"):
        loihi_compat.emulator_of(object())
    with pytest.raises(RuntimeError, match="cannot use nengo_dl.Simulator._generate_inputs"):
        nengo_dl_compat.generate_inputs(object(), {})


def test_lowpass_coefficients_are_what_nengo_dl_filters_with():
    """The engine's synapse: a Lowpass run in NengoDL on a step input equals the
    recurrence with `lowpass_coefficients`."""
    tau, dt, n = 0.005, 0.001, 30
    a, b = nengo_dl_compat.lowpass_coefficients(tau, dt)
    x = np.random.default_rng(0).random(n).astype(np.float32)
    with nengo.Network() as net:
        node = nengo.Node(nengo.processes.PresentInput(x[:, None], dt))
        probe = nengo.Probe(node, synapse=nengo.Lowpass(tau))
    with nengo_dl.Simulator(net, dt=dt, progress_bar=False) as sim:
        sim.run_steps(n)
    y, expected = np.float32(0), []
    for value in x:
        expected.append(y)  # a probe reads the filter one step late
        y = a * y + b * value
    np.testing.assert_allclose(sim.data[probe][:, 0], expected, rtol=1e-5, atol=1e-7)
