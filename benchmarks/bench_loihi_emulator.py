"""nengo-loihi's emulator: its own spike routing, `nengoseg.loihi.fast_synapses`, and the
batched emulator (`nengoseg.loihi.batched`), side by side.

In one process, on the same rewritten and tiled network and the same images: images x
steps per second of nengo-loihi 1.1's emulator with its per-spike loop, with the
sparse-matrix routing, and of the batched emulator (``--chunk-images`` images at once,
default: its memory-bounded choice), each one's set-up time (simulator build, routing
or batch matrices), the speed-up over the first row, and a check that every row gives
the first row's outputs and per-neuron spike counts.

The network: a conversion folder (``--source RUN/snn`` or ``RUN/hybrid``, with its
run folder's cached block shapes when there are some), else the default config's
U-Net (``configs/default.yaml``, fresh weights, percentile normalisation on random
images). Inputs: random images of the network's input shape. ``--rows`` picks rows
(nengo-loihi's own loop takes about 2 s per step on the default U-Net).

    python benchmarks/bench_loihi_emulator.py --n-images 1 --n-steps 40
    python benchmarks/bench_loihi_emulator.py --n-images 16 --n-steps 40 \\
        --rows vectorised,batched
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nengoseg import convert as nsconvert  # noqa: E402
from nengoseg.config import load_config  # noqa: E402
from nengoseg.deploy import build_for_loihi  # noqa: E402
from nengoseg.loihi import DeploySettings  # noqa: E402
from nengoseg.loihi.batched import batched_emulator  # noqa: E402
from nengoseg.loihi.run import make_simulator, run_loihi  # noqa: E402

ROWS = {  # name: (label, fast routing, batched)
    "nengo-loihi": ("nengo-loihi's routing", False, False),
    "vectorised": ("sparse-matrix routing", True, False),
    "batched": ("batched emulator", False, True),
}


def default_network(folder):
    """The default config's model with fresh weights, converted into ``folder``."""
    from nengoseg.models import build_model
    from nengoseg.snn_stage import conversion_settings

    cfg = load_config(ROOT / "configs" / "default.yaml")
    shape = tuple(cfg["data"]["size"]) + (1,)
    model = build_model(cfg["model"]["kind"], shape, **cfg["model"]["options"])
    settings = conversion_settings(cfg, "segmentation")
    calibration = np.random.default_rng(1).random((32,) + shape, dtype=np.float32)
    converted = nsconvert.convert(model, settings, calibration_data=calibration)
    nsconvert.save_conversion(folder, model, converted.settings)
    return folder, None


def network_source(source=None):
    """``(conversion folder, run folder)``: ``source`` and its parent, else the default
    config's U-Net converted with fresh weights into a temporary folder (no run folder)."""
    if source:
        return Path(source), Path(source).parent
    import tempfile

    return default_network(Path(tempfile.mkdtemp()) / "snn")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a conversion folder (default: the default config's "
                        "U-Net with fresh weights)")
    parser.add_argument("--n-images", type=int, default=1)
    parser.add_argument("--n-steps", type=int, default=40)
    parser.add_argument("--chunk-images", type=int, default=None,
                        help="images the batched emulator runs at once (default: its choice)")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help="comma-separated; the first is the reference "
                        f"(default {','.join(ROWS)})")
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")

    source, run_dir = network_source(args.source)
    started = time.perf_counter()
    loihi_net, _ = build_for_loihi(source, DeploySettings(), run_dir)
    print(f"network: {source}; {sum(l.n_neurons for l in loihi_net.on_chip_layers):,} "
          f"neurons on chip; rewrite and tiling {time.perf_counter() - started:.1f} s", flush=True)
    x = np.random.default_rng(0).random((args.n_images,) + loihi_net.input_shape,
                                        dtype=np.float32)
    results = {}
    for row in rows:
        label, fast, batched = ROWS[row]
        started = time.perf_counter()
        sim = make_simulator(loihi_net, "sim", fast_routing=fast)
        try:
            if batched:
                batched_emulator(sim, loihi_net)  # made once per simulator, timed as set-up
            setup = time.perf_counter() - started
            results[row] = run_loihi(loihi_net, x, n_steps=args.n_steps, progress=False,
                                     simulator=sim, batched=batched,
                                     chunk_images=args.chunk_images)
        finally:
            sim.close()
        speed = results[row].steps_per_second
        ratio = speed / results[rows[0]].steps_per_second
        print(f"{label:24s} set-up {setup:6.1f} s, {speed:9.2f} images x steps/s, "
              f"{ratio:6.1f}x {ROWS[rows[0]][0]}", flush=True)
    reference = results[rows[0]]
    same = True
    for row in rows[1:]:
        same_out = np.array_equal(results[row].outputs, reference.outputs)
        same_counts = all(np.array_equal(results[row].spike_counts[k], reference.spike_counts[k])
                          for k in reference.spike_counts)
        same = same and same_out and same_counts
        print(f"{ROWS[row][0]} vs {ROWS[rows[0]][0]}: identical outputs {same_out}, "
              f"identical spike counts {same_counts}")
    spikes = sum(float(c.sum()) for c in reference.spike_counts.values())
    print(f"{spikes:,.0f} spikes, {args.n_images} image(s) x {args.n_steps} steps")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
