"""NIfTI image/label volumes: find pairs, load and check them, normalise, pad or crop.

Loading only ever reads: files are opened read-only and nothing is written beside them.
Every problem with a file raises :class:`~nengoseg.errors.DataError` naming the file and
saying what would have been accepted.
"""

import contextlib
import logging
import math
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from nengoseg.data.imagefile import one_line
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

    The image becomes float32 (NIfTI scaling applied) and must be 3D, real and
    finite: NaN or infinite voxels (also values beyond float32 after scaling) are a
    DataError naming the file, never replaced silently. The label must have the
    image's shape and affine (``np.allclose``, atol 1e-3) and integral values in
    ``label_values``; labels stored as floats are rounded to uint8. ``label_path``
    may be None for an unlabelled image (the label is then all zeros). A truncated or
    damaged file, a header claiming more than :data:`MAX_VOXELS` voxels or more bytes
    than the file holds, and a non-finite affine are DataErrors naming the file.
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
    """Read a whole NIfTI file (read-only): its array, NIfTI scaling applied, and affine.

    The file is read into memory once. The header is checked before any voxel is
    read: its shape may hold at most :data:`MAX_VOXELS` voxels and the file must
    hold all the bytes the header promises, so a damaged header that claims a huge
    volume fails at once instead of allocating it. A gzip stream is decompressed
    no further than the header says the data goes. Anything the NIfTI parser cannot
    make sense of is a DataError naming the file.
    """
    raw = _read_bytes(path)
    gzipped = raw[:2] == GZIP_MAGIC
    head = _gunzip(raw, NIFTI_HEADER_BYTES, path) if gzipped else raw[:NIFTI_HEADER_BYTES]
    klass = _nifti_class(head, path)
    with _quiet_nibabel():
        try:
            size = klass.header_class.sizeof_hdr
            header = klass.header_class(binaryblock=head[:size], check=True)
            shape = tuple(int(n) for n in header.get_data_shape())
            itemsize = header.get_data_dtype().itemsize
            offset = float(header.get_data_offset())
        except Exception as err:  # the parser's view of these bytes: a damaged header
            raise _unreadable(path, err) from None
        n_voxels = math.prod(shape)
        if not 0 <= offset <= MAX_DATA_OFFSET or n_voxels > MAX_VOXELS:
            raise DataError(
                f"{path}: the NIfTI header claims shape {shape} ({n_voxels} voxels, data at "
                f"byte {offset:g}); expected at most {MAX_VOXELS} voxels from a byte below "
                f"{MAX_DATA_OFFSET} (a damaged header?)"
            )
        needed = int(offset) + n_voxels * itemsize
        data = _gunzip(raw, needed + 1, path) if gzipped else raw
        if len(data) < needed:
            raise DataError(
                f"{path}: cannot read as NIfTI (the file is truncated: {len(data)} bytes"
                f"{' uncompressed' if gzipped else ''}, the header's shape {shape} needs "
                f"{needed}); expected a complete .nii or .nii.gz file"
            )
        try:
            nii = klass.from_bytes(data)
            with np.errstate(all="ignore"):
                array = np.asanyarray(nii.dataobj)
            affine = np.array(nii.affine, dtype=np.float64)
        except Exception as err:  # the parser's view of these bytes: a damaged file
            raise _unreadable(path, err) from None
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise DataError(
            f"{path}: the NIfTI affine (voxel-to-world matrix) holds NaN or infinite values; "
            "expected a finite affine (a damaged header?)"
        )
    return array, affine


GZIP_MAGIC = b"\x1f\x8b"
NIFTI_HEADER_BYTES = 544  # NIfTI-2 header and extension flag; NIfTI-1 needs 352
# More voxels than any volume this package slices into 2D (a 1024^3 volume has 2^30):
# a header claiming more is taken as damaged rather than allocated.
MAX_VOXELS = 2**30
MAX_DATA_OFFSET = 2**31  # where the voxels start: after the header and its extensions
_NIFTI_MAGIC = {b"n+1": nib.Nifti1Image, b"n+2": nib.Nifti2Image}


def _read_bytes(path):
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if not raw:
        raise DataError(f"{path}: the file is empty; expected a complete .nii or .nii.gz file")
    return raw


def _gunzip(raw, limit, path):
    """At most ``limit`` bytes of the gzip stream ``raw`` (several members are joined)."""
    out = bytearray()
    rest = raw
    try:
        while rest[:2] == GZIP_MAGIC and len(out) < limit:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            pending = rest
            while pending and len(out) < limit and not stream.eof:
                out += stream.decompress(pending, limit - len(out))
                pending = stream.unconsumed_tail
            rest = stream.unused_data if stream.eof else b""
    except zlib.error as err:
        raise _unreadable(path, f"damaged gzip data: {err}") from None
    return bytes(out)


def _nifti_class(head, path):
    """The nibabel class of a single-file NIfTI-1 or NIfTI-2 header, from its magic."""
    for klass in (nib.Nifti1Image, nib.Nifti2Image):
        header_class = klass.header_class
        if len(head) >= header_class.sizeof_hdr:
            magic = np.ndarray((), header_class.template_dtype, head[: header_class.sizeof_hdr])
            magic = bytes(magic["magic"]).rstrip(b"\x00")
            if _NIFTI_MAGIC.get(magic) is klass:
                return klass
    what = "too short for a NIfTI header" if len(head) < 348 else "no NIfTI magic 'n+1'/'n+2'"
    raise _unreadable(path, what)


def _unreadable(path, err):
    reason = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return DataError(
        f"{path}: cannot read as NIfTI ({one_line(reason)}); "
        "expected a complete .nii or .nii.gz file"
    )


@contextlib.contextmanager
def _quiet_nibabel():
    """Keep nibabel from printing the header fixes it makes (the error says what failed)."""
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _check_real(array, path, what):
    """Raise DataError unless ``array`` holds real numbers (not complex, RGB or bool)."""
    if array.dtype.kind not in "iuf":
        raise DataError(
            f"{path}: {what} has data type {array.dtype}; expected real numbers "
            "(an integer or float NIfTI data type)"
        )


def _check_image(image, path):
    """The image as float32; it must be 3D, not empty, real and finite."""
    if image.ndim != 3:
        raise DataError(f"{path}: image has shape {image.shape}; expected a 3D volume")
    if image.size == 0:
        raise DataError(f"{path}: image has shape {image.shape}, no voxels; expected a 3D volume")
    _check_real(image, path, "image")
    with np.errstate(all="ignore"):
        image = image.astype(np.float32)
    n_bad = image.size - np.count_nonzero(np.isfinite(image))
    if n_bad:
        raise DataError(
            f"{path}: {n_bad} voxels are NaN or infinite (or beyond float32); "
            "expected finite intensities"
        )
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
    """The label as uint8; it must be real and its values integral and in ``label_values``."""
    _check_real(label, path, "label")
    allowed = tuple(label_values)
    if label.dtype.kind == "f":
        if not np.all(np.isfinite(label)) or not np.array_equal(label, np.rint(label)):
            raise DataError(
                f"{path}: label holds non-integral values; expected integers in {allowed}"
            )
    values = np.unique(label)
    unexpected = values[~np.isin(values, np.asarray(allowed))]
    if unexpected.size:
        shown = [int(v) if float(v).is_integer() else float(v) for v in unexpected[:5]]
        more = f" (and {unexpected.size - 5} more)" if unexpected.size > 5 else ""
        raise DataError(
            f"{path}: label values {shown}{more} are not allowed; expected values in {allowed}"
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
