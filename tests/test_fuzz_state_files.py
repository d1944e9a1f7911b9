"""Fuzzing the run folder's state files: a damaged one is a one-line DataError naming it.

Property-based (hypothesis): ``state.json`` (a training checkpoint, read by
`read_state`), ``conversion.json`` and its Keras model (`load_conversion`) and a run
folder's ``ann/stage.json`` and ``results.json`` (`read_record`, `read_results`) are
damaged byte by byte (truncated, bit flips, non-UTF-8, garbage) and field by field
(a key deleted or given a value of another type, NaN, nesting). Each read must
return what it returns for a good file or raise a
:class:`~nengoseg.errors.DataError` on one line naming the file (and the key, for
a bad field); never another exception, and nothing may be written.

The Keras model file is fuzzed by truncation only: a bit flip in an HDF5 file can
make libhdf5 loop forever (see `test_truncated_keras_model_is_a_data_error`).

``NENGOSEG_FUZZ_EXAMPLES`` scales the number of examples (default 300 per test);
``NENGOSEG_FUZZ_RANDOM=1`` draws new examples on every run instead of a fixed set.
"""

import json
import math

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from fuzzing import byte_damage, check_one_line_error, corrupt, fuzz, outcome
from nengoseg import rundir
from nengoseg.errors import DataError


def corruptions():
    """Damage to a JSON file's bytes (`fuzzing.byte_damage`), with JSON's awkward corners."""
    return byte_damage(
        inserts=[st.one_of(st.binary(min_size=1, max_size=32),
                           st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00",
                                            b"NaN", b"-Infinity", b"1e999", b"[", b"{",
                                            b'"\\ud800"', b"9" * 5000]))],
        replacement=st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"[]", b"null", b"42", b'"text"', b"{}", b"{\"a\": 1}",
                             b"\xef\xbb\xbf{}", b"{} {}", b"{" * 100 + b"}" * 100])),
    )


def read_or_error(read, folder, folder_state):
    # quiet: load_conversion warns about other package versions
    return outcome(read, folder, folder_state, ok="read", quiet=True)


def check_error(result, *names):
    """A DataError on one line naming each of ``names`` (the file, a key)."""
    return check_one_line_error(result, DataError, *names)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.text(max_size=6),
              st.floats(allow_nan=True, allow_infinity=True)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
DELETE = object()


def edit(obj, path, value):
    """A copy of ``obj`` with ``path`` (a list of keys) set to ``value`` (DELETE: removed)."""
    obj = json.loads(json.dumps(obj))
    node = obj
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return obj


# ---------------------------------------------------------------- state.json

GOOD_STATE = {
    "epochs_done": 3,
    "history": {"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.6, float("nan")],
                "lr": [0.001, 0.001, 0.0005]},
    "best": 0.6,
    "callbacks": {"ReduceLROnPlateau": {"best": 0.6, "wait": 1, "cooldown_counter": 0},
                  "EarlyStopping": {"best": float("inf"), "wait": 0, "best_epoch": None}},
    "train_seconds": 12.5,
    "best_epoch": 2,
}


def state_folder(root, data):
    folder = root / "work" / "ann" / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_bytes(data)
    return folder


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def state_problem(state):
    """The first key of a state whose value training cannot use (None: all usable)."""
    checks = {
        "epochs_done": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "history": lambda v: isinstance(v, dict) and all(
            isinstance(x, list) and all(_number(n) for n in x) for x in v.values()),
        "best": lambda v: v is None or _number(v),
        "callbacks": lambda v: isinstance(v, dict) and all(
            isinstance(x, dict) and all(n is None or _number(n) for n in x.values())
            for x in v.values()),
        "train_seconds": lambda v: _number(v) and v >= 0,
    }
    optional = {
        "best_epoch": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                              and v >= 0),
        "finished": lambda v: isinstance(v, bool),
    }
    for key, check in checks.items():
        if key not in state or not check(state[key]):
            return key
    for key, check in optional.items():
        if key in state and not check(state[key]):
            return key
    return None


@fuzz()
@given(damage=corruptions())
def test_damaged_state_json(tmp_path, folder_state, damage):
    from nengoseg.train.checkpoints import read_state

    folder = state_folder(tmp_path, corrupt(json.dumps(GOOD_STATE).encode(), damage))
    result = read_or_error(lambda: read_state(folder), tmp_path, folder_state)
    if isinstance(result, Exception):
        check_error(result, folder / "state.json")
    else:
        assert state_problem(result) is None


STATE_PATHS = st.sampled_from([
    ["epochs_done"], ["history"], ["best"], ["callbacks"], ["train_seconds"], ["best_epoch"],
    ["finished"], ["extra"], ["history", "loss"], ["history", "new"],
    ["callbacks", "ReduceLROnPlateau"], ["callbacks", "ReduceLROnPlateau", "wait"],
])


@fuzz()
@given(path=STATE_PATHS, value=st.one_of(st.just(DELETE), JSON_VALUES))
@example(path=["epochs_done"], value=True)
@example(path=["epochs_done"], value=-1)
@example(path=["train_seconds"], value=float("nan"))
@example(path=["finished"], value=True)
@example(path=["history"], value={"\n": None})  # a key with a line break: still one line
@example(path=["callbacks"], value={"a\rb": {"\n": "x"}})
def test_state_fields_of_the_wrong_type_name_the_key(tmp_path, folder_state, path, value):
    from nengoseg.train.checkpoints import read_state

    state = edit(GOOD_STATE, path, value)
    folder = state_folder(tmp_path, json.dumps(state).encode())
    result = read_or_error(lambda: read_state(folder), tmp_path, folder_state)
    problem = state_problem(state)
    event(f"expected: {problem or 'read'}")
    if problem is None:
        assert result == json.loads(json.dumps(state))
    else:
        check_error(result, folder / "state.json", f"'{problem}")


def test_state_json_edge_cases(tmp_path, folder_state):
    from nengoseg.train.checkpoints import read_state

    assert read_state(tmp_path / "nowhere") is None
    folder = state_folder(tmp_path, b"{}")
    (folder / "state.json").unlink()
    (folder / "state.json").mkdir()  # a folder where the file should be
    check_error(read_or_error(lambda: read_state(folder), tmp_path, folder_state),
                folder / "state.json")
    (folder / "state.json").rmdir()
    (folder / "state.json").write_text("[" * 100_000)  # nested beyond the JSON parser
    check_error(read_or_error(lambda: read_state(folder), tmp_path, folder_state),
                folder / "state.json", "nested too deeply")


# ---------------------------------------------------------------- conversion.json


def good_record():
    from nengoseg.convert import ConversionSettings

    settings_ = ConversionSettings(versions={"nengoseg": "0.1.0", "tensorflow": "2.12.0"},
                                   neuron_types={"conv": "SpikingRectifiedLinear"},
                                   layer_scales={"conv": 1.0})
    return {"keras_model": "keras_model.h5", "settings": settings_.to_dict()}


def conversion_folder(root, data):
    folder = root / "snn"
    folder.mkdir(exist_ok=True)
    (folder / "conversion.json").write_bytes(data)
    return folder


@fuzz()
@given(damage=corruptions())
def test_damaged_conversion_json(tmp_path, folder_state, damage):
    """No Keras model beside it: every outcome is a DataError naming conversion.json."""
    from nengoseg.convert import load_conversion

    folder = conversion_folder(tmp_path, corrupt(json.dumps(good_record()).encode(), damage))
    result = read_or_error(lambda: load_conversion(folder), tmp_path, folder_state)
    check_error(result, folder / "conversion.json")


SETTING_NAMES = sorted(good_record()["settings"])
RECORD_PATHS = st.one_of(
    st.sampled_from([["keras_model"], ["settings"], ["bogus"]]),
    st.builds(lambda k: ["settings", k], st.sampled_from(SETTING_NAMES + ["bogus"])),
    st.builds(lambda k, n: ["settings", k, n],
              st.sampled_from(["neuron_types", "layer_scales", "versions",
                               "normalisation_factors", "scale_firing_rates"]),
              st.sampled_from(["conv", "nengoseg", "new"])),
)
STRUCTURAL = {"keras_model", "settings", "neuron_types", "layer_scales", "versions"}


@fuzz()
@given(path=RECORD_PATHS, value=st.one_of(st.just(DELETE), JSON_VALUES,
                                          st.sampled_from(["../x.h5", "", ".", "/etc/passwd"])))
@example(path=["settings"], value=DELETE)
@example(path=["settings"], value=[1, 2])
@example(path=["keras_model"], value="../../model.h5")
@example(path=["settings", "n_steps"], value="100")
@example(path=["settings", "dt"], value=float("nan"))
@example(path=["settings", "layer_scales", "conv"], value="big")
def test_conversion_fields_of_the_wrong_type_name_the_file(tmp_path, folder_state, path, value):
    from nengoseg.convert import load_conversion

    folder = conversion_folder(tmp_path, json.dumps(edit(good_record(), path, value)).encode())
    result = read_or_error(lambda: load_conversion(folder), tmp_path, folder_state)
    message = check_error(result, folder / "conversion.json")
    if "is missing" not in message and path[-1] in STRUCTURAL | {"bogus"}:
        assert path[-1] in message, message


@pytest.fixture(scope="module")
def saved_conversion(tmp_path_factory):
    """A tiny Keras model saved by `save_conversion`: (folder, the model file's bytes)."""
    import tensorflow as tf

    from nengoseg.convert import ConversionSettings, save_conversion

    model = tf.keras.Sequential([tf.keras.Input((4, 4, 1)),
                                 tf.keras.layers.Conv2D(2, 3, padding="same", activation="relu"),
                                 tf.keras.layers.Conv2D(1, 1)])
    folder = tmp_path_factory.mktemp("conversion")
    save_conversion(folder, model, ConversionSettings())
    return folder, (folder / "keras_model.h5").read_bytes()


@fuzz(100)
@given(keep=st.floats(0, 1, exclude_max=True))
def test_truncated_keras_model_is_a_data_error(tmp_path, folder_state, saved_conversion, keep):
    """Truncation only: libhdf5 (2.0.0, h5py 3.16) can loop forever on a bit flip, e.g. one
    byte of the global heap holding the weight names, which no Python code can catch."""
    from nengoseg.convert import load_conversion

    source, model_bytes = saved_conversion
    folder = conversion_folder(tmp_path, (source / "conversion.json").read_bytes())
    (folder / "keras_model.h5").write_bytes(model_bytes[: int(keep * len(model_bytes))])
    result = read_or_error(lambda: load_conversion(folder), tmp_path, folder_state)
    check_error(result, folder / "keras_model.h5", "cannot read the Keras model")


def test_a_good_conversion_still_loads(saved_conversion):
    from nengoseg.convert import ConversionSettings, load_conversion

    folder, _ = saved_conversion
    model, settings_ = load_conversion(folder)
    assert isinstance(settings_, ConversionSettings) and model.output_shape == (None, 4, 4, 1)


# ---------------------------------------------------------------- run folder records

GOOD_RECORD = {
    "format_version": 1, "stage": "ann", "id": "0" * 32, "finished": "2026-01-01T00:00:00",
    "provenance": {"config": {"seed": 0}, "data": "abc", "inputs": {}},
    "results": {"ann": {"test": {"dice": 0.8}}},
}
GOOD_RESULTS = {"stages": {"ann": {"test": {"dice": 0.8}}}, "stage_ids": {"ann": "0" * 32},
                "extra": {"evaluate_ann": {"dice": 0.7}}, "versions": {}}


def run_folder(root, record=None, results=None):
    run = root / "run"
    (run / "ann").mkdir(parents=True, exist_ok=True)
    (run / "ann" / "stage.json").write_bytes(record or json.dumps(GOOD_RECORD).encode())
    (run / "results.json").write_bytes(results or json.dumps(GOOD_RESULTS).encode())
    return run


def read_run_folder(run, damaged, folder, folder_state):
    """Read the ANN's stage record and results.json: each a dict, or a one-line DataError
    naming ``damaged``. Returns what was read."""
    read = []
    for reader in (lambda: rundir.read_record(run, "ann"), lambda: rundir.read_results(run)):
        result = read_or_error(reader, folder, folder_state)
        if isinstance(result, Exception):
            check_error(result, damaged)
        else:
            assert isinstance(result, dict)
            read.append(result)
    return read


@fuzz()
@given(which=st.sampled_from(["stage.json", "results.json"]), damage=corruptions())
def test_damaged_run_folder_records(tmp_path, folder_state, which, damage):
    if which == "stage.json":
        run = run_folder(tmp_path, record=corrupt(json.dumps(GOOD_RECORD).encode(), damage))
        damaged = run / "ann" / "stage.json"
    else:
        run = run_folder(tmp_path, results=corrupt(json.dumps(GOOD_RESULTS).encode(), damage))
        damaged = run / "results.json"
    read_run_folder(run, damaged, tmp_path, folder_state)


@fuzz()
@given(path=st.sampled_from([["results"], ["provenance"], ["results", "ann"], ["extra"],
                             ["stages"], ["provenance", "config"]]),
       value=st.one_of(st.just(DELETE), JSON_VALUES), which=st.sampled_from(["record", "results"]))
def test_run_folder_record_fields(tmp_path, folder_state, path, value, which):
    if which == "record":
        run = run_folder(tmp_path, record=json.dumps(edit(GOOD_RECORD, path, value)).encode())
        damaged = run / "ann" / "stage.json"
    else:
        run = run_folder(tmp_path, results=json.dumps(edit(GOOD_RESULTS, path, value)).encode())
        damaged = run / "results.json"
    for result in read_run_folder(run, damaged, tmp_path, folder_state):
        if which == "record" and path[0] in ("results", "provenance"):
            assert isinstance(result.get(path[0], result.get("stages")), dict)


@pytest.mark.xfail(raises=RecursionError, strict=True,
                   reason="nengoseg.atomic.read_json lets json's RecursionError through")
@pytest.mark.parametrize("which", ["stage.json", "results.json"])
def test_deeply_nested_run_folder_json(tmp_path, which):
    nested = b"[" * 100_000
    run = run_folder(tmp_path, **({"record": nested} if which == "stage.json"
                                  else {"results": nested}))
    with pytest.raises(DataError):
        rundir.read_results(run)


def test_no_nan_trouble(tmp_path, folder_state):
    """JSON's NaN and Infinity (written by the checkpoints) read back as floats."""
    from nengoseg.train.checkpoints import read_state

    folder = state_folder(tmp_path, json.dumps(GOOD_STATE).encode())
    state = read_or_error(lambda: read_state(folder), tmp_path, folder_state)
    assert math.isnan(state["history"]["val_loss"][-1])
    assert state["callbacks"]["EarlyStopping"]["best"] == float("inf")
