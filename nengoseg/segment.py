"""Segment whole NIfTI volumes or 2D images with a trained run: ``nengoseg segment``.

What a run segments follows the data set its ANN was trained on, read from the data
section of its own stage record (``RUN/ann/stage.json``, never a later edit of
config.yaml), which also says how inputs are prepared:

- ``hippocampus`` runs segment NIfTI volumes. A volume is normalised as in training,
  cut into 2D slices along the training slicing axis and predicted with overlapping
  tiles of the training size (`nengoseg.tiling`: Gaussian-weighted averages of the
  probabilities, as nnU-Net's predictor), so volumes of any in-plane size are covered
  whole. The mask is a uint8 NIfTI with the input's shape, affine and header, marked
  ``nengoseg mask ...`` in the header's ``descrip`` field.
- ``drive`` and ``isbi2012`` runs segment 2D image files (.png, .tif/.tiff, .gif,
  .jpg/.jpeg), e.g. the DRIVE test half's ``images/NN_test.tif``. An image is
  converted as the training loader converted its images (DRIVE: 8-bit RGB to gray with
  the ITU-R 601 weights in float, / 255; ISBI: 8-bit grayscale, / 255), then
  ``data.normalise`` is applied as in training ("unit": as is; "zero_mean"), and the
  image is predicted as one slice of any size with tiles of the training size (a
  slice smaller than a tile is padded with 0, as the DRIVE training tiles were). The
  mask is a uint8 PNG of the image's size, 0 = background and 255 = the class the run
  was trained to find (DRIVE: vessel; ISBI: ``data.foreground``, membrane or cell),
  marked with the same ``nengoseg mask ...`` text in its ``Description`` chunk. A
  DRIVE image laid out as in a DRIVE half (``images/NN_test.tif`` with
  ``mask/NN_test_mask.gif``) has its mask cleared outside that field of view;
  without the file the whole mask is kept, and the message says which. In folder
  mode ``NAME.ext`` becomes ``NAME.png``.

Nothing is lost or damaged: inputs are only read; outputs are written atomically,
never into the data folders, and only files that carry the mark are replaced
(``--overwrite``) or kept as done (``--skip-existing``). Every path is checked
before anything is predicted; in folder mode every file is tried and the
failures are listed at the end.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nengoseg import data as nsdata
from nengoseg import backends, evaluate, rundir, tiling
from nengoseg.data.drive import field_of_view_file, read_field_of_view
from nengoseg.errors import ConfigError, DataError, NengosegError
from nengoseg.mask_files import (  # noqa: F401  (mark_of: for callers)
    IMAGE_DATASETS, IMAGE_SUFFIXES_TEXT, MARK, NIFTI_SUFFIXES, PNG_SUFFIXES, check_output,
    check_single_output, check_writable, data_folders, is_image, is_nifti, mark_of,
    outputs_to_write, prepare_output_folder, read_image_2d, read_volume, write_mask,
    write_png_mask,
)

ENGINES = backends.CHOICES  # what --engine accepts
PAD_2D = 0.0  # what 2D images smaller than a tile are padded with (as DRIVE training tiles)


@dataclass(frozen=True)
class Files:
    """The files a run segments and the masks it writes."""

    what: str  # an input, in messages
    suffixes: str  # the inputs' file name endings, in messages
    none: str  # the inputs' file name endings, in "no ... files in this folder"
    is_input: Callable  # path -> whether a file of a folder is an input
    output_suffixes: tuple  # what the name of a single output must end in
    output_name: Callable  # input path -> the name of its mask in an output folder
    check_name: bool  # refuse a single input whose name is not an input's (before predicting)


VOLUMES = Files("a NIfTI file", ".nii/.nii.gz", ".nii or .nii.gz", is_nifti, NIFTI_SUFFIXES,
                lambda p: p.name, False)
IMAGES = Files(f"a 2D image file ({IMAGE_SUFFIXES_TEXT})", IMAGE_SUFFIXES_TEXT,
               f"{IMAGE_SUFFIXES_TEXT} image", is_image, PNG_SUFFIXES, lambda p: p.stem + ".png",
               True)


def files_of(data_cfg, run_dir):
    """`VOLUMES` for a hippocampus run, `IMAGES` for drive / isbi2012; ConfigError else."""
    dataset = data_cfg["dataset"]
    if dataset == "hippocampus":
        return VOLUMES
    if dataset in IMAGE_DATASETS:
        return IMAGES
    raise ConfigError(f"{run_dir}: segment works on runs trained on hippocampus (NIfTI volumes), "
                      f"drive or isbi2012 (2D images); this run was trained on '{dataset}'")


def foreground_name(data_cfg):
    """What the mask's foreground is, in messages."""
    return {"hippocampus": "foreground", "drive": "vessel"}.get(
        data_cfg["dataset"], data_cfg.get("foreground", "membrane"))


class Segmenter:
    """Predicts foreground masks of volumes or 2D images with one engine of a run folder."""

    def __init__(self, run_dir, engine="ann", minibatch_size=16, verbose=False,
                 overlap=0.5, gaussian=True):
        run_dir = Path(run_dir)
        engine = check_engine(engine)
        self.data_cfg = rundir.trained_data_config(run_dir)
        self.files = files_of(self.data_cfg, run_dir)
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
        return np.moveaxis(self._masks(probs), 0, axis).astype(np.uint8)

    def segment_image(self, image):
        """A uint8 mask (H, W), 1 = foreground, of a 2D image (H, W) as `read_image_2d` gives
        it (in [0, 1], before ``data.normalise``); tiled, never cropped."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError(f"expected a 2D image (H, W), got shape {image.shape}")
        if self.data_cfg["normalise"] == "zero_mean":  # "unit": the loader's values as they are
            image = nsdata.normalise_volume(image, "zero_mean")
        probs = tiling.predict_tiled(image[None], self.data_cfg["size"], self.probabilities,
                                     self.overlap, self.gaussian, pad_value=PAD_2D)
        return self._masks(probs)[0].astype(np.uint8)

    def _masks(self, probs):
        return probs[..., 0] > self.threshold if probs.shape[-1] == 1 else probs.argmax(-1) > 0

    def tiles_per_slice(self, shape):
        """Tiles per 2D slice of a volume of ``shape`` (X, Y, Z), or of an image (H, W)."""
        in_plane = list(shape) if len(shape) == 2 else [
            n for a, n in enumerate(shape) if a != self.data_cfg["slice_axis"]]
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
    batch; by default the batched emulator (`nengoseg.loihi.batched`, the same spikes as
    nengo-loihi's emulator) runs many tiles at once, each from rest.
    """
    from nengoseg.deploy import build_for_loihi
    from nengoseg.loihi import DeploySettings
    from nengoseg.loihi.run import make_simulator, run_loihi
    from nengoseg.snn_stage import latest_conversion

    settings = DeploySettings()
    batched = settings.emulator == "batched"
    loihi_net, _ = build_for_loihi(latest_conversion(run_dir), settings, run_dir)
    simulator = make_simulator(loihi_net, "sim", fast_routing=not batched)

    def predict(x):
        result = run_loihi(loihi_net, x, target="sim", progress=segmenter.verbose,
                           simulator=simulator, batched=batched,
                           chunk_images=settings.chunk_images)
        return result.outputs, loihi_net.settings.threshold

    return predict


_PREDICTORS = {"ann": _ann_predictor, "engine": _snn_predictor, "nengo-dl": _snn_predictor,
               "loihi": _loihi_predictor}


def segment_file(segmenter, input_path, output_path, overwrite=False):
    """Segment one file (a NIfTI volume or a 2D image, as the run was trained) into
    ``output_path`` (same checks as ``nengoseg segment``); returns the mask, 1 = foreground."""
    input_path, output_path = Path(input_path), Path(output_path)
    folders = data_folders(segmenter.data_cfg, input_path.parent)
    _check_input_name(input_path, segmenter.files)
    check_single_output(input_path, output_path, folders, segmenter.files.output_suffixes)
    if check_output(output_path, segmenter.mark, "overwrite" if overwrite else None) == "write":
        return _segment_one(segmenter, input_path, output_path)[0]


def _segment_one(segmenter, source, target):
    """``(mask, note)``: the mask written (1 = foreground) and what to add to the message."""
    if segmenter.files is VOLUMES:
        nii, image = read_volume(source)
        mask = segmenter.segment_volume(image)
        write_mask(mask, nii, target, segmenter.mark)
        return mask, ""
    image = read_image_2d(source, segmenter.data_cfg)
    fov, note = None, ""
    if segmenter.data_cfg["dataset"] == "drive":  # read (and checked) before predicting
        fov_path, fov = read_field_of_view(source, image.shape)
        expected = field_of_view_file(source) or "images/NN_test.tif with mask/NN_test_mask.gif"
        note = (f"; cleared outside the field of view {fov_path}" if fov is not None else
                f"; no field-of-view mask found (expected {expected}): the whole mask is kept")
    mask = segmenter.segment_image(image)
    if fov is not None:
        mask[~fov] = 0
    write_png_mask(mask, target, segmenter.mark)
    return mask, note


def _check_input_name(input_path, files):
    if files.check_name and not files.is_input(input_path):
        raise DataError(f"{input_path}: not an input this run segments; expected {files.what}")


def segment_paths(run_dir, input_path, output_path, engine="ann", overwrite=False,
                  skip_existing=False, overlap=0.5, verbose=True):
    """Segment a file, or every input file of a folder into an output folder.

    The inputs are what the run was trained on (`files_of`): NIfTI volumes into NIfTI
    masks (hippocampus runs), or 2D images into PNG masks ``NAME.png`` (drive and
    isbi2012 runs). Every path is checked before the model is loaded. In folder mode
    every file is tried; the masks that were written stay, and the failures are listed
    at the end (a NengosegError "N of M files failed: ..."). Returns the outputs written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    engine = check_engine(engine)
    tiling.check_overlap(overlap)
    if overwrite and skip_existing:
        raise ConfigError("give --overwrite or --skip-existing, not both")
    mode = "overwrite" if overwrite else "skip" if skip_existing else None
    data_cfg = rundir.trained_data_config(run_dir)
    files = files_of(data_cfg, run_dir)
    if not input_path.exists():
        raise DataError(f"{input_path} does not exist (expected {files.what} or a folder of them)")
    mark = model_mark(run_dir, engine)
    if input_path.is_dir():
        pairs = _plan_folder(input_path, output_path, data_folders(data_cfg, input_path), files,
                             verbose)
    else:
        _check_input_name(input_path, files)
        if output_path.is_dir():
            output_path = output_path / files.output_name(input_path)
        check_single_output(input_path, output_path, data_folders(data_cfg, input_path.parent),
                            files.output_suffixes)
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


def _plan_folder(input_dir, output_dir, folders, files, verbose):
    inputs = sorted(p for p in input_dir.iterdir() if not p.name.startswith("."))
    others = [p for p in inputs if not files.is_input(p) or not p.is_file()]
    inputs = [p for p in inputs if p not in others]
    if not inputs:
        raise DataError(f"{input_dir}: no {files.none} files in this folder")
    if verbose and others:
        print(f"note: ignoring {len(others)} entries of {input_dir} that are not {files.suffixes} "
              f"files (first: {others[0].name})", flush=True)
    pairs, sources = [], {}
    for source in inputs:
        target = output_dir / files.output_name(source)
        if target in sources:
            raise NengosegError(f"{sources[target]} and {source} would both be written to "
                                f"{target}; segment one of them on its own")
        sources[target] = source
        pairs.append((source, target))
    prepare_output_folder(output_dir, folders)
    return pairs


def _segment_and_say(segmenter, source, target, verbose, say):
    mask, note = _segment_one(segmenter, source, target)
    if verbose:
        tiles = segmenter.tiles_per_slice(mask.shape)
        count = f"{int(mask.sum())} foreground voxels" if segmenter.files is VOLUMES else (
            f"{int(mask.sum())} {foreground_name(segmenter.data_cfg)} pixels = 255")
        where = " per slice" if segmenter.files is VOLUMES else ""
        say(f"{source} -> {target} ({count}, engine {segmenter.engine}, {tiles} "
            f"tile{'s' if tiles > 1 else ''}{where}{note})")
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
