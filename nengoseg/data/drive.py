"""DRIVE retinal vessel segmentation (Staal et al., IEEE TMI 2004), in its usual layout.

A DRIVE half (training or test) is a folder with

- ``images/NN_training.tif`` (or ``NN_test.tif``): RGB fundus photographs, 8 bits;
- ``1st_manual/NN_manual1.gif``: the first observer's vessel labels, 0 or 255 (255 = vessel);
- ``mask/NN_training_mask.gif`` (or ``NN_test_mask.gif``): field-of-view masks, 0 or 255
  (255 = inside the circular field of view).

The images of the official release are 584 rows x 565 columns. Some copies of the test
half ship the manual labels separately; :func:`load_drive` needs them next to the images
and names the missing file otherwise. Files are only read.

``nengoseg segment`` reads new images through the same helpers (:func:`read_rgb`,
:func:`gray_unit`, :func:`read_field_of_view`), so they are converted as the
training images were.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nengoseg.data.imagefile import check_label, read_image
from nengoseg.errors import DataError

IMAGE_NAME = re.compile(r"(\d+)_(training|test)\.tiff?")
LABEL_VALUES = (0, 255)
# ITU-R BT.601 luma weights for R, G, B (what Pillow's convert("L") uses, without rounding)
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class DriveSet:
    """DRIVE images and labels, one row per image, in the order of ``names``."""

    x: np.ndarray  # (N, H, W, 1) gray or (N, H, W, 3) RGB, float32 in [0, 1]
    y: np.ndarray  # (N, H, W, 1) uint8, 1 = vessel
    fov: np.ndarray  # (N, H, W, 1) uint8, 1 = inside the field of view
    names: list  # image ids as in the file names ("21", "01", ...)

    def __len__(self):
        return len(self.x)


def load_drive(root, gray=True):
    """Load a DRIVE half from ``root`` (``images/``, ``1st_manual/``, ``mask/``).

    Image files ``NN_training.tif`` and ``NN_test.tif`` (``.tiff`` too) are both accepted;
    other files in ``images/`` are ignored. Images come in numeric order of NN.

    Returns a :class:`DriveSet`: ``x`` float32 in [0, 1], (N, H, W, 1) when ``gray``
    (default) else (N, H, W, 3) RGB; ``y`` uint8 (N, H, W, 1), 1 = vessel (255 on disk);
    ``fov`` uint8 (N, H, W, 1), 1 = inside the field of view (255 on disk); ``names``.

    Gray conversion is plain ITU-R BT.601 luma, ``0.299 R + 0.587 G + 0.114 B``, computed
    in float from the 8-bit channels. The Spiking-UNet paper's preprocessing (CLAHE and
    gamma correction before the gray conversion) is not offered: no library pinned in
    constraints.txt (neither scikit-image nor OpenCV) provides CLAHE.

    Labels are returned as on disk. In the official training half a few vessel pixels
    (200 over the 20 images) lie just outside the field-of-view mask; callers that
    score inside the field of view should multiply by ``fov``.

    Raises DataError naming the file for a missing folder, no images, an image without
    its label or mask, an unreadable file, a label or mask whose size differs from its
    image's, images of different sizes, or label / mask values other than 0 and 255.
    """
    root = Path(root)
    image_dir, label_dir, mask_dir = root / "images", root / "1st_manual", root / "mask"
    images = _image_files(image_dir)
    x, y, fov, names = [], [], [], []
    for name, half, image_path in images:
        label_path = label_dir / f"{name}_manual1.gif"
        mask_path = mask_dir / _mask_name(name, half)
        image = read_rgb(image_path)
        shape = image.shape[:2]
        label = _read_binary(label_path, image_path, shape, "label", "vessel")
        mask = _read_binary(mask_path, image_path, shape, "mask", "inside the field of view")
        if x and image.shape != x[0].shape:
            raise DataError(
                f"{image_path}: shape {image.shape} differs from the other images' "
                f"{x[0].shape} ({images[0][2].name}); expected one size for all"
            )
        x.append(image)
        y.append(label)
        fov.append(mask)
        names.append(name)
    x = gray_unit(np.stack(x))[..., None] if gray else _unit(np.stack(x))
    y = (np.stack(y) == LABEL_VALUES[1])[..., None].astype(np.uint8)
    fov = (np.stack(fov) == LABEL_VALUES[1])[..., None].astype(np.uint8)
    return DriveSet(x, y, fov, names)


def _image_files(folder):
    """``(name, half, path)`` of the DRIVE images in ``folder``, in numeric order."""
    expected = "NN_training.tif or NN_test.tif files"
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected the DRIVE images/{expected}")
    found = {}
    for path in folder.iterdir():
        match = IMAGE_NAME.fullmatch(path.name)
        if path.name.startswith(".") or match is None:
            continue
        name, half = match.groups()
        if name in found:
            raise DataError(
                f"{path}: image id {name} also names {found[name][2]}; "
                "expected one image per id (do not mix halves that share ids)"
            )
        found[name] = (name, half, path)
    if not found:
        raise DataError(f"{folder}: no DRIVE images in this folder; expected {expected}")
    return [found[n] for n in sorted(found, key=lambda n: (int(n), n))]


def _mask_name(name, half):
    return f"{name}_{half}_mask.gif"


def gray_unit(rgb):
    """8-bit RGB pixels (..., 3) as float32 gray in [0, 1]: BT.601 luma in float, / 255."""
    return _unit(np.asarray(rgb).astype(np.float32) @ GRAY_WEIGHTS)


def _unit(values):
    return np.clip(np.asarray(values).astype(np.float32) / 255.0, 0.0, 1.0).astype(np.float32)


def read_rgb(path, formats=("TIFF",), modes=("RGB", "L"), one_frame=False):
    """An 8-bit RGB (or gray, repeated to RGB) image as (H, W, 3) uint8.

    The loader reads TIFFs of mode RGB or L; ``nengoseg segment`` passes other formats
    (by file name) and palette images too (``modes``), and refuses stacks (``one_frame``).
    """
    array = read_image(path, formats, mode="RGB", modes=modes, one_frame=one_frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:  # RGB gives this
        kind = " or ".join(formats)
        raise DataError(
            f"{path}: image is {array.dtype} with shape {array.shape}; expected an 8-bit RGB {kind}"
        )
    return array


def field_of_view_file(image_path):
    """Where the DRIVE layout keeps the field-of-view mask of ``image_path``.

    ``.../images/NN_test.tif`` (or ``NN_training.tif``) -> ``.../mask/NN_test_mask.gif``;
    None for an image whose name or folder does not follow the layout.
    """
    image_path = Path(image_path)
    match = IMAGE_NAME.fullmatch(image_path.name)
    if match is None or image_path.parent.name != "images":
        return None
    return image_path.parent.parent / "mask" / _mask_name(*match.groups())


def read_field_of_view(image_path, shape):
    """``(path, (H, W) bool mask, True inside the field of view)`` of a DRIVE image, or
    ``(None, None)`` when its mask file (:func:`field_of_view_file`) does not exist.

    The mask is checked as :func:`load_drive` checks it (0 / 255 only, the image's shape).
    """
    path = field_of_view_file(image_path)
    if path is None or not path.is_file():
        return None, None
    mask = _read_binary(path, image_path, tuple(shape), "mask", "inside the field of view")
    return path, mask == LABEL_VALUES[1]


def _read_binary(path, image_path, shape, kind, meaning):
    """A 0 / 255 GIF (label or mask) of ``shape`` as (H, W) uint8.

    GIFs are palette images: Pillow gives gray-palette ones as mode L, others as P (or
    RGB); all are converted to gray values through their palette, so a black / white
    palette gives 0 / 255 and any other colour shows up as a value that is refused.
    """
    if not path.is_file():
        raise DataError(f"{image_path}: image has no {kind}; expected {path}")
    return check_label(read_image(path, ("GIF",), mode="L"), path, image_path, shape,
                       LABEL_VALUES, f"255 = {meaning}", kind)
