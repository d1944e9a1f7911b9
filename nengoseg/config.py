"""Experiment configs: one YAML file describes one experiment end to end.

A config is checked against :data:`SCHEMA` when it is loaded: every key must be
known and every value allowed, and the error names the key (``train.epochs``)
and what would be accepted. Missing keys take the schema's defaults, so the
resolved config written into a run folder says everything the run used.
"""

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from nengoseg.backends import DEFAULT_SNN, SIMULATORS
from nengoseg.errors import ConfigError
from nengoseg.yamlio import load_yaml


_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One config value: its default, what is allowed (in words) and its check."""

    default: Any
    allowed: str
    check: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def choice(default, *options):
    return Field(default, "one of " + ", ".join(map(repr, options)), lambda v: v in options)


def integer(default, low=None, high=None, optional=False):
    bounds = _bounds_text(low, high)
    return Field(
        default,
        ("null or " if optional else "") + "an integer" + bounds,
        lambda v: (optional and v is None)
        or (isinstance(v, int) and not isinstance(v, bool) and _within(v, low, high)),
    )


def number(default, low=None, high=None, optional=False, low_open=False):
    bounds = _bounds_text(low, high, low_open)
    return Field(
        default,
        ("null or " if optional else "") + "a number" + bounds,
        lambda v: (optional and v is None)
        or (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and _within(v, low, high, low_open)
        ),
        lambda v: None if v is None else float(v),
    )


def text(default, optional=False):
    return Field(
        default,
        ("null or " if optional else "") + "a string",
        lambda v: (optional and v is None) or isinstance(v, str),
    )


def flag(default):
    return Field(default, "true or false", lambda v: isinstance(v, bool))


def int_pair(default):
    return Field(
        default,
        "a list of two positive integers, e.g. [56, 48]",
        lambda v: isinstance(v, (list, tuple))
        and len(v) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v),
        list,
    )


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_list(default, low=None, high=None):
    """A non-empty list of distinct integers within the bounds, e.g. noise levels."""
    return Field(
        default,
        "a non-empty list of distinct integers" + _bounds_text(low, high) + f", e.g. {default}",
        lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and len(set(v)) == len(v)
        and all(isinstance(i, int) and not isinstance(i, bool) and _within(i, low, high)
                for i in v),
        list,
    )


def number_pair(default, low=None, high=None):
    """``[low, high]``: two numbers within the bounds, the first not above the second."""
    return Field(
        default,
        "a list [low, high] of two numbers" + _bounds_text(low, high) + f", e.g. {default}",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2
        and all(_is_number(i) and _within(i, low, high) for i in v) and v[0] <= v[1],
        lambda v: [float(i) for i in v],
    )


def free_mapping(default):
    """A mapping checked later by the code that uses it (e.g. model options)."""
    return Field(default, "a mapping of option: value", lambda v: isinstance(v, dict), dict)


def _within(v, low, high, low_open=False):
    if low is not None and (v <= low if low_open else v < low):
        return False
    return high is None or v <= high


def _bounds_text(low, high, low_open=False):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"<= {high}")
    return (" " + " and ".join(parts)) if parts else ""


def run_name(default):
    """A run's name: becomes the folder runs/<name>, so no path separators or '..'."""
    return Field(
        default,
        "a name of letters, digits, '.', '-' and '_' (it names the folder runs/<name>)",
        lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", v) is not None
        and ".." not in v,
    )


SCHEMA = {
    "name": run_name("experiment"),
    "seed": integer(0, low=0),
    "data": {
        "dataset": choice("hippocampus", "hippocampus", "isbi2012", "drive", "airplanes",
                          "denoising"),
        # a folder, or "sample:hippocampus" for the sample shipped inside the package;
        # relative paths are resolved against the current working directory
        "root": text("sample:hippocampus", optional=True),
        "images_dir": text(None, optional=True),
        "labels_dir": text(None, optional=True),
        "normalise": choice("unit", "unit", "zero_mean"),
        "task": choice("binary", "binary", "multiclass"),
        "slice_axis": choice(0, 0, 1, 2),
        "size": int_pair([56, 48]),
        "split": choice("holdout", "holdout", "kfold"),
        "test_fraction": number(0.2, low=0, high=1, low_open=True),
        "val_fraction": number(0.1, low=0, high=1),
        "n_folds": integer(5, low=2),
        "fold": integer(0, low=0),
        "max_subjects": integer(None, low=3, optional=True),
        # isbi2012: the class that is 1, "membrane" (label 0 on disk) or "cell" (255,
        # the class the Spiking-UNet paper's F1 scores)
        "foreground": choice("membrane", "membrane", "cell"),
        # denoising: data.root holds the clean training PNGs (Train400); the test images
        # are test_root/test_set/*.png at each of test_sigmas (0-255 scale); training
        # patches get a sigma drawn from sigma_range; channels 3 for colour (CBSD68)
        "test_root": text(None, optional=True),
        "test_set": choice("BSD68", "BSD68", "Set12", "CBSD68"),
        "test_sigmas": int_list([15, 25, 50], low=0, high=255),
        "sigma_range": number_pair([0, 55], low=0, high=255),
        "patches_per_image": integer(4, low=1),
        "max_test_images": integer(None, low=1, optional=True),
        "channels": choice(1, 1, 3),
    },
    "model": {
        "kind": choice("unet", "cae", "unet", "locnet"),
        # builder options (filters, depth, dropout, ...), checked by nengoseg.models
        "options": free_mapping({}),
    },
    "train": {
        "loss": choice("dice", "bce", "dice", "bce_dice", "mse", "mae"),
        "bce_weight": number(0.5, low=0),
        "dice_weight": number(0.5, low=0),
        "learning_rate": number(1e-3, low=0, low_open=True),
        "epochs": integer(100, low=1),
        "batch_size": integer(26, low=1),
        "reduce_lr_factor": number(0.5, low=0, high=1, low_open=True),
        "reduce_lr_patience": integer(5, low=1),
        "min_lr": number(1e-6, low=0),
        "early_stopping_patience": integer(10, low=1, optional=True),
        "monitor": choice("val_loss", "val_loss", "loss"),
        # linear learning-rate warm-up over the first epochs (0: none)
        "warmup_epochs": integer(0, low=0),
    },
    # ANN -> SNN conversion: the fields of nengoseg.convert.ConversionSettings
    # (scale_firing_rates, synapse, n_steps, input_coding, normalise, threshold, ...),
    # checked by that class
    "convert": free_mapping({}),
    # hybrid co-training of the converted SNN: spikes forward, rate gradients back
    "cotrain": {
        # nengoseg run: whether the pipeline co-trains after conversion
        "enabled": flag(True),
        # the simulator trained (nengoseg.backends): "engine" (time-batched) or "nengo-dl"
        "engine": choice(DEFAULT_SNN, *SIMULATORS),
        # how gradients cross the spikes: "hybrid" (the rate neuron's gradient, the
        # co-training paper), "bptt" (backpropagation through time with the
        # three-stage paper's triangle surrogate of height surrogate_alpha) or
        # "spiking_flow" (Spiking-UNet: one gradient pass on the accumulated flows);
        # the last two in the engine only
        "method": choice("hybrid", "hybrid", "bptt", "spiking_flow"),
        "surrogate_alpha": number(1.0, low=0, low_open=True),
        "epochs": integer(20, low=1),
        "learning_rate": number(1e-4, low=0, low_open=True),
        "batch_size": integer(16, low=1),
        # simulation steps per example while training (null: convert.n_steps)
        "n_steps": integer(None, low=1, optional=True),
        # firing-rate regularisation (null: none; the CAE recipe relies on scaling)
        "rate_target_hz": number(None, low=0, optional=True),
        "rate_weight_output": number(1.0, low=0),
        "rate_weight_hidden": number(0.01, low=0),
        "reduce_lr_factor": number(0.5, low=0, high=1, low_open=True),
        "reduce_lr_patience": integer(3, low=1),
        "min_lr": number(1e-7, low=0),
        "early_stopping_patience": integer(5, low=1, optional=True),
        "monitor": choice("val_loss", "val_loss", "loss"),
        # cap on training examples per epoch (null: all), for slow CPU runs
        "max_train_examples": integer(None, low=1, optional=True),
    },
    # deployment on nengo-loihi (nengoseg deploy, and the last stage of nengoseg run):
    # the fields are checked by nengoseg.loihi (target, n_images, n_steps, ...);
    # "enabled" says whether nengoseg run deploys
    "loihi": free_mapping({"enabled": True}),
    "evaluate": {
        # the SNN simulator (nengoseg.backends): "engine" (time-batched) or "nengo-dl"
        "engine": choice(DEFAULT_SNN, *SIMULATORS),
        # the examples SNNs are scored on (NengoDL simulation is slow on a CPU:
        # max_subjects keeps whole subjects, so 3D Dice stays meaningful)
        "split": choice("test", "test", "val", "train"),
        "max_subjects": integer(None, low=1, optional=True),
        "minibatch_size": integer(16, low=1),
        # training examples used for data-based (percentile) normalisation
        "calibration_examples": integer(256, low=1),
        # the report's columns: "dice" (Dice per slice and per subject) or "pixel"
        # (the Spiking-UNet paper's F1, JS and ACC per image or subject)
        "table": choice("dice", "dice", "pixel"),
    },
}


def defaults(schema=SCHEMA):
    """The config with every key at its default."""
    return {
        key: defaults(field) if isinstance(field, dict) else copy.deepcopy(field.default)
        for key, field in schema.items()
    }


def resolve(raw, schema=SCHEMA, prefix="", source="config"):
    """Check ``raw`` against ``schema`` and fill in defaults; raise ConfigError on the first problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = f"'{prefix[:-1]}'" if prefix else "the top level"
        raise ConfigError(f"{source}: {where} must be a mapping of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' "
            f"(allowed keys{' in ' + prefix[:-1] if prefix else ''}: {', '.join(schema)})"
        )
    resolved = {}
    for key, field in schema.items():
        value = raw.get(key, _MISSING)
        if isinstance(field, dict):
            resolved[key] = resolve(
                {} if value is _MISSING else value, field, f"{prefix}{key}.", source
            )
            continue
        if value is _MISSING:
            resolved[key] = copy.deepcopy(field.default)
        elif field.check(value):
            resolved[key] = field.convert(value)
        else:
            raise ConfigError(
                f"{source}: bad value {value!r} for '{prefix}{key}' (allowed: {field.allowed})"
            )
    _check_consistency(resolved, source)
    return resolved


def _check_consistency(cfg, source):
    cotrain = cfg.get("cotrain")
    if cotrain and cotrain["method"] != "hybrid" and cotrain["engine"] == "nengo-dl":
        raise ConfigError(f"{source}: 'cotrain.method' {cotrain['method']} needs 'cotrain.engine' "
                          "engine (the time-batched engine); NengoDL co-trains with method "
                          "hybrid")
    data = cfg.get("data")
    if not data or "fold" not in data:
        return
    if data["fold"] >= data["n_folds"]:
        raise ConfigError(
            f"{source}: bad value {data['fold']!r} for 'data.fold' "
            f"(allowed: 0 .. data.n_folds - 1 = {data['n_folds'] - 1})"
        )
    if data["test_fraction"] + data["val_fraction"] >= 1:
        raise ConfigError(
            f"{source}: 'data.test_fraction' + 'data.val_fraction' must be below 1 "
            f"(got {data['test_fraction']} + {data['val_fraction']})"
        )
    if (data["images_dir"] is None) != (data["labels_dir"] is None):
        raise ConfigError(
            f"{source}: give both 'data.images_dir' and 'data.labels_dir', or neither "
            "(then 'data.root' holds imagesTr/ and labelsTr/)"
        )


def apply_overrides(raw, overrides):
    """Set ``KEY.PATH=VALUE`` overrides (values parsed as YAML) on a raw config."""
    raw = copy.deepcopy(raw) if raw is not None else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad override {item!r} (expected KEY=VALUE, e.g. train.epochs=5)")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad override {item!r}: '{part}' is not a section")
        node[leaf] = load_yaml(value)
    return raw


def load_config(path, overrides=()):
    """Read, check and resolve a YAML config file, with ``KEY=VALUE`` overrides.

    Every problem is a one-line ConfigError naming the file: unreadable, not UTF-8,
    not valid YAML (with the line and column), not a mapping, keys that are not text,
    aliases that expand too far or into themselves, unknown keys, bad values
    (including NaN and infinite numbers anywhere) and bad overrides.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping of keys (e.g. 'train:'), "
            f"got {_yaml_kind(raw)} at the top level"
        )
    _check_overrides(overrides)
    raw = apply_overrides(raw, overrides)
    _check_tree(raw, path)
    try:
        cfg = resolve(raw, source=str(path))
    except ConfigError as err:  # a key with a line break, named as written
        if len(str(err).splitlines()) > 1:
            raise ConfigError(" ".join(str(err).split())) from None
        raise
    _check_finite(cfg, path)
    return cfg


# at most this many values in a config, aliases expanded (a YAML "billion laughs" or an
# alias inside itself would otherwise expand without end when the config is written out)
MAX_CONFIG_VALUES = 10_000


def _read_yaml(path):
    """The YAML document in ``path``; a one-line ConfigError for anything unreadable."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        text_ = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}); "
            "save the config as UTF-8"
        ) from None
    try:
        return load_yaml(text_)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML {_yaml_problem(err, text_)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    except Exception as err:  # a YAML tag the constructor refuses (!!int x, a bad date)
        raise ConfigError(
            f"{path}: not valid YAML: {_one_line(f'{type(err).__name__}: {err}')}"
        ) from None


def _yaml_problem(err, text_):
    """``at line L, column C: problem (context)`` of a PyYAML error, on one line."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        where = f"at line {mark.line + 1}, column {mark.column + 1}"
    elif getattr(err, "position", None) is not None:  # a ReaderError: a bad character
        pos = min(err.position, len(text_))
        column = pos - text_.rfind("\n", 0, pos)
        where = f"at line {text_.count(chr(10), 0, pos) + 1}, column {column}"
    else:
        where = ""
    problem = getattr(err, "problem", None) or str(err).split("\n")[0]
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        context = f"{context} from line {context_mark.line + 1}, column {context_mark.column + 1}"
    detail = f"{problem} ({context})" if context else problem
    return _one_line(f"{where}: {detail}" if where else f": {detail}")


def _one_line(text_, limit=300):
    text_ = " ".join(str(text_).split())
    return text_ if len(text_) <= limit else text_[: limit - 3] + "..."


def _yaml_kind(value):
    kinds = {list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _check_overrides(overrides):
    """A one-line ConfigError for an override whose value is not valid YAML."""
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep:
            continue  # apply_overrides says what is expected
        try:
            load_yaml(value)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"bad override {item!r}: the value is not valid YAML {_yaml_problem(err, value)}"
            ) from None
        except Exception as err:
            raise ConfigError(
                f"bad override {item!r}: the value is not valid YAML "
                f"({_one_line(f'{type(err).__name__}: {err}')})"
            ) from None


def _check_tree(raw, path):
    """Keys must be text; at most MAX_CONFIG_VALUES values, aliases expanded."""
    stack, count = [(raw, None)], 0  # (value, where): where is (key, parent's where)
    while stack:
        node, where = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{path}: more than {MAX_CONFIG_VALUES} values once YAML aliases (*name) are "
                "expanded, or an alias inside itself; expected a config without such aliases"
            )
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    at = f"in '{_dotted(where)}'" if where else "at the top level"
                    raise ConfigError(
                        f"{path}: key {key!r:.40} {at} is {_yaml_kind(key)}, not a name; "
                        "expected text keys (quote it, e.g. 'yes': or '1':)"
                    )
                stack.append((value, (key, where)))
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((value, (i, where)) for i, value in enumerate(node))


def _dotted(where):
    """``train.size[0]`` for the chain ``(0, ("size", ("train", None)))``."""
    parts = []
    while where is not None:
        key, where = where
        if not isinstance(key, int) and not key.isprintable():
            key = repr(key)
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def _check_finite(cfg, path):
    """A ConfigError naming the key of a NaN or infinite number in the resolved config."""
    stack = [(cfg, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, f"{where}.{k}" if where else k) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(
                f"{path}: bad value {node!r} for '{where}' (allowed: a finite number)"
            )


def dump_config(cfg):
    return yaml.safe_dump(cfg, sort_keys=False)
