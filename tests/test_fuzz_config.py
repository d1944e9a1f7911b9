"""Fuzzing `load_config`: any bad config file or override is a one-line ConfigError.

Property-based (hypothesis): the shipped configs damaged byte by byte, YAML-like
text built from the config's own keys and YAML's awkward corners (anchors,
aliases, tags, flow collections, tabs, NaN), non-UTF-8 bytes, non-mappings and
random overrides. ``load_config`` must return a resolved config or raise a
:class:`~nengoseg.errors.ConfigError` on one line naming the file (overrides: naming
the override); never another exception, and it never writes.

``NENGOSEG_FUZZ_EXAMPLES`` scales the number of examples (default 300 per test);
``NENGOSEG_FUZZ_RANDOM=1`` draws new examples on every run instead of a fixed set.
"""

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from fuzzing import byte_damage, check_one_line_error, corrupt, fuzz, outcome
from nengoseg.config import SCHEMA, load_config
from nengoseg.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
SHIPPED = {path.name: path.read_bytes() for path in CONFIGS}


def corruptions():
    """Damage to a config file's bytes (`fuzzing.byte_damage`), with non-UTF-8 and control
    bytes, a BOM and tabs among the insertions."""
    return byte_damage(
        inserts=[st.binary(min_size=1, max_size=64),
                 st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\t",
                                  b"\xef\xbb\xbf", b"\r", b"\x1b[31m"])],
        replacement=st.binary(max_size=400),
    )


def load_or_error(path, overrides=(), folder_state=None):
    return outcome(lambda: load_config(path, overrides), path.parent, folder_state)


def check_config_error(result, *names):
    """A ConfigError on one line naming each of ``names`` (the file, a key)."""
    return check_one_line_error(result, ConfigError, *names)


def check_resolved(cfg):
    assert isinstance(cfg, dict) and set(cfg) == set(SCHEMA)
    stack = [cfg]
    while stack:  # every number finite, every key a name
        node = stack.pop()
        if isinstance(node, dict):
            assert all(isinstance(k, str) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float):
            assert math.isfinite(node)


@fuzz()
@given(name=st.sampled_from(sorted(SHIPPED)), damage=corruptions())
def test_damaged_shipped_configs(tmp_path, folder_state, name, damage):
    path = tmp_path / name
    path.write_bytes(corrupt(SHIPPED[name], damage))
    result = load_or_error(path, folder_state=folder_state)
    if isinstance(result, Exception):
        check_config_error(result, path)
    else:
        check_resolved(result)


# YAML made of the schema's own keys and YAML's awkward corners
KEYS = sorted(SCHEMA) + sorted({k for v in SCHEMA.values() if isinstance(v, dict) for k in v})
SCALARS = st.sampled_from([
    "1", "0", "-1", "2.5", "1e-3", ".nan", ".inf", "-.inf", "1e999", "0x1F", "0o17", "1_000",
    "true", "no", "yes", "on", "~", "null", "''", '""', "'unclosed", '"esc \\x00 \\uD800"',
    "[56, 48]", "[1, [2, [3]]]", "{a: 1, b: [2]}", "{unclosed: 1", "[unclosed", "&anchor 5",
    "*anchor", "*undefined", "!!python/object:os.system ls", "!!int x", "!!float 1e400",
    "!!binary 'AAA'", "!!set {a, b}", "!!omap [a: 1]", "2020-13-45", "2020-01-01", "|\n  block",
    ">-\n  folded", "'multi\n  line'", "- item", "? complex", "%TAG", "@reserved", "`tick",
    "9" * 5000, "x" * 300, "ünïcödé", "\t", "sample:hippocampus", "../../etc", "a: b: c",
])
INDENTS = st.sampled_from(["", "", "  ", "    ", "\t", " ", "   "])
KEY_TEXT = st.one_of(st.sampled_from(KEYS), st.sampled_from(["1", "yes", "null", "~", "[a]",
                                                             "? x", "<<", "'q'", "",
                                                             '"a\\nb"', '"\\r"']),
                     st.text(max_size=8))
LINE = st.one_of(
    st.builds(lambda i, k, v: f"{i}{k}: {v}", INDENTS, KEY_TEXT, SCALARS),
    st.builds(lambda i, k: f"{i}{k}:", INDENTS, KEY_TEXT),
    st.builds(lambda i, v: f"{i}- {v}", INDENTS, SCALARS),
    st.sampled_from(["---", "...", "%YAML 1.1", "%YAML 2.0", "# comment", "", "<<: *anchor",
                     "base: &base {epochs: 2}", "train:\n  <<: *base"]),
)


@fuzz()
@given(lines=st.lists(LINE, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_yaml_like_text(tmp_path, folder_state, lines, newline):
    path = tmp_path / "config.yaml"
    path.write_bytes(newline.join(lines).encode("utf-8", "surrogatepass"))
    result = load_or_error(path, folder_state=folder_state)
    if isinstance(result, Exception):
        check_config_error(result, path)
    else:
        check_resolved(result)


@fuzz()
@given(text=st.text(max_size=200), codec=st.sampled_from(["utf-8", "utf-16", "utf-32",
                                                          "latin-1", "cp1252", "utf-8-sig"]))
def test_any_text_in_any_encoding(tmp_path, folder_state, text, codec):
    path = tmp_path / "config.yaml"
    try:
        data = f"name: x\ntrain:\n  epochs: 3\n# {text}\n".encode(codec)
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    result = load_or_error(path, folder_state=folder_state)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert "not UTF-8" in check_config_error(result, path)
        return
    if isinstance(result, Exception):
        check_config_error(result, path)
    else:
        check_resolved(result)


@fuzz(100)
@given(value=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3), max_leaves=8,
).filter(lambda v: v is not None))
def test_a_config_that_is_not_a_mapping(tmp_path, value):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(value))
    assert "must be a mapping" in check_config_error(load_or_error(path), path)


NUMERIC_KEYS = [(section, key) for section, fields in SCHEMA.items() if isinstance(fields, dict)
                for key, field in fields.items() if "number" in field.allowed]


@fuzz(100)
@given(where=st.sampled_from(NUMERIC_KEYS), value=st.sampled_from([".nan", ".inf", "-.inf",
                                                                   ".NaN", "1e999"]))
def test_nan_and_inf_name_the_key(tmp_path, where, value):
    section, key = where
    path = tmp_path / "config.yaml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    check_config_error(load_or_error(path), path, f"'{section}.{key}'")


@pytest.mark.parametrize("text, line, column", [
    pytest.param("train: [unclosed\n", 2, 1, id="unclosed-list"),
    pytest.param("train:\n  epochs: 3\n bad: 1\n", 3, 2, id="indentation"),
    pytest.param("data:\n\tsize: [1, 2]\n", 2, 1, id="tab"),
    pytest.param("name: 'open\n", 2, 1, id="unclosed-quote"),
    pytest.param("name: x\nname: *nowhere\n", 2, 7, id="undefined-alias"),
    pytest.param("train: {epochs: 3\n", 2, 1, id="unclosed-mapping"),
    pytest.param("a: b: c\n", 1, 5, id="colon-in-value"),
    pytest.param("name: x\x00\n", 1, 8, id="nul-character"),
])
def test_yaml_syntax_errors_are_one_line_with_line_and_column(tmp_path, text, line, column):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    message = check_config_error(load_or_error(path), path, "not valid YAML")
    assert f"line {line}, column {column}" in message


@pytest.mark.parametrize("data", [
    pytest.param(b"name: caf\xe9\n", id="latin-1"),
    pytest.param(b"\xff\xfen\x00a\x00", id="utf-16"),
    pytest.param(b"\x80", id="lone-continuation-byte"),
    pytest.param(b"train:\n  epochs: 3 # \xed\xa0\x80\n", id="encoded-surrogate"),
])
def test_non_utf8_config_names_the_file(tmp_path, data):
    path = tmp_path / "latin.yaml"
    path.write_bytes(data)
    assert "not UTF-8" in check_config_error(load_or_error(path), path)


BILLION_LAUGHS = "model:\n  options:\n    l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)
)  # 10^9 values once expanded


@pytest.mark.parametrize("text, words", [
    pytest.param("a: &a [*a, *a]\n", "aliases", id="alias-inside-itself"),
    pytest.param(BILLION_LAUGHS, "aliases", id="billion-laughs"),
    pytest.param("yes: 1\n", "key True", id="bool-key"),
    pytest.param("model:\n  options:\n    1: 2\n    a: 3\n", "'model.options'", id="int-key"),
    pytest.param("a: " + "[" * 600 + "]" * 600 + "\n", "not valid YAML", id="nested-too-deep"),
    pytest.param("train:\n  epochs: !!int x\n", "not valid YAML", id="bad-int-tag"),
    pytest.param("data:\n  root: 2020-13-45\n", "not valid YAML", id="bad-date"),
    pytest.param("a: 1\n---\nb: 2\n", "not valid YAML", id="two-documents"),
    pytest.param('"line\\nbreak": 1\n', "unknown key", id="key-with-a-line-break"),
    pytest.param('model:\n  options:\n    "a\\nb":\n      1: 2\n', "'a\\nb'", id="nested-key"),
])
def test_odd_yaml_is_a_config_error(tmp_path, text, words):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    assert words in check_config_error(load_or_error(path), path)


def test_unreadable_paths(tmp_path):
    for path in (tmp_path / "missing.yaml", tmp_path):
        check_config_error(load_or_error(path), path)


OVERRIDE_KEYS = st.one_of(
    st.sampled_from([f"{s}.{k}" for s, f in SCHEMA.items() if isinstance(f, dict) for k in f]),
    st.sampled_from(sorted(SCHEMA)), st.text(max_size=12),
)


@fuzz()
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", OVERRIDE_KEYS, SCALARS),
    st.text(max_size=20),
), max_size=4), base=st.sampled_from(["name: x\n", "", "train: 5\n", "model:\n  options: {}\n"]))
@example(overrides=["train.epochs=[unclosed"], base="")
@example(overrides=["train.epochs.x=1"], base="train: 5\n")
def test_random_overrides(tmp_path, overrides, base):
    path = tmp_path / "config.yaml"
    path.write_text(base)
    result = load_or_error(path, overrides)
    if isinstance(result, Exception):
        message = check_config_error(result)
        assert str(path) in message or "override" in message, message
    else:
        check_resolved(result)
