"""A small saved network and the spikes it must give, in every backend.

``tests/data/regression_network`` (written by ``scripts/make_regression_network.py``)
holds a conversion, its network description and ``expected.npz``: the spike counts
per neuron of the engine and of NengoDL, and the Loihi emulator's outputs and spike
counts, for four saved images. A change that alters any of them fails here.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nengoseg import convert as nsconvert
from nengoseg import description
from nengoseg.convert.describe import describe_conversion
from nengoseg.errors import DataError

from test_engine import nengo_dl_counts

FOLDER = Path(__file__).resolve().parent / "data" / "regression_network"


@pytest.fixture(scope="module")
def expected():
    with np.load(FOLDER / "expected.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def converted():
    return nsconvert.convert(*nsconvert.load_conversion(FOLDER))


def test_engine_and_nengo_dl_give_the_saved_spikes(expected, converted):
    from nengoseg.engine import run_engine

    x = expected["images"]
    _, engine = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=2,
                           progress=False, return_counts=True, chunk_images=None)
    nengo_dl = nengo_dl_counts(converted, x, converted.settings.n_steps, batch=2)
    assert set(engine) == {"a", "b", "c"}
    for name in engine:
        assert engine[name].sum() > 0
        np.testing.assert_array_equal(engine[name], expected[f"engine/{name}"])
        np.testing.assert_allclose(nengo_dl[name], expected[f"nengo_dl/{name}"], atol=1e-4)


def test_the_emulator_gives_the_saved_output_from_the_saved_description(expected):
    from nengoseg.loihi.blocks import choose_block_shapes
    from nengoseg.loihi.rewrite import from_description
    from nengoseg.loihi.run import run_loihi

    loihi_net = from_description(description.load(FOLDER))
    choose_block_shapes(loihi_net)
    result = run_loihi(loihi_net, expected["images"], progress=False)
    np.testing.assert_array_equal(result.outputs, expected["emulator_outputs"])
    for name, counts in result.spike_counts.items():
        np.testing.assert_array_equal(counts, expected[f"emulator/{name}"])


def test_the_conversion_describes_itself_as_saved(converted):
    saved_record, saved_arrays = description.load(FOLDER).to_dict()
    made = describe_conversion(converted.keras_model, converted.settings, converted.network,
                               converted.neuron_probes, prepared=True)
    record, arrays = made.to_dict()
    assert record == saved_record
    assert set(arrays) == set(saved_arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, saved_arrays[key], err_msg=key)
    # without the Nengo network (no initial state) it is the same network at rest
    at_rest = describe_conversion(*nsconvert.load_conversion(FOLDER)).to_dict()[0]
    assert [l["neurons"] and l["neurons"]["kind"] for l in at_rest["layers"]] == [
        l["neurons"] and l["neurons"]["kind"] for l in saved_record["layers"]]


def damage(folder, edit):
    record = json.loads((folder / description.DESCRIPTION_FILE).read_text())
    edit(record)
    (folder / description.DESCRIPTION_FILE).write_text(json.dumps(record))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(format_version=99), "bad value 99 for 'format_version'"),
        (lambda r: r["layers"][1].update(op="conv3d"), "for 'layer 'a'.op' (allowed: input, "),
        (lambda r: r["layers"][1].update(inputs=["nope"]), "'layer 'a'.inputs'"),
        (lambda r: r["layers"][1]["neurons"].update(kind="izhikevich"),
         "'layer 'a'.neurons.kind' (allowed: relu, lif"),
        (lambda r: r["layers"][1]["neurons"].update(gain=-1), "'layer 'a'.neurons.gain'"),
        (lambda r: r["layers"][1].update(arrays=[]), "'layer 'a'.arrays' (allowed: kernel, bias)"),
        (lambda r: r["run"].update(dt=0), "'run.dt'"),
        (lambda r: r.update(output="missing"), "'output'"),
    ],
)
def test_a_damaged_description_is_a_data_error_naming_the_key(tmp_path, edit, message):
    folder = tmp_path / "net"
    shutil.copytree(FOLDER, folder)
    damage(folder, edit)
    with pytest.raises(DataError, match=str(folder / "network.json")) as info:
        description.load(folder)
    assert message in str(info.value)


def test_missing_or_damaged_weights_are_named(tmp_path):
    folder = tmp_path / "net"
    shutil.copytree(FOLDER, folder)
    (folder / description.WEIGHTS_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="network_weights.npz: cannot read the weights"):
        description.load(folder)
    (folder / description.WEIGHTS_FILE).unlink()
    with pytest.raises(DataError, match="network_weights.npz: the weights of .* are missing"):
        description.load(folder)
