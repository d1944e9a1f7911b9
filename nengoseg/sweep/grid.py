"""Grids of config overrides: ``KEY=V1,V2,...`` parsed as YAML, and their cross product."""

import hashlib
import itertools
import math
import re

import yaml

from nengoseg.errors import ConfigError
from nengoseg.yamlio import load_yaml

FOLD_KEY = "data.fold"
MAX_TRIALS = 10_000
_RANGE = re.compile(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*")
_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")



def parse_grid(items, flag="--grid"):
    """``{key: [values]}`` from ``KEY=V1,V2,...`` strings (in the order given).

    Values are YAML (as ``--set`` reads them); commas inside brackets, braces or quotes
    do not split (``data.size=[16, 16],[24, 24]``); ``A..B`` is the integers A to B
    inclusive. Any problem is a one-line ConfigError naming the argument.
    """
    grid = {}
    for item in items:
        item = str(item)
        where = f"{flag} {item!r}"
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"{where}: expected KEY=V1,V2,... (e.g. {flag} data.fold=0..4 "
                              f"or {flag} train.learning_rate=0.001,0.01)")
        if key in grid:
            raise ConfigError(f"{where}: {key} is given twice; give all its values in one {flag}")
        check_config_key(key, where)
        values, seen = [], set()
        for part in _split_values(text, where):
            if not part.strip():
                raise ConfigError(f"{where}: an empty value (expected KEY=V1,V2,... with no "
                                  "empty entries)")
            for value in _parse_value(part, where):
                written = yaml_text(value)
                if written in seen:
                    raise ConfigError(f"{where}: the value {written} is given twice")
                seen.add(written)
                values.append(value)
        grid[key] = values
    return grid


def _parse_value(part, where):
    match = _RANGE.fullmatch(part)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise ConfigError(f"{where}: the range {part.strip()} is empty (A..B needs A <= B)")
        if high - low >= MAX_TRIALS:
            raise ConfigError(f"{where}: the range {part.strip()} has more than {MAX_TRIALS} values")
        return list(range(low, high + 1))
    try:
        return [load_yaml(part)]
    except Exception as err:  # a YAML error, or a tag the constructor refuses
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{where}: the value {part.strip()!r} is not valid YAML "
                          f"({problem})") from None


def _split_values(text, where):
    """Split at commas outside brackets, braces and quotes."""
    parts, current, depth, quote = [], [], 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                break
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth != 0 or quote:
        raise ConfigError(f"{where}: unbalanced brackets or quotes in the values")
    parts.append("".join(current))
    return parts


def check_config_key(key, where):
    """A ConfigError naming ``where`` unless ``key`` can be a config key.

    Keys inside sections the config leaves to later stages (``convert``, ``loihi``,
    ``model.options``) are checked by the trial itself.
    """
    from nengoseg.config import SCHEMA

    node, done = SCHEMA, []
    for part in key.split("."):
        if not isinstance(node, dict):
            if _is_mapping_field(node):
                return
            raise ConfigError(f"{where}: '{'.'.join(done)}' is a value, not a section")
        if part not in node:
            inside = f" in {'.'.join(done)}" if done else ""
            raise ConfigError(f"{where}: unknown config key '{key}' (allowed keys{inside}: "
                              f"{', '.join(node)})")
        node = node[part]
        done.append(part)


def _is_mapping_field(field):
    try:
        return bool(field.check({}))
    except Exception:
        return False


def yaml_text(value):
    """``value`` as a YAML flow scalar or collection on one line (how overrides are given)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, sort_keys=False)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text.strip()


def _slug_part(value):
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", yaml_text(value)).strip("_") or "_"


def plan(grid):
    """The trials of ``grid``'s cross product: ``[(slug, {key: value})]`` (first key slowest)."""
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_TRIALS:
        raise ConfigError(f"--grid: {count} trials is more than {MAX_TRIALS}; use fewer values")
    trials, used = [], {}
    for combo in itertools.product(*grid.values()):
        point = dict(zip(grid, combo))
        slug = "__".join(f"{key}={_slug_part(value)}" for key, value in point.items()) or "base"
        exact = "\n".join(f"{key}={yaml_text(value)}" for key, value in point.items())
        if len(slug) > 120 or slug in used:
            slug = f"{slug[:100]}-{hashlib.sha1(exact.encode()).hexdigest()[:10]}"
        used[slug] = point
        trials.append((slug, point))
    return trials
