"""Denoising test sets (BSD68, CBSD68, Set12): clean images with seeded Gaussian noise."""

from pathlib import Path

import numpy as np

from nengoseg.data.imagefile import read_image
from nengoseg.data.volumes import pad_or_crop
from nengoseg.errors import ConfigError, DataError

SET_MODES = {"BSD68": "L", "CBSD68": "RGB", "Set12": "L"}  # Pillow mode of each set
SIGMAS = (15, 25, 50)  # noise standard deviations on the 0-255 scale


def load_denoising(root, set_name="BSD68", sigma=25, seed=0, crop=None):
    """Load ``root/<set_name>/*.png`` and add Gaussian noise of std ``sigma / 255``.

    Images are centre-cropped to ``crop = (H, W)`` if given, else to the smallest
    height and width in the set (BSD68: 321x321, Set12: 256x256).
    Returns ``noisy`` and ``clean``, float32 (N, H, W, C) on the [0, 1] scale (the
    noisy images are not clipped), and the file names. The noise depends only on
    ``seed`` and the shapes.
    """
    if set_name not in SET_MODES:
        raise ConfigError(f"bad set_name {set_name!r}; allowed: {', '.join(SET_MODES)}")
    if sigma not in SIGMAS:
        raise ConfigError(f"bad sigma {sigma!r}; allowed: {', '.join(map(str, SIGMAS))}")
    paths = _png_paths(Path(root) / set_name)
    images = [_read(path, SET_MODES[set_name]) for path in paths]
    if crop is None:
        crop = (min(i.shape[0] for i in images), min(i.shape[1] for i in images))
    clean = np.stack([_centre_crop(image, crop, path) for image, path in zip(images, paths)])
    noise = np.random.default_rng(seed).normal(0.0, sigma / 255.0, clean.shape)
    return (clean + noise).astype(np.float32), clean, [p.name for p in paths]


def _png_paths(folder):
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected a folder of .png test images")
    paths = sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))
    if not paths:
        raise DataError(f"{folder}: no .png files in this folder")
    return paths


def _read(path, mode):
    """An image as float32 (H, W, C) in [0, 1], converted to the set's Pillow mode."""
    array = read_image(path, ("PNG",), mode=mode).astype(np.float32) / 255.0
    return array if array.ndim == 3 else array[..., None]


def _centre_crop(image, crop, path):
    height, width = crop
    if image.shape[0] < height or image.shape[1] < width:
        raise DataError(
            f"{path}: image is {image.shape[0]}x{image.shape[1]}, smaller than the crop "
            f"{height}x{width}; expected a crop no larger than every image"
        )
    return pad_or_crop(image, (height, width), axes=(0, 1))[0]
