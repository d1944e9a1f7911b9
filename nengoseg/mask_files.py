"""Inputs in, marked masks out, and the checks that keep `nengoseg segment` from
losing or damaging anything.

Two kinds of files, by the data set the run was trained on:

- hippocampus runs: NIfTI volumes in (:func:`read_volume`), uint8 NIfTI masks out
  (:func:`write_mask`), marked in the header (``descrip``);
- drive and isbi2012 runs: 2D image files in (.png, .tif/.tiff, .gif, .jpg/.jpeg;
  :func:`read_image_2d` converts them as the run's training loader did), uint8 PNG
  masks out (:func:`write_png_mask`, 0 = background, 255 = foreground), marked in a
  PNG text chunk (key ``Description``).

Inputs are only read. Every mask carries the same mark (it starts with ``nengoseg
mask``, followed by the engine and the id of the network's stage; :func:`mark_of`
reads it from either kind of file), so an existing output is replaced
(``--overwrite``) or kept as done (``--skip-existing``) only when nengoseg wrote it.
Outputs are written atomically, never into the folder of the inputs or the run's
training data (for DRIVE inputs laid out as a DRIVE half, nor into the ``mask/`` and
``1st_manual/`` folders next to ``images/``), and an output folder is checked to be
writable before anything is predicted. Every error is a one-line NengosegError
naming the path.
"""

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from nengoseg.atomic import atomic_path
from nengoseg.errors import ConfigError, DataError, NengosegError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
MARK = "nengoseg mask"  # the start of the mark of every mask nengoseg writes
ACCEPTED_SHAPES = "(X, Y, Z) or (X, Y, Z, 1)"
# 2D inputs: file name ending (any case) -> the Pillow format it must hold
IMAGE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF",
                 ".jpg": "JPEG", ".jpeg": "JPEG"}
IMAGE_SUFFIXES_TEXT = "/".join(IMAGE_FORMATS)
PNG_SUFFIXES = (".png",)
PNG_MARK_KEY = "Description"  # the PNG text chunk that holds the mark
IMAGE_DATASETS = ("drive", "isbi2012")


class ForeignOutput(NengosegError):
    """An output path holds a file that nengoseg did not write: it is never replaced."""


def is_nifti(path):
    return Path(path).name.endswith(NIFTI_SUFFIXES)


def read_volume(path):
    """``(nibabel image, float32 (X, Y, Z) array)`` of a NIfTI file; (X, Y, Z, 1) is squeezed."""
    try:
        nii = nib.load(str(path), mmap=False)
        with np.errstate(all="ignore"):  # overflowing scaling: found by the finite check
            array = np.asanyarray(nii.dataobj)
    except MemoryError:
        raise
    except Exception as err:  # nibabel's view of these bytes: not a readable NIfTI file
        raise DataError(f"{path}: cannot read as NIfTI ({' '.join(str(err).split())}); "
                        "expected a complete .nii or .nii.gz file") from None
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[3] == 1)) or 0 in array.shape:
        raise DataError(f"{path}: image has shape {array.shape}; accepted: {ACCEPTED_SHAPES}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: voxels of type {array.dtype}; expected real intensities")
    image = array.reshape(array.shape[:3]).astype(np.float32)
    n_bad = image.size - np.count_nonzero(np.isfinite(image))
    if n_bad:
        raise DataError(f"{path}: {n_bad} voxels are NaN or infinite; expected finite intensities")
    return nii, image


def is_image(path):
    """A 2D image file name that segment reads for drive / isbi2012 runs (any case)."""
    return Path(path).suffix.lower() in IMAGE_FORMATS


def read_image_2d(path, data_cfg):
    """A 2D image as float32 (H, W) in [0, 1], converted as the run's training loader did.

    ``drive``: 8-bit RGB (gray and palette images are expanded to RGB first) to gray
    with the ITU-R 601 weights in float, / 255 (`nengoseg.data.drive`); ``isbi2012``:
    8-bit grayscale only (other modes are refused, as the loader refuses them), / 255
    (`nengoseg.data.isbi`). ``data.normalise`` is not applied here. The file must hold
    the format its name says and one image (no stacks); anything else is a one-line
    DataError naming the file.
    """
    from nengoseg.data import drive, isbi

    path = Path(path)
    formats = (IMAGE_FORMATS.get(path.suffix.lower()),)
    if formats[0] is None:
        raise DataError(f"{path}: not an image file segment reads; expected a "
                        f"{IMAGE_SUFFIXES_TEXT} file")
    if data_cfg["dataset"] == "drive":
        rgb = drive.read_rgb(path, formats, modes=("RGB", "L", "P"), one_frame=True)
        return drive.gray_unit(rgb)
    return isbi.to_unit(isbi.read_gray(path, formats, one_frame=True))


def mark_of(path):
    """The ``nengoseg mask ...`` mark of a NIfTI mask (header ``descrip``) or a PNG mask
    (text chunk ``Description``), or None when nengoseg did not write it."""
    try:
        if Path(path).suffix.lower() in PNG_SUFFIXES:
            text = _png_text(path)
        else:
            text = nib.load(str(path)).header["descrip"].item().decode("latin-1")
    except Exception:  # not a NIfTI / PNG file, a folder, unreadable: not ours
        return None
    return text if isinstance(text, str) and text.startswith(MARK) else None


def _png_text(path):
    """The mark chunk among those before the pixels (where `write_png_mask` puts it): the
    header only is read, as for NIfTI files."""
    from PIL import Image

    with Image.open(path, formats=["PNG"]) as img:
        return img.info.get(PNG_MARK_KEY)


def _where_marked(path):
    if Path(path).suffix.lower() in PNG_SUFFIXES:
        return f"its PNG {PNG_MARK_KEY} text"
    return "its NIfTI descrip"


def write_png_mask(mask, output_path, mark):
    """Write a 2D ``mask`` atomically as a uint8 PNG, 0 = background and 255 = foreground,
    with ``mark`` in its ``Description`` text chunk."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_MARK_KEY, mark)
    image = Image.fromarray(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8), "L")
    with atomic_path(output_path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def write_mask(mask, source, output_path, mark):
    """Write ``mask`` atomically with the header and affine of ``source`` (a nibabel image)."""
    header = source.header.copy()
    header.set_data_dtype(np.uint8)
    header["descrip"] = mark.encode("latin-1")[:80]
    header.set_intent("label")
    out = type(source)(mask.reshape(source.shape).astype(np.uint8), source.affine, header)
    out.header.set_slope_inter(1, 0)
    with atomic_path(output_path) as tmp:  # same file name: nibabel compresses .gz
        nib.save(out, str(tmp))


def check_output(output, mark, mode=None):
    """"write" or "skip" for an output path; an error for one that must be left alone.

    ``mode``: None (an existing file is an error), "overwrite" (replace masks nengoseg
    wrote) or "skip" (keep masks this engine and model wrote).
    """
    if not output.exists() and not output.is_symlink():
        return "write"
    found = mark_of(output)
    if found is None:
        raise ForeignOutput(f"{output} exists and was not written by nengoseg ("
                            f"{_where_marked(output)} does not start with '{MARK}'); nengoseg "
                            "never replaces it: move it away or choose another output")
    if mode == "overwrite":
        return "write"
    if mode == "skip" and found == mark:
        return "skip"
    if mode == "skip":
        was, now = found[len(MARK):].strip(), mark[len(MARK):].strip()
        raise NengosegError(f"{output} was written by another engine or model ({was}; now "
                            f"{now}); pass --overwrite to replace it or choose another output "
                            "folder")
    raise NengosegError(f"{output} exists; pass --overwrite to replace it "
                        "(or --skip-existing to keep it)")


def data_folders(data_cfg, input_folder):
    """``[(folder, what)]``: where the inputs and the run's training data are."""
    folders = [(Path(input_folder), "the folder of the input")]
    root = data_cfg.get("root")
    if root and data_cfg.get("images_dir") is None:
        from nengoseg.experiment_data import resolve_root

        try:
            folders.append((Path(resolve_root(root)), f"data.root {root} of the run"))
        except NengosegError:
            pass  # gone since training: nothing there to protect
    for key in ("images_dir", "labels_dir"):
        if data_cfg.get(key):
            folders.append((Path(data_cfg[key]).expanduser(), f"data.{key} of the run"))
    if data_cfg.get("dataset") == "drive" and Path(input_folder).name == "images":
        for name in ("mask", "1st_manual"):  # the rest of a DRIVE half
            folders.append((Path(input_folder).parent / name,
                            f"the DRIVE {name}/ folder next to the input's images/"))
    return folders


def check_not_in_data(output, folders):
    target = output.resolve()
    for folder, what in folders:
        folder = folder.resolve()
        if target == folder or folder in target.parents:
            raise NengosegError(f"{output} is inside {folder} ({what}); masks are never written "
                                "into data folders: give an output path outside them")


def check_writable(folder):
    """A one-line error, before anything is predicted, when ``folder`` cannot be written."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".nengoseg-write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise NengosegError(f"cannot write in the output folder {folder}: {err.strerror or err}; "
                            "give a writable output folder") from None


def check_single_output(input_path, output_path, folders, suffixes=NIFTI_SUFFIXES):
    """Checks of the output path of one input; ``suffixes``: the output's allowed endings."""
    if not Path(output_path).name.endswith(tuple(suffixes)):
        raise ConfigError(f"{output_path}: the output must end in {' or '.join(suffixes)}")
    if output_path.resolve() == input_path.resolve():
        raise NengosegError(f"{output_path}: the output would replace the input")
    check_not_in_data(output_path, folders)
    if not output_path.parent.is_dir():
        raise NengosegError(f"{output_path.parent} does not exist or is not a folder (the folder "
                            f"of the output {output_path.name}); create it first")


def outputs_to_write(pairs, mark, mode):
    """The pairs to predict; one error for all outputs in the way (others' files first)."""
    todo, errors = [], []
    for source, target in pairs:
        try:
            if check_output(target, mark, mode) == "write":
                todo.append((source, target))
        except NengosegError as err:
            errors.append(err)
    if errors:
        errors.sort(key=lambda err: not isinstance(err, ForeignOutput))
        more = f" ({len(errors) - 1} more outputs are in the way)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}")
    return todo


def prepare_output_folder(output_dir, folders):
    """Check an output folder for a folder of inputs; create it (and say so) when missing."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NengosegError(f"{output_dir} is a file; for a folder of inputs give an output folder")
    check_not_in_data(output_dir, folders)
    if not output_dir.exists():
        try:
            output_dir.mkdir(parents=True)
        except OSError as err:
            raise NengosegError(f"cannot create the output folder {output_dir}: "
                                f"{err.strerror or err}") from None
        print(f"created output folder {output_dir}", flush=True)
