"""Caltech-101 "airplanes" with the original bounding-box annotations, for box regression.

Each ``images/image_XXXX.jpg`` has ``Airplanes_Side_2/annotation_XXXX.mat`` whose
``box_coord`` is ``[y1, y2, x1, x2]`` in 1-based, inclusive MATLAB pixel coordinates.
"""

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, UnidentifiedImageError

from nengoseg.errors import DataError

IMAGES_DIR, ANNOTATIONS_DIR = "images", "Airplanes_Side_2"


def load_airplanes(root, size=(64, 96), skip_degenerate=True):
    """Load the images, resized, and their boxes relative to the image size.

    Returns ``x`` (N, H, W, 3) float32 in [0, 1] resized with Pillow to ``size = (H, W)``;
    ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)`` as fractions of the image width and
    height, pixel edges included: the box of pixels ``x1 .. x2`` (1-based, inclusive)
    spans ``(x1 - 1) / width .. x2 / width``, so a box over the whole image is
    ``(0, 0, 1, 1)``; and the names (``"image_0001"``, ...). Boxes of zero width or
    height in the annotation (``annotation_0118``) are left out unless
    ``skip_degenerate=False``.
    """
    root = Path(root)
    image_paths = _image_paths(root / IMAGES_DIR)
    x, boxes, names = [], [], []
    for image_path in image_paths:
        mat_path = root / ANNOTATIONS_DIR / image_path.name.replace("image_", "annotation_")
        mat_path = mat_path.with_suffix(".mat")
        y1, y2, x1, x2 = _read_box(mat_path)
        if skip_degenerate and (y2 <= y1 or x2 <= x1):
            continue
        image = _read_rgb(image_path)
        width, height = image.size
        _check_box_inside(mat_path, (y1, y2, x1, x2), width, height)
        x.append(_resized(image, size))
        boxes.append(((x1 - 1) / width, (y1 - 1) / height, x2 / width, y2 / height))
        names.append(image_path.stem)
    return np.stack(x), np.array(boxes, dtype=np.float32), names


def _image_paths(folder):
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected the image_XXXX.jpg files")
    paths = sorted(p for p in folder.glob("image_*.jpg") if not p.name.startswith("."))
    if not paths:
        raise DataError(f"{folder}: no image_*.jpg files in this folder")
    return paths


def _read_box(path):
    """``[y1, y2, x1, x2]`` of an annotation file, as Python ints (the file has uint8/16)."""
    if not path.is_file():
        raise DataError(f"{path}: annotation not found; every image needs its annotation_XXXX.mat")
    try:
        box = scipy.io.loadmat(str(path))["box_coord"]
    except (ValueError, OSError, KeyError) as err:
        raise DataError(
            f"{path}: cannot read box_coord ({err!r}); "
            "expected a MATLAB file with a 1x4 box_coord"
        ) from None
    if np.size(box) != 4:
        raise DataError(
            f"{path}: box_coord has shape {np.shape(box)}; expected 1x4 [y1, y2, x1, x2]"
        )
    return [int(v) for v in np.ravel(box)]


def _check_box_inside(path, box, width, height):
    y1, y2, x1, x2 = box
    if not (1 <= x1 and 1 <= y1 and x2 <= width and y2 <= height):
        raise DataError(
            f"{path}: box [y1, y2, x1, x2] = {list(box)} lies outside its {width}x{height} image; "
            f"expected 1 <= x1, x2 <= {width} and 1 <= y1, y2 <= {height}"
        )


def _read_rgb(path):
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: cannot read as an image ({err}); expected a JPEG") from None


def _resized(image, size):
    height, width = size
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0
