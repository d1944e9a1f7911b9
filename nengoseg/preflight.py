"""Checks made before any work starts: the whole config, and whether the run fits.

`check_config` validates every section of a resolved config, including the ones
that only a later stage reads (``convert``, ``loihi``, ``model.options``), so
``nengoseg run`` never fails on a bad key after an hour of training.
`check_resources` estimates the memory and disk a run needs from the model's
size (built as a graph, which allocates no weights) and the data's shape, and
stops with a `ResourceError` naming the setting and the largest value that fits.

The memory estimate is a lower bound: the arrays that must exist at once (the
data, the weights with Adam's moments, one minibatch of activations, and for the
spiking stages one minibatch of coded inputs and output traces over all steps,
plus NengoDL's probes of every neuron). It catches settings that cannot run; a
run that passes may still need more (TensorFlow's own buffers).
"""

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nengoseg.errors import ConfigError, NengosegError

GB = 1024 ** 3
# the share of the available memory a run may plan to use
MEMORY_SHARE = 0.9


class ResourceError(NengosegError):
    """The run would need more memory or disk than this machine has."""


@dataclass
class ModelSize:
    n_weights: int
    activations: int  # values per image over all layers
    input_size: int  # values per input image
    output_size: int  # values per output


def task_of(cfg):
    return {"airplanes": "boxes", "denoising": "denoising"}.get(cfg["data"]["dataset"],
                                                               "segmentation")


def input_shape(cfg):
    height, width = cfg["data"]["size"]
    dataset = cfg["data"]["dataset"]
    channels = 3 if dataset == "airplanes" else cfg["data"]["channels"] if (
        dataset == "denoising") else 1
    return (height, width, channels)


def n_outputs(cfg):
    if cfg["data"]["dataset"] == "airplanes":
        return 4
    return 3 if cfg["data"]["task"] == "multiclass" else 1


def model_size(cfg):
    """Weights and activations of the config's model, built as a graph (nothing allocated)."""
    import tensorflow as tf

    from nengoseg import models

    kind = cfg["model"]["kind"]
    output = {"n_outputs": n_outputs(cfg)} if kind == "locnet" else {"n_classes": n_outputs(cfg)}
    options = {"seed": cfg["seed"], **output, **cfg["model"]["options"]}
    try:
        with tf.Graph().as_default():
            model = models.build_model(kind, input_shape(cfg), **options)
            activations = sum(_size(layer.output_shape) for layer in model.layers)
            return ModelSize(int(model.count_params()), activations,
                             _size(model.input_shape), _size(model.output_shape))
    except ConfigError as err:
        raise ConfigError(f"model.options: {err}") from None
    except (TypeError, ValueError) as err:
        message = " ".join(str(err).split())
        raise ConfigError(
            f"model.options {cfg['model']['options']!r} cannot build a {kind!r} model for "
            f"input {input_shape(cfg)}: {message[:200]}"
        ) from None


def _size(shape):
    if isinstance(shape, list):
        return sum(_size(s) for s in shape)
    return int(np.prod([d for d in shape[1:] if d is not None], dtype=np.int64))


def check_config(cfg):
    """Validate every section of a resolved config; return the model's size."""
    from nengoseg.loihi.settings import DeploySettings
    from nengoseg.snn_stage import conversion_settings

    size = model_size(cfg)
    conversion_settings(cfg, task_of(cfg))
    DeploySettings.from_config({k: v for k, v in cfg["loihi"].items() if k != "enabled"})
    return size


def snn_steps(cfg):
    """The simulation steps each spiking stage runs, by the config key that sets them."""
    from nengoseg.snn_stage import conversion_settings

    n_steps = conversion_settings(cfg, task_of(cfg)).n_steps
    steps = {"convert.n_steps": n_steps}
    if cfg["cotrain"]["n_steps"]:
        steps["cotrain.n_steps"] = cfg["cotrain"]["n_steps"]
    if cfg["loihi"].get("n_steps"):
        steps["loihi.n_steps"] = cfg["loihi"]["n_steps"]
    return steps


def n_examples(cfg):
    """How many 2D examples the data gives, read from file headers where that is cheap."""
    data = cfg["data"]
    if data["dataset"] != "hippocampus" or data["images_dir"] is not None:
        return None
    from nengoseg.experiment_data import resolve_root

    try:
        import nibabel as nib

        root = resolve_root(data["root"])
        files = sorted((Path(root) / "imagesTr").glob("*.nii*"))
        files = [f for f in files if not f.name.startswith(".")]
        if data["max_subjects"] is not None:
            files = files[: data["max_subjects"]]
        return sum(int(nib.load(str(f)).shape[data["slice_axis"]]) for f in files)
    except Exception:  # the loaders give the precise error later
        return None


def memory_needed(cfg, size, examples, steps):
    """Bytes (a lower bound) that the stages need, by what needs them."""
    floats = 4
    batch = cfg["train"]["batch_size"]
    snn_batch = max(cfg["evaluate"]["minibatch_size"], cfg["cotrain"]["batch_size"])
    per_example = (size.input_size + size.output_size) * floats
    needs = {
        "data": (examples or 0) * per_example,
        "weights": size.n_weights * floats * 4,  # weights, gradients, Adam's two moments
        "activations": batch * size.activations * floats * 2,  # forward and backward
    }
    per_step = snn_batch * (size.input_size + size.output_size) * floats
    if cfg["evaluate"]["engine"] == "nengo-dl" or cfg["cotrain"]["engine"] == "nengo-dl":
        per_step += snn_batch * size.activations * floats  # probes of every neuron
    needs["spiking"] = max(steps.values()) * per_step
    return needs, per_step


def available_memory():
    """Bytes of memory available to a new allocation (MemAvailable, cgroup limit)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
            if text.isdigit():
                available = min(available, int(text))
        except OSError:
            pass
    return available


def check_resources(cfg, run_dir, size=None, memory=None, disk=None):
    """Stop with a ResourceError when the run cannot fit in memory or on disk."""
    size = size or model_size(cfg)
    memory = available_memory() if memory is None else memory
    budget = memory * MEMORY_SHARE
    examples = n_examples(cfg)
    steps = snn_steps(cfg)
    needs, per_step = memory_needed(cfg, size, examples, steps)
    total = sum(needs.values())
    if total > budget:
        biggest = max(needs, key=needs.get)
        raise ResourceError(_memory_message(cfg, needs, biggest, total, budget, per_step, steps))
    free = shutil.disk_usage(_existing(run_dir)).free if disk is None else disk
    outputs = _disk_needed(cfg, size, examples, steps)
    if outputs > free:
        raise ResourceError(
            f"the run would write about {outputs / GB:.1f} GB into {run_dir} but the disk "
            f"has {free / GB:.1f} GB free; free some space or give another --run-dir"
        )
    return {"memory_bytes": total, "memory_available": memory, "disk_bytes": outputs}


def _memory_message(cfg, needs, biggest, total, budget, per_step, steps):
    head = (f"this run needs at least {total / GB:.1f} GB of memory ({biggest}: "
            f"{needs[biggest] / GB:.1f} GB) but {budget / GB:.1f} GB are available")
    if biggest == "spiking":
        key = max(steps, key=steps.get)
        rest = total - needs["spiking"]
        fits = int(max(0, budget - rest) // per_step)
        return (f"{head}: {key}={steps[key]} is too many steps for minibatches of "
                f"{max(cfg['evaluate']['minibatch_size'], cfg['cotrain']['batch_size'])}; "
                f"the largest {key} that fits is {fits}")
    if biggest == "weights":
        return (f"{head}: model.options {cfg['model']['options']} make "
                f"{needs['weights'] // 16:,} weights; use fewer filters or a shallower model")
    if biggest == "activations":
        fits = int(budget // max(1, needs["activations"] // cfg["train"]["batch_size"]))
        hint = (f"the largest train.batch_size that fits is {fits}" if fits >= 1 else
                f"data.size={cfg['data']['size']} is too large for one image: use a smaller "
                "data.size (volumes are predicted in tiles of it)")
        return f"{head}: {hint}"
    side = int(math.sqrt(budget / max(1, needs["data"]) * np.prod(cfg["data"]["size"])))
    return (f"{head}: data.size={cfg['data']['size']} makes the data alone "
            f"{needs['data'] / GB:.1f} GB; a size up to about [{side}, {side}] fits")


def _disk_needed(cfg, size, examples, steps):
    floats = 4
    models = size.n_weights * floats * 6  # ANN, best weights, checkpoints, conversions
    evaluated = examples or 0
    predictions = evaluated * (size.input_size + 4 * size.output_size) * floats
    return models + predictions


def _existing(path):
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return path
