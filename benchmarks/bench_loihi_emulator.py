"""nengo-loihi's emulator with its own spike routing vs `nengoseg.loihi.fast_synapses`.

Side by side in one process, on the same rewritten and tiled network and the same
images: emulator steps per second with nengo-loihi 1.1's per-spike loop and with
the sparse-matrix routing, their ratio, the time to set the routing up, and a
check that both give the same outputs and per-neuron spike counts.

The network: a conversion folder (``--source RUN/snn`` or ``RUN/hybrid``, with its
run folder's cached block shapes when there are some), else the default config's
U-Net (``configs/default.yaml``, fresh weights, percentile normalisation on random
images). Inputs: random images of the network's input shape.

    python benchmarks/bench_loihi_emulator.py --n-images 1 --n-steps 40
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
from nengoseg.loihi.run import make_simulator, run_loihi  # noqa: E402


def default_network(folder):
    """The default config's model with fresh weights, converted into ``folder``."""
    from nengoseg.models import build_model
    from nengoseg.snn_stage import conversion_settings

    cfg = load_config(ROOT / "configs" / "default.yaml")
    shape = tuple(cfg["data"]["size"]) + (1,)
    model = build_model(cfg["model"]["kind"], shape, **cfg["model"]["options"])
    settings = conversion_settings(cfg, "binary")
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
    args = parser.parse_args(argv)

    source, run_dir = network_source(args.source)
    started = time.perf_counter()
    loihi_net, _ = build_for_loihi(source, DeploySettings(), run_dir)
    print(f"network: {source}; {sum(l.n_neurons for l in loihi_net.on_chip_layers):,} "
          f"neurons on chip; rewrite and tiling {time.perf_counter() - started:.1f} s", flush=True)
    x = np.random.default_rng(0).random((args.n_images,) + loihi_net.input_shape,
                                        dtype=np.float32)
    results = {}
    for fast in (True, False):
        started = time.perf_counter()
        sim = make_simulator(loihi_net, "sim", fast_routing=fast)
        setup = time.perf_counter() - started
        try:
            results[fast] = run_loihi(loihi_net, x, n_steps=args.n_steps, progress=False,
                                      simulator=sim)
        finally:
            sim.close()
        label = "sparse-matrix routing" if fast else "nengo-loihi's routing"
        print(f"{label:24s} simulator set-up {setup:6.1f} s, "
              f"{results[fast].steps_per_second:8.2f} steps/s", flush=True)
    fast, slow = results[True], results[False]
    same_out = np.array_equal(fast.outputs, slow.outputs)
    same_counts = all(np.array_equal(fast.spike_counts[k], slow.spike_counts[k])
                      for k in slow.spike_counts)
    spikes = sum(float(c.sum()) for c in slow.spike_counts.values())
    print(f"speed-up {fast.steps_per_second / slow.steps_per_second:.1f}x; identical outputs: "
          f"{same_out}, identical spike counts: {same_counts} ({spikes:,.0f} spikes, "
          f"{args.n_images} image(s) x {args.n_steps} steps)")
    return 0 if same_out and same_counts else 1


if __name__ == "__main__":
    sys.exit(main())
