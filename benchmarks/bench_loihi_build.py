"""nengo-loihi's build with its own splitting and validation vs `nengoseg.loihi.fast_build`.

Side by side in one process, on the same rewritten network with the same block
shapes: the wall time of nengo-loihi's full build (split into cores, discretize,
validate; what ``confirm`` and the Simulator run) with nengo-loihi 1.1's
``split_synapse`` / ``split_axon`` / ``validate_axon`` and with the vectorised
ones, alternating in ``--repeats`` rounds (median of each), their ratio, and a
check that both builds are the same split (`nengoseg.loihi.fast_build.split_signature`).
``--search`` also times the whole block-shape search (`choose_block_shapes`) both ways
and checks that it picks the same shapes.

The network: a conversion folder (``--source RUN/snn`` or ``RUN/hybrid``, with its
run folder's cached block shapes when there are some), else the default config's
U-Net with fresh weights (as in ``bench_loihi_emulator.py``).

    python benchmarks/bench_loihi_build.py --repeats 2 --search
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_loihi_emulator import network_source  # noqa: E402

from nengoseg.deploy import build_for_loihi  # noqa: E402
from nengoseg.loihi import DeploySettings, blocks  # noqa: E402
from nengoseg.loihi.build import build_model  # noqa: E402
from nengoseg.loihi.fast_build import ORIGINAL_SPLIT_SYNAPSE, split_signature  # noqa: E402
# the vectorised build as nengoseg uses it: through the nengo-loihi compatibility module
from nengoseg.loihi.nengo_loihi_compat import fast_building  # noqa: E402

LABELS = {False: "nengo-loihi's split/validate", True: "vectorised (fast_build)"}


def timed_build(loihi_net, fast):
    started = time.perf_counter()
    model = build_model(loihi_net, discretize=True, validation="minimal", fast=fast)
    return time.perf_counter() - started, model


def timed_search(loihi_net, fast, max_evaluations):
    """`choose_block_shapes` with every build and tile check of the search fast or not."""
    saved = blocks.split_synapse
    if not fast:
        blocks.split_synapse = ORIGINAL_SPLIT_SYNAPSE  # the per-tile checks
    original_build = blocks.build_model
    blocks.build_model = lambda *a, **k: original_build(*a, **dict(k, fast=fast))
    started = time.perf_counter()
    try:
        with fast_building(fast):
            shapes = blocks.choose_block_shapes(loihi_net, max_evaluations=max_evaluations)
    finally:
        blocks.split_synapse, blocks.build_model = saved, original_build
    return time.perf_counter() - started, {k: v.shape for k, v in shapes.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a conversion folder (default: the default config's "
                        "U-Net with fresh weights)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--search", action="store_true",
                        help="also time the block-shape search both ways (minutes)")
    args = parser.parse_args(argv)

    source, run_dir = network_source(args.source)
    settings = DeploySettings()
    started = time.perf_counter()
    loihi_net, _ = build_for_loihi(source, settings, run_dir)
    n_cores = sum(s.n_splits for s in loihi_net.block_shapes.values())
    print(f"network: {source}; {sum(l.n_neurons for l in loihi_net.on_chip_layers):,} neurons "
          f"on {n_cores} cores; rewrite and tiling {time.perf_counter() - started:.1f} s",
          flush=True)

    seconds, models = {True: [], False: []}, {}
    for _ in range(args.repeats):
        for fast in (False, True):
            elapsed, models[fast] = timed_build(loihi_net, fast)
            seconds[fast].append(elapsed)
            print(f"  build, {LABELS[fast]:30s} {elapsed:7.1f} s", flush=True)
    same = split_signature(models[True]) == split_signature(models[False])
    slow, fast = (statistics.median(seconds[k]) for k in (False, True))
    print(f"full build (split, discretize, validate), median of {args.repeats}: "
          f"nengo-loihi {slow:.1f} s, vectorised {fast:.1f} s, speed-up {slow / fast:.1f}x; "
          f"identical split: {same}")
    ok = same
    if args.search:
        found = {}
        for fast_search in (False, True):
            elapsed, found[fast_search] = timed_search(loihi_net, fast_search,
                                                       settings.max_evaluations)
            print(f"  block-shape search, {LABELS[fast_search]:30s} {elapsed:7.1f} s", flush=True)
            seconds[("search", fast_search)] = elapsed
        same_shapes = found[True] == found[False]
        print(f"block-shape search: nengo-loihi {seconds[('search', False)]:.1f} s, vectorised "
              f"{seconds[('search', True)]:.1f} s, speed-up "
              f"{seconds[('search', False)] / seconds[('search', True)]:.1f}x; "
              f"same shapes: {same_shapes}")
        ok = ok and same_shapes
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
