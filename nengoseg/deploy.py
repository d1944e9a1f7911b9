"""The Loihi stage: run the run's latest spiking network on nengo-loihi and compare.

``deploy_stage`` is what ``nengoseg deploy`` (and the last stage of ``nengoseg
run``) does: it takes the co-trained SNN of the run if there is one, else the
converted one (`nengoseg.snn_stage.latest_conversion`), rewrites it for nengo-loihi
(`nengoseg.loihi.rewrite`), tiles it over cores (`nengoseg.loihi.blocks`), runs a
subset of the evaluation examples on the emulator (or the board), runs the NengoDL
SNN on the same examples (the Python API's ``ns.loihi.compile(ns.load(folder))``,
`nengoseg.loihi.chip`, then ``chip.run`` and ``snn.run(backend="nengo-dl")``), and writes results stage "loihi" (scores, agreement,
firing rates, speed, resources, energy), ``RUN/loihi/resources.{md,json}`` and the
Loihi outputs under ``RUN/loihi/predictions/loihi.npz``, swapped in together.

The block shapes chosen are kept in resources.json and reused when the same
conversion is deployed again (the search takes minutes on a U-Net).
"""

import time
from pathlib import Path

import numpy as np

from nengoseg import evaluate, metrics, rundir, spiking_model
from nengoseg.atomic import read_json, write_json, write_text
from nengoseg.errors import DataError
from nengoseg.loihi import energy, resources
from nengoseg.loihi.chip import compile_model
from nengoseg.loihi.run import check_target
from nengoseg.loihi.settings import DeploySettings
from nengoseg.predictions import save_predictions
from nengoseg.results import read_results

STAGE = "loihi"


def deploy_settings(cfg):
    """The config's ``loihi`` section as `DeploySettings` (ConfigError names loihi.KEY)."""
    return DeploySettings.from_config(cfg.get("loihi"))


def select_examples(part, n_images):
    """Row indices into ``part`` of the examples to run on Loihi.

    Whole subjects (in order) while they fit in ``n_images``; else ``n_images``
    slices evenly spaced through the first subject (its first slices would be the
    volume's edge, mostly background).
    """
    if n_images is None or n_images >= len(part):
        return np.arange(len(part))
    keep, total = [], 0
    for group in dict.fromkeys(part.groups.tolist()):
        size = int(np.sum(part.groups == group))
        if total + size > n_images:
            break
        keep.append(group)
        total += size
    if keep:
        return np.flatnonzero(np.isin(part.groups, keep))
    first = np.flatnonzero(part.groups == part.groups[0])
    return first[np.unique(np.linspace(0, len(first) - 1, n_images).round().astype(int))]


def compile_for_loihi(source, settings, run_dir=None, verbose=False):
    """The `nengoseg.loihi.chip.LoihiModel` of conversion folder ``source``
    (``ns.loihi.compile(ns.load(source))`` with the config's ``loihi`` settings).

    Block shapes kept in ``RUN/loihi/resources.json`` for the same source are reused
    when nengo-loihi still accepts them; otherwise they are searched again.
    """
    return compile_model(spiking_model.load(source), target=settings.target,
                         pop_type=settings.pop_type, max_evaluations=settings.max_evaluations,
                         settle_steps=settings.settle_steps, emulator=settings.emulator,
                         chunk_images=settings.chunk_images,
                         block_shapes=_cached_shapes(run_dir, source), verbose=verbose)


def build_for_loihi(source, settings, run_dir=None, progress=False):
    """``(loihi_net, built_model)`` of `compile_for_loihi` (its rewritten network with
    the block shapes, and nengo-loihi's checked build)."""
    chip = compile_for_loihi(source, settings, run_dir, progress)
    return chip.loihi_net, chip.built_model


def _cached_shapes(run_dir, source):
    """``{layer: block shape}`` saved for this version of ``source``, or None."""
    if run_dir is None:
        return None
    path = rundir.stage_dir(run_dir, "deploy") / "resources.json"
    if not path.is_file():
        return None
    try:
        saved = read_json(path, "resource report")
    except DataError:
        return None
    if saved.get("source") != str(source) or saved.get("source_tag") != _source_tag(source):
        return None
    return {name: row.get("block_shape") for name, row in saved.get("layers", {}).items()}


def _source_tag(source):
    """Which version of a conversion folder this is: its stage id, else its files' times."""
    record = Path(source) / rundir.RECORD
    if record.is_file():
        try:
            return read_json(record, "stage record").get("id")
        except DataError:
            return None
    return max(p.stat().st_mtime for p in Path(source).iterdir())


def deploy_stage(cfg, run_dir, data, verbose=True, force=False):
    """Deploy the run's latest SNN on nengo-loihi and write results stage "loihi".

    The config's ``loihi`` section says the target and the number of examples (the
    CLI's ``--target`` / ``--n-images`` set them there). A finished deployment of
    the same network with the same settings is reused; one made otherwise raises
    `StageChanged` unless ``force``. Returns the stage's payload.
    """
    from nengoseg.snn_stage import evaluation_part, latest_conversion

    run_dir = Path(run_dir)
    settings = deploy_settings(cfg)
    target = check_target(settings.target)
    source = latest_conversion(run_dir)
    source_name = "cotrain" if source == rundir.stage_dir(run_dir, "cotrain") else "convert"
    prov = rundir.provenance(cfg, "deploy", rundir.data_fingerprint(data),
                             {source_name: rundir.stage_id(run_dir, source_name)})
    if rundir.check_current(run_dir, "deploy", prov, force) == "current":
        if verbose:
            print(f"deploy: reusing the Loihi results in {rundir.stage_dir(run_dir, 'deploy')}")
        return rundir.read_record(run_dir, "deploy")["results"][STAGE]

    say = print if verbose else (lambda *a, **k: None)
    say(f"deploy: {source} on nengo-loihi, target {target!r} "
        f"({'the emulator' if target == 'sim' else 'the board'})")
    started = time.time()
    chip = compile_for_loihi(source, settings, run_dir, verbose=verbose)
    loihi_net = chip.loihi_net
    report = chip.resources()
    report["source"], report["source_tag"] = str(source), _source_tag(source)
    tiling_seconds = time.time() - started
    say(f"deploy: built and tiled in {tiling_seconds:.0f} s: "
        f"{report['total']['cores']} cores on {report['chips']} chip(s)")

    everything = evaluation_part(cfg, data)
    rows = select_examples(everything, settings.n_images)
    part = everything.take(rows)
    n_steps = settings.n_steps or loihi_net.settings.n_steps
    result = chip.run(part.x, n_steps=n_steps, verbose=verbose)
    snn = chip.snn.run(part.x, backend="nengo-dl", n_steps=n_steps,
                       batch_size=cfg["evaluate"]["minibatch_size"], verbose=verbose)
    converted = chip.snn.network
    payload = evaluate.run_scores(data.task, result, part, converted)
    payload.update(_comparison(data.task, result, snn, part, converted))
    payload.update(
        target=target, source=str(source), n_images=int(len(part)), n_steps=int(n_steps),
        steps_per_second=float(result.steps_per_second),
        # rewrite + block-shape search + confirming build; the Simulator's own build; all
        tiling_seconds=round(tiling_seconds, 1),
        simulator_build_seconds=round(result.build_seconds, 1),
        stage_seconds=round(time.time() - started, 1),
        resources=resources.summary(report),
        energy=_energy_rows(run_dir, loihi_net, result),
        energy_method=energy.METHOD,
        deploy_settings=dict(settings.to_dict(), target=target),
    )
    with rundir.writing_stage(run_dir, "deploy", prov) as new:
        write_json(new.path / "resources.json", report)
        write_text(new.path / "resources.md", resources.markdown(report))
        # the positions of these examples among the evaluation examples (for the figures)
        save_predictions(new.path, STAGE, result.outputs, indices=rows)
        new.results[STAGE] = payload
    if verbose:
        print(summary_text(payload, report))
    return payload


def _comparison(task, result, snn, part, converted):
    threshold = converted.settings.threshold
    out = {"nengo_dl_scores": evaluate.score(task, snn.outputs, part, threshold)}
    if task == "segmentation":
        a = evaluate.predicted_masks(result.outputs, threshold)
        b = evaluate.predicted_masks(snn.outputs, threshold)
        out["agreement_dice"] = float(metrics.dice(a, b))
        out["agreement_dice_per_slice_mean"] = float(np.mean(
            [metrics.dice(a[i], b[i]) for i in range(len(a))]))
    else:
        out["agreement_dice"] = None
        out["agreement_mean_abs_difference"] = float(np.mean(np.abs(result.outputs - snn.outputs)))
    out["nengo_dl_firing_rates_hz"] = snn.firing_rates_hz
    return out


def _energy_rows(run_dir, loihi_net, result):
    stages = read_results(run_dir)["stages"]
    rows = {"ann": energy.ann_energy(loihi_net)}
    for row, stage in (("converted_snn", "converted_snn"), ("hybrid_snn", "hybrid_snn")):
        payload = stages.get(stage) or {}
        if payload.get("firing_rates_hz"):
            s = payload.get("settings", {})
            rows[row] = energy.snn_energy_from_rates(
                loihi_net, payload["firing_rates_hz"], s.get("n_steps", result.n_steps),
                s.get("dt", loihi_net.settings.dt))
    if result.spike_counts:
        rows["loihi"] = energy.snn_energy_from_counts(
            loihi_net, result.spike_counts, result.input_counts, result.n_images, result.n_steps)
    else:  # the board reports no per-neuron counts here
        rows["loihi"] = {"joules_per_inference": None, "reason": "no spike counts from the board"}
    return rows


def summary_text(payload, report):
    """What `nengoseg deploy` prints: resources, the comparison, the energy table."""
    total = report["total"]
    lines = [
        f"Loihi target: {payload['target']} ({'emulator' if payload['target'] == 'sim' else 'board'})",
        f"resources: {total['cores']} cores, {report['chips']} chip(s), "
        f"{total['compartments']:,} compartments, {total['synapse_bits']:,} synapse bits",
        f"examples: {payload['n_images']}, {payload['n_steps']} steps each; "
        f"{payload['steps_per_second']:.1f} steps/s on the {payload['target']} target",
    ]
    if "dice_2d_mean" in payload["scores"]:
        lines += [
            evaluate.summary_line("Loihi   ", payload["scores"]),
            evaluate.summary_line("NengoDL ", payload["nengo_dl_scores"]),
            f"agreement (Dice between Loihi and NengoDL masks): {payload['agreement_dice']:.4f}",
        ]
    if payload.get("mean_firing_rate_hz") is not None:
        lines.append(f"mean firing rate on Loihi: {payload['mean_firing_rate_hz']:.1f} Hz")
    printable = {k: v for k, v in payload["energy"].items() if v.get("joules_per_inference") is not None}
    lines += ["energy per inference:", energy.energy_table(printable), payload["energy_method"]]
    return "\n".join(lines)
