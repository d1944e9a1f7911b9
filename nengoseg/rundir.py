"""The run folder: where each stage writes, and what it recorded when it wrote.

::

    RUN/
      config.yaml     the resolved config of the last command that passed its checks
      results.json    every stage's scores, rebuilt from the stage records below
      ann/ snn/ hybrid/ loihi/
                      one folder per stage, each swapped in whole (`nengoseg.atomic`):
        stage.json    the stage's record: its results and its provenance (the config
                      sections it depends on, a fingerprint of the data, the id of the
                      stage it was made from)
        predictions/  the stage's outputs on the evaluation examples
      work/<stage>/   a stage in progress (checkpoints to resume from), removed when
                      the stage is swapped in
      report.md, figures/, timings.json

A stage folder and its scores are written together: the stage is built in a
temporary folder, its record written last, and the folder swapped in at once, so
``results.json`` always describes the artefacts beside it. A stage is reused only
when its provenance matches the current config and data; otherwise
:class:`StageChanged` names the keys that changed. Redoing a stage removes the
stages that were made from it.
"""

import contextlib
import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from nengoseg._versions import versions
from nengoseg.atomic import read_json, remove_folder, replace_folder, write_json
from nengoseg.errors import DataError, NengosegError

RECORD = "stage.json"
RESULTS = "results.json"
WORK = "work"
PREDICTIONS = "predictions"
FORMAT_VERSION = 1


class StageChanged(NengosegError):
    """A finished stage was made with other settings or data than the current ones."""


@dataclass(frozen=True)
class Stage:
    name: str  # the name used by `nengoseg run` and in messages
    folder: str  # its folder in the run
    sections: tuple  # the config sections its artefacts and scores depend on
    results: tuple  # the results.json entries it writes
    what: str  # in words


_ANN_SECTIONS = ("seed", "data", "model", "train")
STAGES = (
    Stage("ann", "ann", _ANN_SECTIONS, ("ann",), "the trained ANN"),
    Stage("convert", "snn", _ANN_SECTIONS + ("convert", "evaluate"),
          ("ann_on_snn_examples", "converted_snn"), "the conversion"),
    Stage("cotrain", "hybrid", _ANN_SECTIONS + ("convert", "evaluate", "cotrain"),
          ("hybrid_snn",), "the co-trained SNN"),
    Stage("deploy", "loihi", _ANN_SECTIONS + ("convert", "evaluate", "cotrain", "loihi"),
          ("loihi",), "the Loihi deployment"),
)
BY_NAME = {s.name: s for s in STAGES}
# keys that steer what `nengoseg run` does, not what a stage makes
IGNORED_KEYS = {("cotrain", "enabled"), ("loihi", "enabled")}


def stage(name):
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}") from None


def stage_dir(run_dir, name):
    """RUN/<folder> of a stage (``ann``, ``convert``, ``cotrain``, ``deploy``)."""
    return Path(run_dir) / stage(name).folder


def work_dir(run_dir, name):
    """RUN/work/<folder>: a stage's checkpoints while it runs."""
    return Path(run_dir) / WORK / stage(name).folder


def model_path(run_dir):
    """The trained Keras ANN of a run."""
    return stage_dir(run_dir, "ann") / "model.h5"


def predictions_path(run_dir, name, entry):
    """The outputs that stage ``name`` saved as ``entry``."""
    return stage_dir(run_dir, name) / PREDICTIONS / f"{entry}.npz"


# ----------------------------------------------------------------- records


def read_record(run_dir, name):
    """The record of a finished stage, or None when the stage has not finished."""
    path = stage_dir(run_dir, name) / RECORD
    if not path.is_file():
        return None
    record = read_json(path, "stage record")
    if not isinstance(record.get("results"), dict) or not isinstance(record.get("provenance"), dict):
        raise DataError(f"{path}: not a stage record (no 'results'/'provenance'); delete "
                        f"{stage_dir(run_dir, name)} to redo the stage")
    return record


def finished(run_dir, name):
    return read_record(run_dir, name) is not None


def provenance(cfg, name, data_fingerprint=None, inputs=None):
    """What a stage records about how it was made: config sections, data, inputs."""
    sections = {
        key: _without_ignored(key, cfg[key]) for key in stage(name).sections if key in cfg
    }
    return {"config": sections, "data": data_fingerprint, "inputs": dict(inputs or {})}


def _without_ignored(section, value):
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if (section, k) not in IGNORED_KEYS}
    return value


def changed_keys(old, new, prefix=""):
    """Dotted keys whose values differ between two config trees, with (old, new)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            out += changed_keys(old.get(key, "<unset>"), new.get(key, "<unset>"),
                                f"{prefix}{key}.")
        return out
    if _normal(old) != _normal(new):
        return [(prefix[:-1], old, new)]
    return []


def _normal(value):
    return json.loads(json.dumps(value, default=str))


def check_current(run_dir, name, expected, force=False):
    """Whether stage ``name`` may be reused: "missing", "current" or "redo".

    ``expected`` is the provenance the stage would record now. A finished stage
    whose record differs raises StageChanged naming the keys, unless ``force``
    (then "redo").
    """
    record = read_record(run_dir, name)
    if record is None:
        return "missing"
    reasons = differences(record["provenance"], expected)
    if not reasons:
        return "current"
    if force:
        return "redo"
    raise StageChanged(
        f"{stage_dir(run_dir, name)}: {stage(name).what} was made with "
        f"{'; '.join(reasons)}; use a new --run-dir, or --force to redo {name} and the "
        "stages after it"
    )


def differences(recorded, expected):
    """What differs between two provenances, in words (empty when they match)."""
    reasons = []
    keys = changed_keys(recorded.get("config", {}), expected.get("config", {}))
    for key, old, new in keys[:3]:
        reasons.append(f"{key}={_short(old)} (now {_short(new)})")
    if len(keys) > 3:
        reasons.append(f"{len(keys) - 3} more changed key(s)")
    if expected.get("data") is not None and recorded.get("data") != expected.get("data"):
        reasons.append("other data (the data files or the split changed)")
    for key, value in (expected.get("inputs") or {}).items():
        if recorded.get("inputs", {}).get(key) != value:
            reasons.append(f"another {key} (it was redone since)")
    return reasons


def _short(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class NewStage:
    """A stage being written: artefacts go under ``path``, entries into ``results``."""

    name: str
    path: Path
    results: dict
    provenance: dict


@contextlib.contextmanager
def writing_stage(run_dir, name, prov):
    """Build stage ``name`` in a temporary folder; swap it in with its record on success.

    The stages after it (made from the one it replaces) are removed, and
    results.json is rebuilt. On an error or an interrupt nothing of the run changes.
    """
    run_dir = Path(run_dir)
    tmp = run_dir / f".new-{stage(name).folder}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        new = NewStage(name, tmp, {}, prov)
        yield new
        record = {
            "format_version": FORMAT_VERSION,
            "stage": name,
            "id": uuid.uuid4().hex,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "provenance": prov,
            "results": new.results,
        }
        write_json(tmp / RECORD, record)
        replace_folder(tmp, stage_dir(run_dir, name))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for later in STAGES[[s.name for s in STAGES].index(name) + 1:]:
        remove_folder(stage_dir(run_dir, later.name))
    remove_folder(work_dir(run_dir, name))
    sync_results(run_dir)


def stage_id(run_dir, name):
    record = read_record(run_dir, name)
    return record["id"] if record else None


def remove_stage(run_dir, name):
    remove_folder(stage_dir(run_dir, name))
    sync_results(run_dir)


# ----------------------------------------------------------------- work folders


def prepare_work(run_dir, name, prov):
    """RUN/work/<stage>, kept for a resume only when it was started with ``prov``.

    A work folder left by a run with other settings (or an older format) is
    removed, so a checkpoint is never resumed into another network.
    """
    folder = work_dir(run_dir, name)
    marker = folder / "provenance.json"
    if folder.exists():
        try:
            kept = read_json(marker, "work provenance")
        except DataError:
            kept = None
        if kept != _normal(prov):
            if (folder / "checkpoint").exists():
                print(f"{name}: discarding the unfinished run in {folder} (it was started with "
                      "other settings or data)", flush=True)
            remove_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_json(marker, prov)
    return folder


# ----------------------------------------------------------------- results.json


def read_results(run_dir):
    """Every stage's results: the records of the finished stages, plus the entries
    that commands without a stage (``nengoseg evaluate``) keep in results.json."""
    run_dir = Path(run_dir)
    merged = {}
    path = run_dir / RESULTS
    if path.is_file():
        extra = read_json(path, "results file").get("extra", {})
        if isinstance(extra, dict):
            merged.update(extra)
    merged.update(read_results_from_records(run_dir))
    return {"stages": merged}


def sync_results(run_dir):
    """Rewrite results.json from the stage records (after a stage was swapped in)."""
    run_dir = Path(run_dir)
    extra = {}
    path = run_dir / RESULTS
    if path.is_file():
        try:
            extra = read_json(path, "results file").get("extra", {})
        except DataError:
            extra = {}
    records = _records(run_dir)
    stages = dict(extra)
    for record in records.values():
        stages.update(record["results"])
    ids = {name: record["id"] for name, record in records.items()}
    write_json(path, {"stages": stages, "stage_ids": ids, "extra": extra, "versions": versions()})


def _records(run_dir):
    """The records of the finished stages, in pipeline order, each read once."""
    records = {s.name: read_record(run_dir, s.name) for s in STAGES}
    return {name: record for name, record in records.items() if record is not None}


def read_results_from_records(run_dir):
    merged = {}
    for record in _records(run_dir).values():
        merged.update(record["results"])
    return merged


def update_extra(run_dir, entry, payload):
    """Set a results.json entry that belongs to no stage (``evaluate_ann``/``_snn``)."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS
    extra = read_json(path, "results file").get("extra", {}) if path.is_file() else {}
    extra[entry] = payload
    write_json(path, {"extra": extra})
    sync_results(run_dir)


# ----------------------------------------------------------------- provenance of inputs


def trained_data_config(run_dir):
    """The ``data`` section the run's ANN was trained with (preprocessing for new inputs).

    From the ANN stage's own record, never from a later edit of config.yaml.
    """
    record = read_record(run_dir, "ann")
    if record is None:
        raise DataError(f"{run_dir}: no trained ANN ({stage_dir(run_dir, 'ann') / RECORD} is "
                        "missing); pass --model with a run folder that `nengoseg train-ann` finished")
    return record["provenance"]["config"]["data"]


def fingerprint_arrays(*arrays):
    """A short hash of arrays' shapes, dtypes and bytes (the data a stage used)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array.reshape(-1).view("uint8") if array.flags.c_contiguous
                                 else array.copy().reshape(-1).view("uint8")))
    return digest.hexdigest()[:16]


def data_fingerprint(data):
    """The fingerprint of an ExperimentData (every part's inputs, targets and groups)."""
    import numpy as np

    cached = getattr(data, "_fingerprint", None)
    if cached is not None:
        return cached
    arrays = []
    for part in (data.train, data.val, data.test):
        arrays += [np.ascontiguousarray(part.x), np.ascontiguousarray(part.y),
                   np.asarray(part.groups).astype(str).astype("U64")]
    data._fingerprint = fingerprint_arrays(*arrays)
    return data._fingerprint


def file_fingerprint(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_writable(run_dir):
    """A one-line error when the run folder cannot be made or written."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NengosegError(f"--run-dir {run_dir} is a file, not a folder; give a folder path")
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NengosegError(f"--run-dir {run_dir}: {existing} is a file, not a folder")
    try:
        probe = existing / f".nengoseg-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise NengosegError(
            f"cannot write in the run folder {run_dir}: {err.strerror or err}; "
            "give a writable --run-dir"
        ) from None
    return run_dir


__all__ = [
    "STAGES", "StageChanged", "check_current", "check_writable", "data_fingerprint",
    "file_fingerprint", "model_path", "predictions_path", "prepare_work", "provenance",
    "read_record", "read_results", "remove_stage", "stage_dir", "stage_id", "sync_results",
    "trained_data_config", "update_extra", "work_dir", "writing_stage",
]
