"""report.md: the papers' table (model, Dice 2D, Dice 3D, average firing rate) from results.json."""

from pathlib import Path

from nengoseg.atomic import write_text
from nengoseg.results import read_results

# stage name in results.json -> row label, in table order
ROWS = {
    "ann": "pure ANN (all test examples)",
    "ann_on_snn_examples": "pure ANN",
    "converted_snn": "converted SNN",
    "evaluate_ann": "ANN (nengoseg evaluate)",
    "evaluate_snn": "SNN (nengoseg evaluate)",
}


def _scores(payload):
    # the ANN stage keeps its scores per split; the others under "scores"
    return payload.get("scores") or payload.get("test")


def _rate(payload):
    rate = payload.get("mean_firing_rate_hz")
    return "N/A" if rate is None else f"{rate:.1f} Hz"


def table(results):
    stages = [(label, results["stages"][name]) for name, label in ROWS.items() if name in results["stages"]]
    if not stages:
        return "(no results yet)\n"
    boxes = "iou_mean" in _scores(stages[0][1])
    if boxes:
        lines = ["| model | mean IoU | avg. firing rate |", "| --- | --- | --- |"]
        for label, payload in stages:
            s = _scores(payload)
            lines.append(f"| {label} | {s['iou_mean']:.4f} ± {s['iou_std']:.4f} | {_rate(payload)} |")
    else:
        lines = ["| model | Dice 2D | Dice 3D | avg. firing rate |", "| --- | --- | --- | --- |"]
        for label, payload in stages:
            s = _scores(payload)
            lines.append(
                f"| {label} | {s['dice_2d_mean']:.4f} ± {s['dice_2d_std']:.4f} "
                f"| {s['dice_3d_mean']:.4f} ± {s['dice_3d_std']:.4f} | {_rate(payload)} |"
            )
    return "\n".join(lines) + "\n"


def write_report(run_dir):
    """Write RUN/report.md from RUN/results.json and return the table."""
    results = read_results(run_dir)
    text = table(results)
    write_text(Path(run_dir) / "report.md", f"# {Path(run_dir).name}\n\n{text}")
    return text
