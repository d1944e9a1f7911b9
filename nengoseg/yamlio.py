"""Reading YAML values (config files, ``--set`` and ``--grid`` values)."""

import re

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a number as YAML 1.2 does (PyYAML
    follows YAML 1.1, where a float needs a dot: ``1e-3`` would be the string '1e-3')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text):
    """YAML text to Python values (safe; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Loader)
