"""ANN vs NengoDL vs the time-batched engine, side by side in one process.

For the hippocampus U-Net and CAE (``configs/hippocampus_unet.yaml``,
``configs/hippocampus_cae.yaml``: ``nengoseg.models.build_model`` with the
configs' options, 56x48x1 inputs; weights from ``runs/<name>/ann/model.h5`` when
present, else fresh) it times, per image and per time step:

- ANN forward (``predict_on_batch``; one forward pass per image, counted as one step),
- NengoDL inference (``nengo_dl.Simulator.predict_on_batch``, ``n_steps`` steps),
- engine inference (`nengoseg.engine.SpikingEngine.predict_on_batch`),
- ANN training step (``train_on_batch`` with the config's loss),
- NengoDL co-training step, engine co-training step, engine BPTT step
  (``cotrain.method: bptt``, where the network's neurons have a surrogate step) and
  engine spiking-flow step (``cotrain.method: spiking_flow``, Spiking-UNet); one
  ``fit`` step of the
  hybrid network with cotrain's losses: readout loss, rate regularisation,
  firing-rate metrics; ``n_steps`` steps per image),

and the ratios of the SNN timings to the ANN's (inference to the ANN forward
pass, co-training to the ANN training step). After one warm-up call each (which
traces / builds), the ANN, engine and NengoDL calls alternate in ``--repeats``
rounds (NengoDL only in the first ``--nengo-dl-repeats``), so that load from
other processes hits them alike; each timing is the median.

Memory: the peak resident set size of the process (RSS, from /proc/self/statm,
sampled every 2 ms by a thread) during each measurement (warm-up included), and
its rise above the RSS just before it. RSS counts TensorFlow's own allocations,
which ``tracemalloc`` would not see; it is process-wide, so an allocation freed
by an earlier measurement and reused shows as no rise.

    python benchmarks/bench_engine.py --n-steps 20 --batch 16 --repeats 3
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nengoseg import convert as nsconvert  # noqa: E402
from nengoseg.config import load_config  # noqa: E402
from nengoseg.engine import build_engine, make_plan  # noqa: E402
from nengoseg.engine.model import CHUNK_IMAGES  # noqa: E402
from nengoseg.errors import ConfigError  # noqa: E402
from nengoseg.models import build_model  # noqa: E402

MODELS = {"unet": "hippocampus_unet", "cae": "hippocampus_cae"}
INPUT_SHAPE = (56, 48, 1)
PAGE = os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak RSS (bytes) above the starting RSS while the block runs."""

    def __init__(self, interval=0.002):
        self.interval = interval

    @staticmethod
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.extra_mb = (self.peak - self.start) / 2**20


def timed_together(fns, repeats, limited=(), limited_repeats=1):
    """Time the functions ``{key: fn}`` side by side: one warm-up call each, then
    ``repeats`` rounds calling each once in turn (those in ``limited`` only in the
    first ``limited_repeats`` rounds), so that load from other processes hits them
    alike. Returns ``{key: (median seconds per call, peak RSS MB, largest rise MB)}``;
    the memory covers the warm-up (tracing, first allocations) and the timed calls.
    """
    times = {key: [] for key in fns}
    peak = {key: 0.0 for key in fns}
    rise = {key: 0.0 for key in fns}

    def call(key, record):
        with PeakRSS() as mem:
            start = time.perf_counter()
            fns[key]()
            elapsed = time.perf_counter() - start
        peak[key] = max(peak[key], mem.peak / 2**20)
        rise[key] = max(rise[key], mem.extra_mb)
        if record:
            times[key].append(elapsed)

    for key in fns:
        call(key, False)
    for round_ in range(repeats):
        for key in fns:
            if key in limited and round_ >= limited_repeats:
                continue
            call(key, True)
    return {key: (float(np.median(times[key])), peak[key], rise[key]) for key in fns}


class OneBatch:
    """A `Batches`-like endless generator repeating one minibatch (for ``fit``)."""

    def __init__(self, inputs, targets, steps=1):
        self.inputs, self.targets, self.steps = inputs, targets, steps

    def __len__(self):
        return self.steps

    def __iter__(self):
        while True:
            yield self.inputs, self.targets


def load_model(name, cfg):
    path = ROOT / "runs" / name / "ann" / "model.h5"
    if path.is_file():
        from nengoseg.snn_stage import load_keras

        return load_keras(path), f"trained weights {path.relative_to(ROOT)}"
    mcfg = cfg["model"]
    return build_model(mcfg["kind"], INPUT_SHAPE, **mcfg["options"]), "fresh weights"


def bench(name, args, rng):
    from nengoseg.snn_stage import conversion_settings
    from nengoseg.train.ann import make_loss
    from nengoseg.train.cotrain import compile_cotraining, hybrid_network, make_trainable, task_metric

    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    model, source = load_model(name, cfg)
    settings = conversion_settings(cfg, "segmentation")
    settings.n_steps = args.n_steps
    settings.readout_steps = None
    B, T = args.batch, args.n_steps
    x = rng.random((B,) + INPUT_SHAPE, dtype=np.float32)
    y = (rng.random((B,) + INPUT_SHAPE) > 0.7).astype(np.float32)
    calibration = x if settings.normalise else None
    converted = nsconvert.convert(model, settings, calibration_data=calibration)
    settings = converted.settings
    coded = nsconvert.encode_inputs(x, T, settings.input_coding, settings.dt,
                                    settings.input_rate_hz, np.random.default_rng(0))
    loss = make_loss(cfg["train"], 1)
    print(f"\n== {name}: {model.count_params()} weights, {source}; batch {B}, {T} steps, "
          f"synapse {settings.synapse}, coding {settings.input_coding}, engine inference in "
          f"chunks of {args.chunk_images or 'all'} images", flush=True)
    rows = {}
    nengo_dl_on = not args.skip_nengo_dl
    slow = ("NengoDL inference", "NengoDL co-training step")

    # inference: ANN, engine (constant coding: images in; Poisson: the coded spikes), NengoDL
    ann = converted.keras_model
    plan = make_plan(converted.keras_model, converted=converted)
    constant = settings.input_coding == "constant"
    chunk = args.chunk_images or None
    engine = build_engine(None, plan=plan, n_steps=T, inputs="images" if constant else "coded",
                          chunk_images=chunk)
    data = x if constant else coded
    fns = {
        "ANN forward": lambda: ann.predict_on_batch(x),
        "engine inference": lambda: engine.predict_on_batch(data),
    }
    sim = None
    if nengo_dl_on:
        import nengo_dl

        sim = nengo_dl.Simulator(converted.network, dt=settings.dt, minibatch_size=B,
                                 seed=settings.seed, progress_bar=False)
        feed = {converted.input_node: coded}
        fns["NengoDL inference"] = lambda: sim.predict_on_batch(feed)
    rows.update(timed_together(fns, args.repeats, slow, args.nengo_dl_repeats))
    if sim is not None:
        sim.close()

    # training: ANN train_on_batch; engine and NengoDL: one ``fit`` step of the hybrid network
    train_ann = tf.keras.models.clone_model(ann)
    train_ann.set_weights(ann.get_weights())
    train_ann.compile(tf.keras.optimizers.Adam(1e-5), loss=loss)
    fns = {"ANN training step": lambda: train_ann.train_on_batch(x, y)}
    trainables = []

    def cotrain_step(engine_name, method="hybrid"):
        hybrid = hybrid_network(model, settings)
        snn = make_trainable(engine_name, hybrid, B, method)
        trainables.append(snn)
        compile_cotraining(snn, loss, task_metric("segmentation"), T, 1e-5, rate_target_hz=100.0)
        targets = {snn.output_name: y.reshape(B, 1, -1)}
        targets.update({key: np.zeros((B, 1, 1), np.float32) for key in snn.rate_names.values()})
        batches = OneBatch(snn.model_inputs(coded), targets)
        return lambda: snn.fit(batches, None, 1, 0, [])

    fns["engine co-training step"] = cotrain_step("engine")
    try:
        fns["engine BPTT step"] = cotrain_step("engine", "bptt")
    except ConfigError as err:  # neurons without a surrogate step (e.g. LIF)
        print(f"(no BPTT row: {err})")
    fns["engine spiking-flow step"] = cotrain_step("engine", "spiking_flow")
    if nengo_dl_on:
        fns["NengoDL co-training step"] = cotrain_step("nengo-dl")
    rows.update(timed_together(fns, args.repeats, slow, args.nengo_dl_repeats))
    for snn in trainables:
        snn.close()

    steps = {key: 1 if key.startswith("ANN") else T for key in rows}
    ann_fwd = rows["ANN forward"][0] / B
    ann_train = rows["ANN training step"][0] / B
    order = ["ANN forward", "NengoDL inference", "engine inference", "ANN training step",
             "NengoDL co-training step", "engine co-training step", "engine BPTT step",
             "engine spiking-flow step"]
    print(f"{'':28s}{'ms/image/step':>14s}{'x ANN':>8s}{'peak RSS MB':>13s}{'rise MB':>9s}")
    for key in order:
        if key not in rows:
            continue
        seconds, peak, rise = rows[key]
        per = seconds / B / steps[key]
        ref = ann_train if key.endswith(" step") else ann_fwd  # training rows: the ANN step
        print(f"{key:28s}{per * 1e3:14.3f}{per / ref:8.2f}{peak:13.0f}{rise:9.0f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["unet", "cae"])
    parser.add_argument("--chunk-images", type=int, default=CHUNK_IMAGES,
                        help="engine inference: steps x batch per chunk (0: all steps at once)")
    parser.add_argument("--nengo-dl-repeats", type=int, default=1,
                        help="timed NengoDL calls (it is slow; default 1)")
    parser.add_argument("--skip-nengo-dl", action="store_true",
                        help="time only the ANN and the engine (NengoDL is slow)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default)")
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(0)
    import nengoseg.neuron_kinds  # noqa: F401  (registers the NengoDL builders)

    rng = np.random.default_rng(0)
    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs visible, threads "
          f"{args.threads or 'default'}; memory: process peak RSS "
          "during each measurement and its rise (/proc/self/statm sampled every 2 ms)")
    for key in args.models:
        bench(MODELS[key], args, rng)


if __name__ == "__main__":
    main()
