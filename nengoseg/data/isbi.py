"""ISBI 2012 EM membrane segmentation, as the PNG pairs of the Keras U-Net example.

On disk the labels are 255 = cell interior and 0 = membrane (the ISBI convention), so
membrane, the structure one segments, is the *black* class. :func:`load_isbi2012`
inverts the labels by default so that 1 = membrane.
"""

from pathlib import Path

import numpy as np

from nengoseg.data.imagefile import check_label, read_image
from nengoseg.errors import ConfigError, DataError

FOREGROUNDS = ("membrane", "cell")
LABEL_VALUES = (0, 255)  # 0 = membrane, 255 = cell interior


def load_isbi2012(root, foreground="membrane"):
    """Load ``root/train/image/N.png`` with ``root/train/label/N.png``, ordered by N.

    Returns ``x`` (N, H, W, 1) float32 in [0, 1], ``y`` (N, H, W, 1) uint8 with
    1 = ``foreground`` (``"membrane"``: label 0 on disk; ``"cell"``: label 255 on disk),
    and the names (``"0"``, ``"1"``, ...).
    """
    if foreground not in FOREGROUNDS:
        raise ConfigError(f"bad foreground {foreground!r}; allowed: {', '.join(FOREGROUNDS)}")
    image_dir, label_dir = Path(root) / "train" / "image", Path(root) / "train" / "label"
    names = _png_names(image_dir)
    x, y = [], []
    for name in names:
        image_path = image_dir / f"{name}.png"
        image, label = _load_pair(image_path, label_dir / f"{name}.png")
        if x and image.shape != x[0].shape:
            raise DataError(
                f"{image_path}: shape {image.shape} differs from the other images' "
                f"{x[0].shape}; expected one size for all"
            )
        x.append(image)
        y.append(label)
    on_disk = LABEL_VALUES[0] if foreground == "membrane" else LABEL_VALUES[1]
    x = to_unit(np.stack(x)[..., None])
    y = (np.stack(y) == on_disk)[..., None].astype(np.uint8)
    return x, y, names


def _png_names(folder):
    """PNG file stems of a folder, numbers in numeric order (0, 1, 2, ..., 10)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected the ISBI train/image/*.png files")
    names = [p.stem for p in folder.glob("*.png") if not p.name.startswith(".")]
    if not names:
        raise DataError(f"{folder}: no .png files in this folder")
    return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))


def to_unit(gray):
    """8-bit gray pixels as float32 in [0, 1] (/ 255), as the images are trained on."""
    return np.asarray(gray).astype(np.float32) / 255.0


def read_gray(path, formats=("PNG",), one_frame=False):
    """An 8-bit grayscale image (Pillow mode L) as a 2D uint8 array.

    Other modes (RGB, 16-bit, palette, 1-bit) are a DataError rather than converted:
    the pixel values are the labels, and a conversion would change them silently.
    The loader reads PNGs; ``nengoseg segment`` passes other formats (by file name)
    and refuses stacks (``one_frame``).
    """
    array = read_image(path, formats, modes=("L",), one_frame=one_frame)
    if array.ndim != 2 or array.dtype != np.uint8:  # mode L always gives this
        raise DataError(
            f"{path}: image is {array.dtype} with shape {array.shape}; "
            f"expected an 8-bit grayscale {' or '.join(formats)}"
        )
    return array


def _load_pair(image_path, label_path):
    """An image and its label, checked: same shape, label values 0 and 255 only."""
    if not label_path.is_file():
        raise DataError(f"{image_path}: image has no label; expected {label_path}")
    image = read_gray(image_path)
    label = check_label(read_gray(label_path), label_path, image_path, image.shape,
                        LABEL_VALUES, "0 = membrane, 255 = cell interior")
    return image, label
