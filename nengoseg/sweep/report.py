"""The sweep report: each trial's scores from its results.json, their mean ± std over
folds per group of the other grid values, and sweep.json / sweep.md / sweep.csv."""

import csv
import heapq
import io
import json
from pathlib import Path

from nengoseg.atomic import read_json, write_json, write_text
from nengoseg.errors import NengosegError
from nengoseg.sweep.grid import FOLD_KEY, yaml_text

TRIALS = "trials"
TRIAL_LOG = "trial.log"
# (stage in results.json, label, where its scores are)
STAGES = (
    ("ann", "ANN", "test"),
    # the ANN on the examples the SNNs are scored on (the SNN rows' own comparison)
    ("ann_on_snn_examples", "ANN, SNN's examples", "scores"),
    ("converted_snn", "converted SNN", "scores"),
    ("hybrid_snn", "fine-tuned SNN", "scores"),
    ("loihi", "Loihi", "scores"),
)
METRICS = (
    ("dice_2d_mean", "Dice 2D"),
    ("dice_3d_mean", "Dice 3D"),
    ("iou_mean", "IoU"),
    ("psnr_mean", "PSNR"),
    ("ssim_mean", "SSIM"),
)


def duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def failure_line(report):
    """One line naming the failed trials (``None`` when none failed)."""
    failed = report["failed"]
    if not failed:
        return None
    rows = {row["trial"]: row for row in report["trials"]}
    def why(row):
        code = row["exit_code"]
        return (f"exit {code}: " if code is not None else "") + str(row["error"])

    named = "; ".join(f"{slug} ({why(rows[slug])})" for slug in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    return (f"{len(failed)} of {len(report['trials'])} trials failed: {named}{more}; "
            f"report: {Path(report['sweep_dir']) / 'sweep.md'}")




def stage_scores(results):
    """``{stage: {metric: value}}`` from a run's results.json (the metrics it has)."""
    stages = results.get("stages") or {}
    found = {}
    for stage, _, where in STAGES:
        scores = (stages.get(stage) or {}).get(where)
        if not isinstance(scores, dict):
            continue
        values = {metric: float(scores[metric]) for metric, _ in METRICS
                  if isinstance(scores.get(metric), (int, float))
                  and not isinstance(scores.get(metric), bool)}
        if values:
            found[stage] = values
    return found


def aggregate(rows, grid_keys):
    """Mean and population std over folds of each stage's metrics, per group.

    ``rows`` are the report's trial rows (``overrides``, ``status``, ``scores``); a group
    is one combination of the values of ``grid_keys`` other than ``data.fold``. Only
    trials that finished ok count (a group with none is one entry of stage ``None``).
    Returns ``[{group, stage, label, n, folds, trials, failed, metrics: {metric: {mean,
    std, values}}}]`` in the order the groups and stages first appear.
    """
    import numpy as np

    keys = [key for key in grid_keys if key != FOLD_KEY]
    groups = {}
    for row in rows:
        group = {key: row["overrides"].get(key) for key in keys}
        groups.setdefault(json.dumps(group, sort_keys=True), (group, []))[1].append(row)
    table = []
    for group, members in groups.values():
        done = [row for row in members if row["status"] == "ok"]
        if not any(row["scores"] for row in done):  # the group is listed all the same
            table.append({"group": group, "stage": None, "label": "no trial finished", "n": 0,
                          "folds": [], "trials": len(members),
                          "failed": len(members) - len(done), "metrics": {}})
        for stage, label, _ in STAGES:
            have = [row for row in done if stage in row["scores"]]
            if not have:
                continue
            metrics = {}
            for metric, _ in METRICS:
                values = [row["scores"][stage][metric] for row in have
                          if metric in row["scores"][stage]]
                if values:
                    metrics[metric] = {"mean": float(np.mean(values)),
                                       "std": float(np.std(values)), "values": values}
            table.append({
                "group": group, "stage": stage, "label": label, "n": len(have),
                "folds": [row["overrides"].get(FOLD_KEY) for row in have],
                "trials": len(members), "failed": len(members) - len(done),
                "metrics": metrics,
            })
    return table


def build_report(specs, records, info):
    rows = []
    for spec in specs:
        record = records.get(spec["slug"])
        row = {"trial": spec["slug"], "folder": f"{TRIALS}/{spec['slug']}",
               "overrides": spec["grid"], "status": "not run", "exit_code": None,
               "wall_seconds": None, "error": None, "scores": {}, "note": None}
        if record is not None:
            row.update(status=record["status"], exit_code=record.get("exit_code"),
                       wall_seconds=record.get("wall_seconds"), error=record.get("error"))
        if row["status"] == "ok":
            results = Path(spec["folder"]) / "results.json"
            try:
                row["scores"] = stage_scores(read_json(results, "results of the run"))
            except NengosegError as err:
                row["note"] = str(err) + ("" if results.parent.is_dir() else
                                          " (on a cluster the sweep folder must be on a "
                                          "file system every node shares)")
        rows.append(row)
    return {
        **info,
        "trials": rows,
        "failed": [row["trial"] for row in rows if row["status"] == "failed"],
        "not_run": [row["trial"] for row in rows if row["status"] == "not run"],
        "aggregate": aggregate(rows, list(info["grid"])),
        "scaleout": scaleout({**info, "trials": rows}),
    }


def makespan(times, slots):
    """Wall time of running ``times`` (seconds, in order) on ``slots`` workers that each
    take the next trial when free (how Ray hands out queued tasks)."""
    free = [0.0] * max(1, int(slots))
    for seconds in times:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free) if times else 0.0


def scaleout(report, workers=(1, 2, 4, 8, 16, 32)):
    """The sweep on N workers, estimated from this run: ``None`` unless every trial ran in
    this invocation. ``overhead`` is the measured wall time beyond the ideal schedule of
    the measured trial times on this run's slots (Ray's start, dispatch and gathering,
    the report); each estimate is the ideal schedule on N workers plus that overhead."""
    rows = {row["trial"]: row for row in report["trials"]}
    ran = report.get("ran") or []
    times = [rows[slug]["wall_seconds"] for slug in ran if slug in rows]
    if (not report.get("slots") or len(ran) != len(rows) or not times
            or any(t is None for t in times)):
        return None
    overhead = max(0.0, report["wall_seconds"] - makespan(times, report["slots"]))
    return {
        "trials": len(times), "slots": report["slots"], "wall_seconds": report["wall_seconds"],
        "mean_trial_seconds": sum(times) / len(times), "sum_trial_seconds": sum(times),
        "overhead_seconds": overhead,
        "estimates": [{"workers": n, "seconds": makespan(times, n) + overhead}
                      for n in sorted({n for n in workers if n < len(times)} | {len(times)})],
    }


def scaleout_markdown(report):
    found = report.get("scaleout")
    if found is None:
        return ("Not estimated: some trials finished in an earlier invocation (their wall "
                "times are not this run's).")
    lines = [
        f"Measured here: {found['trials']} trials, mean {duration(found['mean_trial_seconds'])} "
        f"each ({duration(found['sum_trial_seconds'])} in all), {found['slots']} at a time: "
        f"the sweep took {duration(found['wall_seconds'])}, of which "
        f"{duration(found['overhead_seconds'])} beyond the ideal schedule of the measured trial "
        "times (Ray's start, dispatch and gathering, the report). On N workers, each as fast "
        "as one slot here (one trial per worker at a time; nodes sharing the sweep folder):",
        "",
        "| workers | estimated wall time |",
        "| --- | --- |",
    ]
    lines += [f"| {e['workers']} | {duration(e['seconds'])} |" for e in found["estimates"]]
    return "\n".join(lines)


def write_report(sweep_dir, report):
    """SWEEP/sweep.json, sweep.md and sweep.csv, each written atomically."""
    sweep_dir = Path(sweep_dir)
    write_json(sweep_dir / "sweep.json", report)
    write_text(sweep_dir / "sweep.csv", report_csv(report))
    write_text(sweep_dir / "sweep.md", report_markdown(report))


def _columns(report):
    """The (stage, metric) pairs any trial has, in STAGES x METRICS order."""
    have = {(stage, metric) for row in report["trials"] for stage, values in row["scores"].items()
            for metric in values}
    return [(stage, label, metric, name) for stage, label, _ in STAGES
            for metric, name in METRICS if (stage, metric) in have]


def _cell(value):
    return value if isinstance(value, str) else yaml_text(value)


def report_csv(report):
    keys, columns = list(report["grid"]), _columns(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", *keys, "status", "exit_code", "wall_seconds",
                     *(f"{stage}.{metric}" for stage, _, metric, _ in columns), "error"])
    for row in report["trials"]:
        writer.writerow([
            row["trial"], *(_cell(row["overrides"].get(key)) for key in keys), row["status"],
            "" if row["exit_code"] is None else row["exit_code"],
            "" if row["wall_seconds"] is None else row["wall_seconds"],
            *(repr(row["scores"][stage][metric]) if metric in row["scores"].get(stage, {})
              else "" for stage, _, metric, _ in columns),
            row["error"] or row["note"] or "",
        ])
    return buffer.getvalue()


def aggregate_markdown(report):
    """The mean ± std table (one row per group and stage) in Markdown."""
    keys = [key for key in report["grid"] if key != FOLD_KEY]
    metrics = [(metric, name) for metric, name in METRICS
               if any(metric in entry["metrics"] for entry in report["aggregate"])]
    if not report["aggregate"]:
        return "(no trial finished)"
    if not metrics:
        metrics = [METRICS[0]]
    lines = ["| " + " | ".join([*keys, "stage", *(name for _, name in metrics), "folds"]) + " |",
             "| " + " | ".join(["---"] * (len(keys) + len(metrics) + 2)) + " |"]
    for entry in report["aggregate"]:
        cells = [_cell(entry["group"][key]) for key in keys] + [entry["label"]]
        for metric, _ in metrics:
            value = entry["metrics"].get(metric)
            cells.append(f"{value['mean']:.4f} ± {value['std']:.4f}" if value else "N/A")
        cells.append(f"{entry['n']}" + (f" ({entry['failed']} failed)" if entry["failed"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(report):
    keys, columns = list(report["grid"]), _columns(report)
    counts = {status: sum(row["status"] == status for row in report["trials"])
              for status in ("ok", "failed", "not run")}
    grid = ", ".join(f"`{key}={','.join(_cell(v) for v in values)}`"
                     for key, values in report["grid"].items())
    lines = [
        f"# {'Cross-validation' if report['kind'] == 'cv' else 'Sweep'}: {Path(report['config']).name}",
        "",
        f"Config `{report['config']}`; grid {grid}"
        + (f"; overrides {', '.join(f'`{s}`' for s in report['set'])}" if report["set"] else "")
        + f". {len(report['trials'])} trials: {counts['ok']} ok, {counts['failed']} failed"
        + (f", {counts['not run']} not run" if counts["not run"] else "")
        + f" (backend {report['backend']}, {report['cpus_per_trial']} CPU per trial; this "
        f"run took {duration(report['wall_seconds'])}).",
        "",
        "## Mean ± std over folds" if FOLD_KEY in report["grid"] else "## Scores",
        "",
        "Population standard deviation over the trials that finished (folds: how many).",
        "",
        aggregate_markdown(report),
        "",
        "## Scale-out",
        "",
        scaleout_markdown(report),
        "",
        "## Trials",
        "",
        "| " + " | ".join(["trial", *keys, "status", "time",
                          *(f"{label} {name}" for _, label, _, name in columns)]) + " |",
        "| " + " | ".join(["---"] * (len(keys) + 3 + len(columns))) + " |",
    ]
    for row in report["trials"]:
        cells = [f"[{row['trial']}]({row['folder']}/)",
                 *(_cell(row["overrides"].get(key)) for key in keys), row["status"],
                 duration(row["wall_seconds"]) if row["wall_seconds"] is not None else ""]
        cells += [f"{row['scores'][stage][metric]:.4f}" if metric in row["scores"].get(stage, {})
                  else "" for stage, _, metric, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [row for row in report["trials"] if row["status"] != "ok" or row["note"]]
    if problems:
        lines += ["", "## Failed or unfinished trials", ""]
        for row in problems:
            if row["status"] == "failed":
                what = f"failed (exit {row['exit_code']}): {row['error']}"
            elif row["status"] == "not run":
                what = "not run (the sweep was interrupted): rerun the same command"
            else:
                what = row["note"]
            log = f"{row['folder']}/{TRIAL_LOG}"
            has_log = (Path(report["sweep_dir"]) / log).is_file()
            lines.append(f"- `{row['trial']}`: {what}" + (f"; log: `{log}`" if has_log else ""))
    return "\n".join(lines) + "\n"
