"""NIfTI image/label volumes: find pairs, load and check them, normalise, pad or crop.

Loading only ever reads: files are opened read-only and nothing is written beside them.
Every problem with a file raises :class:`~nengoseg.errors.DataError` naming the file and
saying what would have been accepted.
"""

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from nengoseg.errors import ConfigError, DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
NORMALISE_MODES = ("unit", "zero_mean")
AFFINE_ATOL = 1e-3
MSD_IMAGES, MSD_LABELS = "imagesTr", "labelsTr"


@dataclass
class Volume:
    """One subject: a 3D image and its label map, as stored on disk."""

    subject: str  # file name without .nii.gz, e.g. "hippocampus_001"
    image: np.ndarray  # float32, raw intensities (after the NIfTI scaling), 3D
    label: np.ndarray  # uint8, label values as stored, same shape as image
    affine: np.ndarray  # 4x4 voxel-to-world matrix
    image_path: Path
    label_path: Path | None


def subject_name(path):
    """``hippocampus_001`` for ``.../hippocampus_001.nii.gz`` (or ``.nii``)."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_pairs(root=None, images_dir=None, labels_dir=None):
    """Pair image and label files by file name.

    Give ``root`` laid out as ``root/imagesTr`` and ``root/labelsTr`` (the Medical
    Segmentation Decathlon layout), or ``images_dir`` and ``labels_dir``.
    macOS ``._*`` files and other dotfiles are ignored.

    Returns ``[(subject, image_path, label_path), ...]`` sorted by subject.
    Raises DataError for a missing or empty folder, or a file without its partner.
    """
    images_dir, labels_dir = _resolve_dirs(root, images_dir, labels_dir)
    images = _nifti_files(images_dir)
    labels = _nifti_files(labels_dir)
    _check_partners(images, labels_dir, "image", "label")
    _check_partners(labels, images_dir, "label", "image")
    pairs = sorted((subject_name(name), images[name], labels[name]) for name in images)
    for (subject, first, _), (other, second, _) in zip(pairs, pairs[1:]):
        if subject == other:
            raise DataError(
                f"{second}: same subject as {first.name}; expected one file per subject"
            )
    return pairs


def _check_partners(files, other_dir, kind, other_kind):
    """Raise DataError naming the first of ``files`` without a same-named file in ``other_dir``."""
    orphans = sorted(name for name in files if not (other_dir / name).is_file())
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        raise DataError(
            f"{files[orphans[0]]}: {kind} has no {other_kind}{more}; expected "
            f"{other_dir / orphans[0]} ({other_kind}s are paired with {kind}s by file name)"
        )


def _resolve_dirs(root, images_dir, labels_dir):
    if root is not None and (images_dir is not None or labels_dir is not None):
        raise ConfigError("give either root or images_dir and labels_dir, not both")
    if root is not None:
        return Path(root) / MSD_IMAGES, Path(root) / MSD_LABELS
    if images_dir is None or labels_dir is None:
        raise ConfigError(
            f"give root (holding {MSD_IMAGES}/ and {MSD_LABELS}/) or both images_dir and labels_dir"
        )
    return Path(images_dir), Path(labels_dir)


def _nifti_files(folder):
    """File name -> path for the NIfTI files of a folder, skipping dotfiles."""
    if not folder.is_dir():
        raise DataError(
            f"{folder}: folder not found; expected a folder of {' or '.join(NIFTI_SUFFIXES)} files"
        )
    files = {
        p.name: p
        for p in folder.iterdir()
        if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith(".") and p.is_file()
    }
    if not files:
        raise DataError(f"{folder}: no {' or '.join(NIFTI_SUFFIXES)} files in this folder")
    return files


def load_volume(image_path, label_path, label_values=(0, 1, 2)):
    """Load one image/label pair and check that they belong together.

    The image becomes float32 (NIfTI scaling applied) and must be 3D and finite. The
    label must have the image's shape and affine (``np.allclose``, atol 1e-3) and
    integral values in ``label_values``; labels stored as floats are rounded to uint8.
    ``label_path`` may be None for an unlabelled image (the label is then all zeros).
    """
    image_path = Path(image_path)
    image, affine = _read_nifti(image_path)
    image = _check_image(image, image_path)
    if label_path is None:
        label = np.zeros(image.shape, dtype=np.uint8)
    else:
        label_path = Path(label_path)
        label, label_affine = _read_nifti(label_path)
        _check_same_grid(image, affine, image_path, label, label_affine, label_path)
        label = _check_label(label, label_path, label_values)
    return Volume(subject_name(image_path), image, label, affine, image_path, label_path)


def _read_nifti(path):
    """Read a whole NIfTI file (read-only): its array, NIfTI scaling applied, and affine."""
    try:
        nii = nib.load(str(path), mmap=False)
        return np.asanyarray(nii.dataobj), nii.affine.copy()
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(
            f"{path}: cannot read as NIfTI ({err}); expected a complete .nii or .nii.gz file"
        ) from None


def _check_image(image, path):
    """The image as float32; it must be 3D and finite."""
    if image.ndim != 3:
        raise DataError(f"{path}: image has shape {image.shape}; expected a 3D volume")
    image = image.astype(np.float32)
    n_bad = image.size - np.count_nonzero(np.isfinite(image))
    if n_bad:
        raise DataError(f"{path}: {n_bad} voxels are NaN or infinite; expected finite intensities")
    return image


def _check_same_grid(image, affine, image_path, label, label_affine, label_path):
    if label.shape != image.shape:
        raise DataError(
            f"{label_path}: label shape {label.shape} differs from the image's "
            f"{image.shape} ({image_path}); expected the same shape"
        )
    if not np.allclose(label_affine, affine, atol=AFFINE_ATOL):
        raise DataError(
            f"{label_path}: label affine differs from the image's ({image_path}); "
            f"expected the same affine within {AFFINE_ATOL}; "
            f"label {label_affine.tolist()}, image {affine.tolist()}"
        )


def _check_label(label, path, label_values):
    """The label as uint8; its values must be integral and in ``label_values``."""
    if label.dtype.kind == "f":
        if not np.all(np.isfinite(label)) or not np.array_equal(label, np.rint(label)):
            raise DataError(
                f"{path}: label holds non-integral values; "
                f"expected integers in {tuple(label_values)}"
            )
        label = np.rint(label).astype(np.int64)
    unexpected = np.setdiff1d(np.unique(label), np.asarray(label_values))
    if unexpected.size:
        raise DataError(
            f"{path}: label values {unexpected.tolist()} are not allowed; "
            f"expected values in {tuple(label_values)}"
        )
    return label.astype(np.uint8)


def normalise_volume(image, mode="unit", percentiles=(0.5, 99.5)):
    """Normalise one volume (or image) robustly, from its own intensity percentiles.

    Intensities are clipped to the given percentiles, then

    - ``"unit"``: scaled to [0, 1];
    - ``"zero_mean"``: the unit result minus its mean, divided by its largest absolute
      value, so it lies in [-1, 1] with mean 0 (for ternary spiking inputs).

    A constant image gives all zeros. Returns float32 of the input's shape.
    """
    check_normalise_mode(mode)
    low_pct, high_pct = percentiles
    if not 0 <= low_pct < high_pct <= 100:
        raise ConfigError(
            f"bad percentiles {tuple(percentiles)}; "
            "expected (low, high) with 0 <= low < high <= 100"
        )
    image = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(image, [low_pct, high_pct])
    if high <= low:
        return np.zeros_like(image)
    unit = (np.clip(image, low, high) - low) / (high - low)
    if mode == "unit":
        return unit.astype(np.float32)
    centred = unit - unit.mean()
    return (centred / np.abs(centred).max()).astype(np.float32)


def check_normalise_mode(mode):
    """Raise ConfigError unless ``mode`` is one of :data:`NORMALISE_MODES`."""
    if mode not in NORMALISE_MODES:
        raise ConfigError(f"bad normalise mode {mode!r}; allowed: {', '.join(NORMALISE_MODES)}")


def pad_or_crop(array, size, axes, value=0.0):
    """Centre-pad (with ``value``) or centre-crop ``array`` along ``axes`` to ``size``.

    When the difference is odd, the extra voxel goes after. Returns the new array and,
    for each axis, the ``(before, after)`` offsets: positive = padded by that many,
    negative = cropped by that many. :func:`undo_pad_or_crop` maps a result back.
    """
    size, axes = _check_size_axes(array, size, axes)
    offsets = []
    for n, target in zip((array.shape[a] for a in axes), size):
        diff = target - n
        sign = 1 if diff >= 0 else -1
        before = sign * (abs(diff) // 2)
        offsets.append((before, diff - before))
    return _apply_offsets(array, offsets, axes, value), offsets


def undo_pad_or_crop(array, offsets, axes, value=0.0):
    """Invert :func:`pad_or_crop`: crop what was padded, pad (with ``value``) what was cropped.

    The result has the original shape; voxels that were cropped away come back as ``value``.
    """
    axes = _normalise_axes(array, axes)
    if len(offsets) != len(axes):
        raise ConfigError(f"got {len(offsets)} offsets for {len(axes)} axes; expected one per axis")
    inverse = [(-before, -after) for before, after in offsets]
    return _apply_offsets(array, inverse, axes, value)


def _apply_offsets(array, offsets, axes, value):
    """Pad positive offsets and crop negative ones."""
    pad = [(0, 0)] * array.ndim
    crop = [slice(None)] * array.ndim
    for axis, (before, after) in zip(axes, offsets):
        pad[axis] = (max(before, 0), max(after, 0))
        crop[axis] = slice(max(-before, 0), array.shape[axis] - max(-after, 0))
    return np.pad(array[tuple(crop)], pad, constant_values=value)


def _check_size_axes(array, size, axes):
    axes = _normalise_axes(array, axes)
    size = tuple(int(s) for s in np.atleast_1d(size))
    if not axes or len(size) != len(axes) or min(size) < 1:
        raise ConfigError(
            f"bad size {size} for axes {axes}; expected one positive size per axis"
        )
    return size, axes


def _normalise_axes(array, axes):
    axes = tuple(int(a) for a in np.atleast_1d(axes))
    if any(not -array.ndim <= a < array.ndim for a in axes):
        raise ConfigError(f"bad axes {axes} for a {array.ndim}D array")
    return tuple(a % array.ndim for a in axes)
