"""results.json of a run folder: metrics per stage, timings and versions."""

import json
import platform
from importlib import metadata
from pathlib import Path

from nengoseg.atomic import write_json

STACK = ("tensorflow", "keras", "nengo", "nengo-dl", "nengo-loihi", "numpy", "scipy", "nibabel")


def versions():
    found = {"python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def read_results(run_dir):
    path = Path(run_dir) / "results.json"
    if not path.exists():
        return {"stages": {}}
    return json.loads(path.read_text())


def update_results(run_dir, stage, payload):
    """Set one stage's entry in results.json (written atomically) and return the whole."""
    results = read_results(run_dir)
    results.setdefault("stages", {})[stage] = payload
    results["versions"] = versions()
    write_json(Path(run_dir) / "results.json", results)
    return results
