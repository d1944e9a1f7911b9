"""Reading 2D image files (PNG, JPEG, TIFF, GIF) with Pillow, where any bad file is a DataError.

Pillow is asked for the expected formats only (a TIFF renamed ``.png`` is named as
such rather than decoded), the image size in the header is checked before any
pixel is decoded (a damaged header claiming a huge image fails at once instead of
allocating it), and whatever Pillow cannot decode (truncated data, bad checksums,
garbage) becomes a one-line :class:`~nengoseg.errors.DataError` naming the file.
Files are only read.
"""

import warnings

import numpy as np
from PIL import Image

from nengoseg.errors import DataError

# Pillow's own limit for decompression bombs (about 89 million pixels)
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
FORMAT_NAMES = {"PNG": "a PNG", "JPEG": "a JPEG", "TIFF": "a TIFF", "GIF": "a GIF"}


def read_image(path, formats, mode=None, modes=None, one_frame=False):
    """The image in ``path`` as a numpy array (H, W) or (H, W, C).

    ``formats``: the Pillow formats accepted (``("PNG",)``); ``mode``: convert to
    this Pillow mode (``"L"``, ``"RGB"``) after decoding; ``modes``: the modes the
    file itself may have (checked before decoding), for loaders that take pixel
    values as stored; ``one_frame``: refuse files that hold several images (a
    multi-page TIFF, an animated GIF) instead of reading the first. Raises
    DataError naming the file for anything else.
    """
    expected = " or ".join(FORMAT_NAMES.get(f, f) for f in formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: checked below
            with Image.open(path, formats=list(formats)) as img:
                width, height = img.size
                if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
                    raise DataError(
                        f"{path}: the {img.format} header claims a {width}x{height} image; "
                        f"expected at most {MAX_PIXELS} pixels (a damaged header?)"
                    )
                if modes is not None and img.mode not in modes:
                    raise DataError(
                        f"{path}: image has Pillow mode {img.mode}; expected {expected} "
                        f"of mode {' or '.join(modes)}"
                    )
                frames = getattr(img, "n_frames", 1) if one_frame else 1
                if frames > 1:
                    raise DataError(
                        f"{path}: the {img.format} file holds {frames} images (a stack?); "
                        "expected one 2D image per file: save each page as its own file"
                    )
                img.load()
                array = np.asarray(img.convert(mode) if mode is not None else img)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except Exception as err:  # Pillow's view of these bytes: not a readable image
        raise DataError(
            f"{path}: cannot read as an image ({one_line(type(err).__name__ + ': ' + str(err))}); "
            f"expected {expected}"
        ) from None
    return array


def check_label(array, path, image_path, shape, values, meaning, kind="label"):
    """``array``, the ``kind`` (label or mask) read from ``path`` for ``image_path``:
    DataError naming the file unless it has the image's ``shape`` and only ``values``
    (``meaning`` says what they stand for, e.g. "255 = vessel")."""
    if array.shape != shape:
        raise DataError(
            f"{path}: {kind} shape {array.shape} differs from the image's {shape} "
            f"({image_path}); expected the same shape"
        )
    unexpected = np.setdiff1d(np.unique(array), values)
    if unexpected.size:
        raise DataError(
            f"{path}: {kind} values {unexpected.tolist()} are not allowed; "
            f"expected only {values} ({meaning})"
        )
    return array


def one_line(text, limit=200):
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
