"""Running the trials: each one ``nengoseg run`` in its own process, as Ray core tasks or
one after another here; resuming finished trials; `run_sweep` and `run_cv`."""

import hashlib
import json
import logging
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from nengoseg.atomic import read_json, write_json
from nengoseg.errors import ConfigError, NengosegError
from nengoseg.sweep.grid import FOLD_KEY, check_config_key, plan, yaml_text
from nengoseg.sweep.report import (
    TRIAL_LOG, TRIALS, build_report, duration, scaleout, write_report,
)

BACKENDS = ("ray", "local")
TRIAL_RECORD = "trial.json"
TAIL_LINES = 10


# ---------------------------------------------------------------------------- trials


def run_trial(spec):
    """Run one trial (``spec`` from `_trial_spec`) as a process; write and return its record.

    A plain function of plain data, so that it runs the same here and as a Ray task.
    """
    folder = Path(spec["folder"])
    runner = spec.get("runner") or [sys.executable, "-m", "nengoseg"]
    command = [*runner, "run", "--config", spec["config"], "--run-dir", str(folder)]
    for item in spec["overrides"]:
        command += ["--set", item]
    threads = str(spec["threads"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads,
           "TF_NUM_INTRAOP_THREADS": threads}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    host = socket.gethostname()
    started, clock = time.time(), time.monotonic()
    tail = deque(maxlen=TAIL_LINES)
    exit_code, error = None, None
    if not Path(spec["cwd"]).is_dir():
        error = (f"the sweep's working folder {spec['cwd']} is not on {host} (on a cluster, "
                 "trials need the same paths on every node: a shared file system)")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / TRIAL_LOG, "a", encoding="utf-8") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {host}: "
                      f"{shlex.join(command)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE,
                                        cwd=spec["cwd"], env=env, text=True,
                                        errors="replace")
            except OSError as err:
                error = f"cannot start {command[0]}: {err.strerror or err}"
            else:
                try:
                    for line in proc.stderr:  # stderr into the log too, and its last lines
                        log.write(line)
                        log.flush()
                        if line.strip():
                            tail.append(line.rstrip("\n"))
                    exit_code = proc.wait()
                except BaseException:  # interrupted or cancelled: the trial stops too
                    proc.kill()
                    proc.wait()
                    raise
    status = "ok" if exit_code == 0 else "failed"
    if status == "failed" and error is None:
        prefix = "nengoseg: error:"
        errors = [line[len(prefix):] for line in tail if line.startswith(prefix)]
        error = (errors or list(tail) or [f"exit status {exit_code}"])[-1].strip()
    record = _record(
        spec, status, command=command, exit_code=exit_code,
        wall_seconds=round(time.monotonic() - clock, 3), started=_timestamp(started),
        host=host, error=error, stderr_tail=list(tail) if status == "failed" else [],
    )
    if Path(spec["cwd"]).is_dir():
        write_json(folder / TRIAL_RECORD, record)
    return record


def _record(spec, status, command=None, exit_code=None, wall_seconds=None, started=None,
            host=None, error=None, stderr_tail=()):
    """A trial's record (trial.json): what ran, with which overrides, and how it ended."""
    return {
        "trial": spec["slug"], "status": status, "overrides": spec["grid"],
        "set": spec["overrides"], "config": spec["config"],
        "config_sha256": spec["config_sha256"], "command": command, "exit_code": exit_code,
        "wall_seconds": wall_seconds, "started": started, "finished": _timestamp(time.time()),
        "host": host, "error": error, "stderr_tail": list(stderr_tail),
    }


def _timestamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _lost_trial(spec, err):
    """The record of a trial whose Ray task itself failed (a node lost, a cancelled task)."""
    message = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    record = _record(spec, "failed", error=f"the Ray task failed: {message}")
    try:
        write_json(Path(spec["folder"]) / TRIAL_RECORD, record)
    except OSError:
        pass
    return record


def _finished(spec):
    """The trial's earlier record when it finished ok with this config and overrides."""
    folder = Path(spec["folder"])
    try:
        record = read_json(folder / TRIAL_RECORD, "trial record")
    except NengosegError:
        return None
    same = (record.get("status") == "ok" and record.get("set") == spec["overrides"]
            and record.get("config_sha256") == spec["config_sha256"])
    return record if same and (folder / "results.json").is_file() else None


# ---------------------------------------------------------------------------- backends


class _Progress:
    """One line per finished trial: counts and an ETA from the mean trial time."""

    def __init__(self, to_run, slots, out):
        self.to_run, self.slots, self.out = to_run, max(1, slots), out
        self.ok = self.failed = 0
        self.times = []

    def trial_done(self, record):
        if record["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if record.get("wall_seconds") is not None:
            self.times.append(record["wall_seconds"])
        done = self.ok + self.failed
        left = self.to_run - done
        running = min(left, self.slots)
        eta = ""
        if left and self.times:
            eta = f", ETA {duration(sum(self.times) / len(self.times) * math.ceil(left / self.slots))}"
        what = "ok" if record["status"] == "ok" else f"FAILED ({record['error']})"
        took = (f" in {duration(record['wall_seconds'])}"
                if record.get("wall_seconds") is not None else "")
        self.out(f"sweep: [{done}/{self.to_run}] {record['trial']}: {what}{took}; finished "
                 f"{self.ok}, failed {self.failed}, running {running}, queued "
                 f"{left - running}{eta}")


def _run_local(specs, out, records):
    """Run the trials one after another here; returns how many ran at a time (1)."""
    out(f"sweep: {len(specs)} trials to run here, one after another")
    progress = _Progress(len(specs), 1, out)
    for spec in specs:
        records[spec["slug"]] = record = run_trial(spec)
        progress.trial_done(record)
    return 1


def machine_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _run_ray(specs, address, cpus_per_trial, num_cpus, out, records):
    """Run the trials as Ray tasks; returns how many could run at a time."""
    import ray

    started = False
    if not ray.is_initialized():
        given = f"--address {address}" if address else f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            _check_reachable(address, given)
        # "local": a new instance, never a cluster that `ray start` left noted in /tmp/ray
        options = {"address": address or "local", "logging_level": logging.WARNING,
                   "log_to_driver": False}
        if not address:
            options.update(num_cpus=num_cpus or machine_cores(), include_dashboard=False)
        try:
            ray.init(**options)
        except (ConnectionError, ValueError, RuntimeError) as err:
            where = f"the Ray cluster at {given}" if address else "a local Ray instance"
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            raise NengosegError(f"cannot start or join {where}: {detail}") from None
        started = True
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus_per_trial > cpus:
            if started and not address:
                raise ConfigError(f"--cpus-per-trial {cpus_per_trial} is more than the "
                                  f"{cpus:g} CPUs of the local Ray instance")
            out(f"sweep: note: --cpus-per-trial {cpus_per_trial} is more than the {cpus:g} "
                "CPUs the Ray cluster has now; trials wait until it has enough")
        slots = max(1, int(cpus // cpus_per_trial))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        out(f"sweep: {len(specs)} trials to run on Ray ({cpus:g} CPUs on {nodes} node"
            f"{'s' if nodes != 1 else ''}, {cpus_per_trial} per trial: {slots} at a time)")
        task = ray.remote(num_cpus=cpus_per_trial)(run_trial)
        pending = {task.remote(spec): spec for spec in specs}
        progress = _Progress(len(specs), slots, out)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except Exception as err:  # the task itself failed, not the trial
                        record = _lost_trial(spec, err)
                    records[spec["slug"]] = record
                    progress.trial_done(record)
        except KeyboardInterrupt:  # stop the running trials (each kills its process)
            for ref in pending:
                ray.cancel(ref)
            ray.wait(list(pending), num_returns=len(pending), timeout=10)
            raise
        return slots
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address, given):
    """A one-line error at once when nothing listens at HOST:PORT (Ray would retry for
    minutes); other forms (``auto``, ``ray://...``) are left to Ray."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise NengosegError(f"{given}: no Ray cluster answers there ({err.strerror or err}); "
                            "start one with 'ray start --head' or check the address") from None


def choose_backend(backend, out):
    """``backend`` (``None``: ray when it imports, else local with a note)."""
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"--backend {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    if backend == "local":
        return backend
    try:
        import ray  # noqa: F401
    except ImportError:
        if backend == "ray":
            raise NengosegError("--backend ray needs Ray, which cannot be imported here: "
                                "pip install 'nengoseg[distributed]' (ray>=2.9,<2.10), or use "
                                "--backend local") from None
        print("nengoseg: note: Ray is not installed (pip install 'nengoseg[distributed]'); "
              "running the trials one after another here (--backend local)", file=sys.stderr)
        return "local"
    return "ray"


# ---------------------------------------------------------------------------- sweeps


def run_sweep(config, grid, *, sweep_dir=None, overrides=(), backend=None, address=None,
              cpus_per_trial=1, num_cpus=None, kind="sweep", runner=None, from_run=None,
              out=print):
    """Run every trial of ``grid`` (``{key: [values]}``, see `parse_grid`) and write the report.

    ``overrides`` are ``KEY=VALUE`` strings for every trial (``--set``); ``sweep_dir``
    defaults to ``runs/<config name>_<kind>``; ``num_cpus`` is the size of a local Ray
    instance (default: this machine's cores); ``runner`` replaces ``[python, -m,
    nengoseg]`` as the command a trial runs (for tests); ``from_run``, a run folder with
    a trained ANN, starts every trial from a copy of that ANN (`seed_from_run`). Returns
    the report (what sweep.json holds); its ``failed`` lists the trials that failed.
    """
    from nengoseg.config import load_config

    overrides = [str(item) for item in overrides]
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, int) or cpus_per_trial < 1:
        raise ConfigError(f"--cpus-per-trial must be an integer >= 1, got {cpus_per_trial!r}")
    if address and backend == "local":
        raise ConfigError("--address joins a Ray cluster: it needs --backend ray")
    for key in grid:
        check_config_key(key, f"--grid {key}")
    cfg = load_config(config, overrides)  # the config and --set checked before any trial
    config = Path(config).resolve()
    sweep_dir = Path(sweep_dir) if sweep_dir else Path("runs") / f"{cfg['name']}_{kind}"
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError(f"--sweep-dir {sweep_dir} is a file, not a folder; give a folder path")
    sweep_dir = sweep_dir.resolve()
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    trials = plan(grid)
    specs = [_trial_spec(slug, point, config, digest, overrides, sweep_dir, cpus_per_trial,
                         runner) for slug, point in trials]
    records = {}
    for spec in specs:
        earlier = _finished(spec)
        if earlier is not None:
            records[spec["slug"]] = earlier
    to_run = [spec for spec in specs if spec["slug"] not in records]
    if from_run is not None:
        seed_from_run(from_run, grid, to_run, out)
    chosen = choose_backend(backend, out) if to_run else (backend or "none")
    out(f"sweep: {len(specs)} trials in {sweep_dir}; {len(records)} finished before "
        f"(skipped), {len(to_run)} to run")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()
    info = {"kind": kind, "config": str(config), "config_sha256": digest,
            "grid": {key: list(values) for key, values in grid.items()}, "set": overrides,
            "backend": chosen, "cpus_per_trial": cpus_per_trial, "sweep_dir": str(sweep_dir),
            "ran": [spec["slug"] for spec in to_run], "slots": None}
    ran = {}  # filled as trials end, so an interrupted sweep still reports them
    try:
        if to_run and chosen == "ray":
            info["slots"] = _run_ray(to_run, address, cpus_per_trial, num_cpus, out, ran)
        elif to_run:
            info["slots"] = _run_local(to_run, out, ran)
    except BaseException as err:
        if ran or isinstance(err, KeyboardInterrupt):
            _finish(specs, {**records, **ran}, info, clock, sweep_dir)
        raise
    return _finish(specs, {**records, **ran}, info, clock, sweep_dir)


def seed_from_run(from_run, grid, specs, out):
    """Copy ``from_run``'s trained ANN (its ``ann`` stage folder) into each trial folder
    that has none, so the trials convert, fine-tune and score that one ANN.

    A grid key in the sections the ANN depends on (seed, data, model, train) would give
    each trial another ANN: a ConfigError. A ``--set`` that differs from the run's
    settings there makes the trial fail with the keys that changed (`rundir.StageChanged`).
    """
    from nengoseg.atomic import replace_folder
    from nengoseg.rundir import finished, stage, stage_dir

    ann = stage("ann")
    source = stage_dir(from_run, "ann")
    if not Path(from_run).is_dir() or not finished(from_run, "ann"):
        raise ConfigError(f"--from-run {from_run}: no trained ANN there ({source / 'stage.json'} "
                          "is missing); give a run folder whose ANN stage finished")
    for key in grid:
        if key.split(".")[0] in ann.sections:
            raise ConfigError(f"--grid {key}: the trials of --from-run share one trained ANN, "
                              f"and {key} would change it (sections {', '.join(ann.sections)}); "
                              "grid over conversion, evaluation, cotrain or loihi keys, or drop "
                              "--from-run")
    copied = 0
    for spec in specs:
        target = stage_dir(spec["folder"], "ann")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.from-run"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
        replace_folder(tmp, target)
        copied += 1
    out(f"sweep: the trained ANN of {from_run} copied into {copied} trial folder"
        f"{'s' if copied != 1 else ''}")


def _finish(specs, records, info, clock, sweep_dir):
    info["wall_seconds"] = round(time.monotonic() - clock, 3)
    report = build_report(specs, records, info)
    if report["scaleout"] is None and not info["ran"]:  # nothing ran: keep the estimate
        try:                                            # of the run that ran the trials
            earlier = read_json(Path(sweep_dir) / "sweep.json", "sweep report")
        except NengosegError:
            earlier = {}
        if earlier.get("config_sha256") == info["config_sha256"] and \
                earlier.get("set") == info["set"] and earlier.get("grid") == info["grid"]:
            report["scaleout"] = earlier.get("scaleout") or scaleout(earlier)
    write_report(sweep_dir, report)
    return report


def run_cv(config, folds=5, *, overrides=(), **options):
    """K-fold cross-validation: the sweep ``data.fold=0..K-1`` with ``data.split=kfold``
    and ``data.n_folds=K`` (sweep folder ``runs/<config name>_cv`` by default)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"--folds must be an integer >= 2, got {folds!r}")
    overrides = [*overrides, "data.split=kfold", f"data.n_folds={folds}"]
    return run_sweep(config, {FOLD_KEY: list(range(folds))}, overrides=overrides,
                     kind="cv", **options)


def _trial_spec(slug, point, config, digest, overrides, sweep_dir, threads, runner):
    return {
        "slug": slug,
        "grid": _jsonable(point),
        "overrides": [*overrides, *(f"{key}={yaml_text(value)}" for key, value in point.items())],
        "config": str(config),
        "config_sha256": digest,
        "folder": str(sweep_dir / TRIALS / slug),
        "cwd": os.getcwd(),
        "threads": threads,
        "runner": list(runner) if runner else None,
    }


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
