"""Config loading: defaults, overrides and errors that name the key."""

import pytest

from nengoseg.config import SCHEMA, defaults, load_config, resolve
from nengoseg.errors import ConfigError
from nengoseg.sweep import parse_grid
from pathlib import Path

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_resolve(path):
    cfg = load_config(path)
    assert set(cfg) == set(SCHEMA)
    assert cfg["name"] == path.stem


def test_missing_keys_take_defaults():
    cfg = resolve({"train": {"epochs": 3}})
    assert cfg["train"]["epochs"] == 3
    assert cfg["train"]["learning_rate"] == defaults()["train"]["learning_rate"]
    assert cfg["data"]["size"] == [56, 48]


@pytest.mark.parametrize(
    "raw, key, allowed",
    [
        ({"train": {"epoch": 3}}, "train.epoch", "allowed keys in train"),
        ({"trian": {}}, "trian", "allowed keys"),
        ({"train": {"epochs": 0}}, "train.epochs", "an integer >= 1"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "an integer"),
        ({"train": {"loss": "focal"}}, "train.loss", "'bce', 'dice', 'bce_dice', 'mse', 'mae'"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate", "a number > 0"),
        ({"data": {"size": [56]}}, "data.size", "two positive integers"),
        ({"data": {"normalise": "z"}}, "data.normalise", "'unit', 'zero_mean'"),
        ({"data": {"fold": 5}}, "data.fold", "0 .. data.n_folds - 1"),
        ({"model": {"kind": "resnet"}}, "model.kind", "'cae', 'unet', 'locnet'"),
        ({"data": "x"}, "data", "mapping"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(raw, key, allowed):
    with pytest.raises(ConfigError) as err:
        resolve(raw)
    assert f"'{key}'" in str(err.value)
    assert allowed in str(err.value)


def test_overrides_are_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  epochs: 4\n")
    assert load_config(path, ["train.epochs=7"])["train"]["epochs"] == 7
    assert load_config(path, ["model.options={filters: 4}"])["model"]["options"] == {"filters": 4}
    with pytest.raises(ConfigError, match="'train.epochs'"):
        load_config(path, ["train.epochs=-1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(path, ["train.epochs"])


def test_exponent_numbers_are_numbers_in_files_overrides_and_grids(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 as the string '1e-3'; YAML 1.2 and users read a number
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  learning_rate: 1e-3\n")
    cfg = load_config(path, ["train.min_lr=5E-7"])
    assert cfg["train"]["learning_rate"] == 0.001 and cfg["train"]["min_lr"] == 5e-7
    assert parse_grid(["train.learning_rate=1e-3,2.5e-4,1e"]) == {
        "train.learning_rate": [0.001, 0.00025, "1e"]}


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
