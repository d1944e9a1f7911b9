"""Segment whole NIfTI volumes with a trained run: ``nengoseg segment``.

A volume is normalised and padded exactly as the run's training data were
(``RUN/config.yaml``), cut into 2D slices along the run's slicing axis, predicted
slice by slice by the chosen engine, and put back together at the input's own
shape. The mask is written as uint8 NIfTI with the input's affine and header.
Outputs are written atomically and never overwrite an existing file unless asked.
"""

from pathlib import Path

import nibabel as nib
import numpy as np

from nengoseg import data as nsdata
from nengoseg import evaluate
from nengoseg.atomic import atomic_path
from nengoseg.config import load_config
from nengoseg.errors import ConfigError, DataError, NengosegError

ENGINES = ("ann", "snn", "loihi")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


class Segmenter:
    """Predicts foreground masks for 2D slices with one engine of a run folder."""

    def __init__(self, run_dir, engine="ann", minibatch_size=16, verbose=False):
        run_dir = Path(run_dir)
        if engine not in ENGINES:
            raise ConfigError(f"bad engine {engine!r}; allowed: {', '.join(ENGINES)}")
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise DataError(f"{run_dir}: not a run folder (no config.yaml); pass --model RUN_DIR")
        self.cfg = load_config(config_path)
        if self.cfg["data"]["dataset"] != "hippocampus":
            raise ConfigError(
                f"{config_path}: segment works on NIfTI volumes; the run was trained on "
                f"'{self.cfg['data']['dataset']}' (allowed: a hippocampus run)"
            )
        self.engine = engine
        self.minibatch_size = minibatch_size
        self.verbose = verbose
        self._predict = _PREDICTORS[engine](self, run_dir)

    def predict_slices(self, x):
        """Foreground masks (n, H, W) for normalised slices x (n, H, W, 1)."""
        logits, threshold = self._predict(x)
        return evaluate.predicted_masks(logits, threshold)

    def segment_volume(self, image):
        """A uint8 mask of a 3D image array, at the image's shape."""
        data_cfg = self.cfg["data"]
        axis = data_cfg["slice_axis"]
        in_plane = tuple(a for a in range(3) if a != axis)
        normalised = nsdata.normalise_volume(image, data_cfg["normalise"])
        padded, offsets = nsdata.pad_or_crop(
            normalised, tuple(data_cfg["size"]), in_plane, value=normalised.min()
        )
        slices = np.moveaxis(padded, axis, 0)[..., None].astype(np.float32)
        masks = self.predict_slices(slices).astype(np.uint8)
        mask = np.moveaxis(masks, 0, axis)
        return nsdata.undo_pad_or_crop(mask, offsets, in_plane).astype(np.uint8)


def _ann_predictor(segmenter, run_dir):
    from nengoseg.snn_stage import load_keras
    from nengoseg.train.ann import model_path

    model = load_keras(model_path(run_dir))
    return lambda x: (model.predict(x, batch_size=segmenter.minibatch_size, verbose=0), 0.5)


def _snn_predictor(segmenter, run_dir):
    from nengoseg import convert as nsconvert
    from nengoseg.snn_stage import latest_conversion

    keras_model, settings = nsconvert.load_conversion(latest_conversion(run_dir))
    converted = nsconvert.convert(keras_model, settings)

    def predict(x):
        result = nsconvert.run_snn(
            converted, x, minibatch_size=segmenter.minibatch_size, progress=segmenter.verbose
        )
        return result.outputs, settings.threshold

    return predict


def _loihi_predictor(segmenter, run_dir):
    """The latest SNN on the nengo-loihi emulator, one slice after another.

    The network is rewritten and tiled once (block shapes that ``nengoseg deploy``
    saved in RUN/loihi/resources.json are reused) and one simulator serves every
    batch of slices; the emulator is put back at rest before each slice.
    """
    from nengoseg.deploy import build_for_loihi
    from nengoseg.loihi import DeploySettings
    from nengoseg.loihi.run import make_simulator, run_loihi
    from nengoseg.snn_stage import latest_conversion

    loihi_net, _ = build_for_loihi(latest_conversion(run_dir), DeploySettings(), run_dir)
    simulator = make_simulator(loihi_net, "sim")

    def predict(x):
        result = run_loihi(loihi_net, x, target="sim", progress=segmenter.verbose,
                           simulator=simulator)
        return result.outputs, loihi_net.settings.threshold

    return predict


_PREDICTORS = {"ann": _ann_predictor, "snn": _snn_predictor, "loihi": _loihi_predictor}


def is_nifti(path):
    return Path(path).name.endswith(NIFTI_SUFFIXES)


def segment_file(segmenter, input_path, output_path, overwrite=False):
    """Segment one NIfTI file into ``output_path`` (input affine and header kept)."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not is_nifti(output_path):
        raise ConfigError(f"{output_path}: the output must end in .nii.gz or .nii")
    if output_path.exists() and not overwrite:
        raise NengosegError(f"{output_path} exists; pass --overwrite to replace it")
    if output_path.resolve() == input_path.resolve():
        raise NengosegError(f"{output_path}: the output would replace the input")
    volume = nsdata.load_volume(input_path, None)
    header = nib.load(str(input_path)).header.copy()
    mask = segmenter.segment_volume(volume.image)
    header.set_data_dtype(np.uint8)
    out = nib.Nifti1Image(mask, volume.affine, header)
    out.header.set_slope_inter(1, 0)
    with atomic_path(output_path) as tmp:  # same file name: nibabel compresses .gz
        nib.save(out, str(tmp))
    return mask


def segment_paths(run_dir, input_path, output_path, engine="ann", overwrite=False, verbose=True):
    """Segment a file, or every NIfTI file of a folder into an output folder."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise DataError(f"{input_path} does not exist (expected a NIfTI file or a folder of them)")
    if input_path.is_dir():
        inputs = sorted(p for p in input_path.iterdir() if is_nifti(p) and not p.name.startswith("."))
        if not inputs:
            raise DataError(f"{input_path}: no .nii or .nii.gz files in this folder")
        if output_path.exists() and not output_path.is_dir():
            raise NengosegError(f"{output_path} is a file; for a folder of inputs give an output folder")
        pairs = [(p, output_path / p.name) for p in inputs]
    else:
        pairs = [(input_path, output_path)]
    if not overwrite:
        existing = [str(out) for _, out in pairs if out.exists()]
        if existing:
            raise NengosegError(f"{existing[0]} exists; pass --overwrite to replace it")
    segmenter = Segmenter(run_dir, engine)
    for source, target in pairs:
        mask = segment_file(segmenter, source, target, overwrite)
        if verbose:
            print(f"{source} -> {target} ({int(mask.sum())} foreground voxels, engine {engine})")
    return [target for _, target in pairs]
