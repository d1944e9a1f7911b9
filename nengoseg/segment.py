"""Segment whole NIfTI volumes with a trained run: ``nengoseg segment``.

A volume is normalised as the run's ANN was trained (the data section of its own
stage record, ``RUN/ann/stage.json``, never a later edit of config.yaml), cut into
2D slices along the training slicing axis and predicted with overlapping tiles
of the training size (`nengoseg.tiling`: Gaussian-weighted averages of the
probabilities, as nnU-Net's predictor), so volumes of any in-plane size are
covered whole. The mask is written as uint8 NIfTI with the input's shape, affine
and header, marked ``nengoseg mask ...`` in the header's ``descrip`` field.

Nothing is lost or damaged: inputs are only read; outputs are written atomically,
never into the data folders, and only files that carry the mark are replaced
(``--overwrite``) or kept as done (``--skip-existing``). Every path is checked
before anything is predicted; in folder mode every file is tried and the
failures are listed at the end.
"""

import sys
from pathlib import Path

import numpy as np

from nengoseg import data as nsdata
from nengoseg import backends, evaluate, rundir, tiling
from nengoseg.errors import ConfigError, DataError, NengosegError
from nengoseg.mask_files import (  # noqa: F401  (mark_of: for callers)
    MARK, check_output, check_single_output, check_writable, data_folders,
    is_nifti, mark_of, outputs_to_write, prepare_output_folder, read_volume, write_mask,
)

ENGINES = backends.CHOICES  # what --engine accepts


class Segmenter:
    """Predicts foreground masks of volumes (or 2D slices) with one engine of a run folder."""

    def __init__(self, run_dir, engine="ann", minibatch_size=16, verbose=False,
                 overlap=0.5, gaussian=True):
        run_dir = Path(run_dir)
        engine = check_engine(engine)
        self.data_cfg = rundir.trained_data_config(run_dir)
        if self.data_cfg["dataset"] != "hippocampus":
            raise ConfigError(f"{run_dir}: segment works on NIfTI volumes; the run was trained on "
                              f"'{self.data_cfg['dataset']}' (allowed: a hippocampus run)")
        self.engine, self.minibatch_size, self.verbose = engine, minibatch_size, verbose
        self.overlap, self.gaussian = tiling.check_overlap(overlap), gaussian
        self.mark = model_mark(run_dir, engine)
        self.threshold = 0.5
        self._predict = _PREDICTORS[engine](self, run_dir)

    def predict_slices(self, x):
        """Foreground masks (n, H, W) for normalised slices x (n, H, W, 1) of the training size."""
        logits, threshold = self._predict(x)
        return evaluate.predicted_masks(logits, threshold)

    def probabilities(self, x):
        """Per-voxel class probabilities (n, H, W, C) of tiles x (n, H, W, 1)."""
        logits, self.threshold = self._predict(x)
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape[-1] == 1:
            return evaluate.sigmoid(logits)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def segment_volume(self, image):
        """A uint8 mask of a 3D image array, at the image's shape (tiled, never cropped)."""
        axis = self.data_cfg["slice_axis"]
        normalised = nsdata.normalise_volume(image, self.data_cfg["normalise"])
        probs = tiling.predict_tiled(
            np.moveaxis(normalised, axis, 0), self.data_cfg["size"], self.probabilities,
            self.overlap, self.gaussian, pad_value=float(normalised.min()),
        )
        masks = probs[..., 0] > self.threshold if probs.shape[-1] == 1 else probs.argmax(-1) > 0
        return np.moveaxis(masks, 0, axis).astype(np.uint8)

    def tiles_per_slice(self, shape):
        in_plane = [n for a, n in enumerate(shape) if a != self.data_cfg["slice_axis"]]
        counts = [len(tiling.tile_starts(n, t, self.overlap))
                  for n, t in zip(in_plane, self.data_cfg["size"])]
        return counts[0] * counts[1]


def check_engine(engine):
    """The backend ``engine`` asks for (``snn``: the engine); ConfigError if none."""
    return backends.resolve(engine, ENGINES, "--engine")


def model_mark(run_dir, engine):
    """The mark of the masks that ``engine`` of this run writes (engine and network stage id)."""
    if engine == "ann":
        name = "ann"
    else:
        name = next((s for s in ("cotrain", "convert") if rundir.finished(run_dir, s)), None)
        if name is None:
            from nengoseg.snn_stage import latest_conversion

            latest_conversion(run_dir)  # raises a DataError naming what is missing
    return f"{MARK} engine={engine} model={name}:{str(rundir.stage_id(run_dir, name))[:12]}"


def _ann_predictor(segmenter, run_dir):
    from nengoseg.snn_stage import load_keras

    model = load_keras(rundir.model_path(run_dir))
    return lambda x: (model.predict(x, batch_size=segmenter.minibatch_size, verbose=0), 0.5)


def _snn_predictor(segmenter, run_dir):
    """The co-trained (else converted) SNN on the engine or NengoDL (`nengoseg.backends`)."""
    from nengoseg import spiking_model
    from nengoseg.snn_stage import latest_conversion

    snn = spiking_model.load(latest_conversion(run_dir))

    def predict(x):
        result = snn.run(x, backend=segmenter.engine, batch_size=segmenter.minibatch_size,
                         verbose=segmenter.verbose)
        return result.outputs, snn.settings.threshold

    return predict


def _loihi_predictor(segmenter, run_dir):
    """The latest SNN on the nengo-loihi emulator, one tile after another.

    The network is rewritten and tiled once (block shapes that ``nengoseg deploy``
    saved in RUN/loihi/resources.json are reused) and one simulator serves every
    batch; the emulator is put back at rest before each input.
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


_PREDICTORS = {"ann": _ann_predictor, "engine": _snn_predictor, "nengo-dl": _snn_predictor,
               "loihi": _loihi_predictor}


def segment_file(segmenter, input_path, output_path, overwrite=False):
    """Segment one NIfTI file into ``output_path`` (same checks as ``nengoseg segment``)."""
    input_path, output_path = Path(input_path), Path(output_path)
    folders = data_folders(segmenter.data_cfg, input_path.parent)
    check_single_output(input_path, output_path, folders)
    if check_output(output_path, segmenter.mark, "overwrite" if overwrite else None) == "write":
        return _segment_one(segmenter, input_path, output_path)


def _segment_one(segmenter, source, target):
    nii, image = read_volume(source)
    mask = segmenter.segment_volume(image)
    write_mask(mask, nii, target, segmenter.mark)
    return mask


def segment_paths(run_dir, input_path, output_path, engine="ann", overwrite=False,
                  skip_existing=False, overlap=0.5, verbose=True):
    """Segment a file, or every NIfTI file of a folder into an output folder.

    Every path is checked before the model is loaded. In folder mode every file is
    tried; the masks that were written stay, and the failures are listed at the end
    (a NengosegError "N of M files failed: ..."). Returns the outputs written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    engine = check_engine(engine)
    tiling.check_overlap(overlap)
    if overwrite and skip_existing:
        raise ConfigError("give --overwrite or --skip-existing, not both")
    mode = "overwrite" if overwrite else "skip" if skip_existing else None
    if not input_path.exists():
        raise DataError(f"{input_path} does not exist (expected a NIfTI file or a folder of them)")
    data_cfg, mark = rundir.trained_data_config(run_dir), model_mark(run_dir, engine)
    if input_path.is_dir():
        pairs = _plan_folder(input_path, output_path, data_folders(data_cfg, input_path), verbose)
    else:
        if output_path.is_dir():
            output_path = output_path / input_path.name
        check_single_output(input_path, output_path, data_folders(data_cfg, input_path.parent))
        pairs = [(input_path, output_path)]
    todo = outputs_to_write(pairs, mark, mode)
    check_writable(pairs[0][1].parent)
    if verbose and len(todo) < len(pairs):
        print(f"skipping {len(pairs) - len(todo)} of {len(pairs)} files: their masks exist "
              f"({mark})", flush=True)
    if not todo:
        return []
    segmenter = Segmenter(run_dir, engine, overlap=overlap)
    if verbose:
        print(f"backend: {backends.describe(engine)}", flush=True)
    if not input_path.is_dir():
        return [_segment_and_say(segmenter, *todo[0], verbose, print)]
    return _segment_all(segmenter, todo, output_path, verbose)


def _plan_folder(input_dir, output_dir, folders, verbose):
    inputs = sorted(p for p in input_dir.iterdir() if not p.name.startswith("."))
    others = [p for p in inputs if not is_nifti(p) or not p.is_file()]
    inputs = [p for p in inputs if p not in others]
    if not inputs:
        raise DataError(f"{input_dir}: no .nii or .nii.gz files in this folder")
    if verbose and others:
        print(f"note: ignoring {len(others)} entries of {input_dir} that are not .nii/.nii.gz "
              f"files (first: {others[0].name})", flush=True)
    prepare_output_folder(output_dir, folders)
    return [(p, output_dir / p.name) for p in inputs]


def _segment_and_say(segmenter, source, target, verbose, say):
    mask = _segment_one(segmenter, source, target)
    if verbose:
        tiles = segmenter.tiles_per_slice(mask.shape)
        say(f"{source} -> {target} ({int(mask.sum())} foreground voxels, engine "
            f"{segmenter.engine}, {tiles} tile{'s' if tiles > 1 else ''} per slice)")
    return target


def _segment_all(segmenter, todo, output_dir, verbose):
    from tqdm.auto import tqdm

    written, failures = [], []
    quiet = None if verbose else True  # None: a bar only on a terminal
    for source, target in tqdm(todo, desc="segment", unit="file", disable=quiet):
        try:
            written.append(_segment_and_say(segmenter, source, target, verbose, tqdm.write))
        except Exception as err:  # every file is tried; KeyboardInterrupt still stops
            reason = " ".join(str(err).split()) if isinstance(err, NengosegError) else (
                f"{type(err).__name__}: {' '.join(str(err).split())}")
            failures.append(reason if reason.startswith(str(source)) else f"{source}: {reason}")
    if failures:
        for line in failures:
            print(f"failed: {line}", file=sys.stderr, flush=True)
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3
                                           else "")
        masks = f"{len(written)} mask{'' if len(written) == 1 else 's'}"
        raise NengosegError(f"{len(failures)} of {len(todo)} files failed ({masks} written to "
                            f"{output_dir}): {shown}")
    return written
