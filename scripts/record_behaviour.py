"""Record what a run's spiking networks compute, to compare two versions of nengoseg.

For the converted (``RUN/snn``) and co-trained (``RUN/hybrid``) networks of a run
folder: the spike counts per neuron in the engine and in NengoDL on ``--n-images``
evaluation images, and the Loihi emulator's outputs on the first ``--n-loihi`` of
them. Written to ``--out`` (an .npz), with the images, so that another checkout can
be run on exactly the same inputs (``--images``) and the files compared::

    .venv/bin/python scripts/record_behaviour.py runs/default --out new.npz
    (other checkout) python scripts/record_behaviour.py runs/default --images new.npz \\
        --out old.npz
    python -c "import numpy as np; a, b = np.load('new.npz'), np.load('old.npz'); \\
        print(all(np.array_equal(a[k], b[k]) for k in a.files))"

Uses only APIs that nengoseg has had since its run folders (stage folders ``snn/``,
``hybrid/``): ``load_conversion``, ``convert``, ``run_engine``, NengoDL's simulator,
``build_for_loihi`` (as ``nengoseg deploy`` builds) and ``run_loihi``.
"""

import argparse
from pathlib import Path

import nengo_dl
import numpy as np


def nengo_dl_counts(converted, x, batch):
    """Spike counts per neuron of NengoDL's run, inputs coded as ``run_snn`` codes them."""
    from nengoseg import convert as nsconvert

    s = converted.settings
    rng = np.random.default_rng(s.seed)
    counts = {name: [] for name in converted.neuron_probes}
    with nengo_dl.Simulator(converted.network, dt=s.dt, minibatch_size=batch, seed=s.seed,
                            progress_bar=False) as sim:
        for first in range(0, len(x), batch):
            real = x[first : first + batch]
            coded = nsconvert.encode_inputs(real, s.n_steps, s.input_coding, s.dt,
                                            s.input_rate_hz, rng)
            pad = np.zeros((batch - len(real),) + coded.shape[1:], coded.dtype)
            data = sim.predict_on_batch({converted.input_node: np.concatenate([coded, pad])})
            for name, probe in converted.neuron_probes.items():
                amplitude = probe.target.ensemble.neuron_type.amplitude
                counts[name].append(data[probe][: len(real)].sum(axis=1) * s.dt / amplitude)
    return {name: np.concatenate(c) for name, c in counts.items()}


def record(folder, x, n_loihi, batch, deploy_settings):
    from nengoseg import convert as nsconvert
    from nengoseg.deploy import build_for_loihi
    from nengoseg.engine import run_engine
    from nengoseg.loihi.run import run_loihi

    converted = nsconvert.convert(*nsconvert.load_conversion(folder))
    found = {}
    _, engine = run_engine(converted.keras_model, converted=converted, x=x, minibatch_size=batch,
                           progress=False, return_counts=True)
    for name, counts in engine.items():
        found[f"engine/{name}"] = counts
    for name, counts in nengo_dl_counts(converted, x, batch).items():
        found[f"nengo_dl/{name}"] = counts
    loihi_net, _ = build_for_loihi(folder, deploy_settings)  # as `nengoseg deploy` builds it
    found["emulator_outputs"] = run_loihi(loihi_net, x[:n_loihi], progress=False).outputs
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=Path, help="an .npz this script wrote: its images")
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--n-loihi", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    if args.images:
        with np.load(args.images) as saved:
            x = saved["images"]
    else:
        from nengoseg.config import load_config
        from nengoseg.experiment_data import load_experiment_data
        from nengoseg.snn_stage import evaluation_part

        cfg = load_config(args.run_dir / "config.yaml", [])
        x = evaluation_part(cfg, load_experiment_data(cfg)).x[: args.n_images]
    from nengoseg.config import load_config
    from nengoseg.loihi.settings import DeploySettings

    deploy_settings = DeploySettings.from_config(
        load_config(args.run_dir / "config.yaml", []).get("loihi"))
    found = {"images": x}
    for stage in ("snn", "hybrid"):
        for key, value in record(args.run_dir / stage, x, args.n_loihi, args.batch,
                                 deploy_settings).items():
            found[f"{stage}/{key}"] = value
            print(f"{stage}/{key}: sum {float(np.sum(value)):.4f}", flush=True)
    np.savez(args.out, **found)


if __name__ == "__main__":
    main()
