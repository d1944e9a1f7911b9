"""Gaussian denoising data: training patches (Train400) with noise of random strength,
test sets (BSD68, CBSD68, Set12) at fixed noise levels, all seeded.

The network learns the noise map (DnCNN's residual learning, the Spiking-UNet paper's
noise-map readout): inputs are ``clean + noise``, targets ``noise``, both on the [0, 1]
scale, and the denoised image is ``input - prediction``.
"""

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


def load_clean(folder, mode="L"):
    """The clean images of a folder of PNGs (Train400, BSD68, ...), float32 (H, W, C) in
    [0, 1] converted to Pillow ``mode`` ("L" gray, "RGB" colour), and their file names."""
    paths = _png_paths(Path(folder))
    return [_read(path, mode) for path in paths], [p.name for p in paths]


def training_patches(images, size, per_image, sigma_range=(0, 55), seed=0):
    """Random ``size`` crops of each clean image with Gaussian noise of a random strength.

    ``per_image`` crops are cut from every image; each gets its own noise level
    sigma ~ U(sigma_range) (on the 0-255 scale, as DnCNN's blind training). Returns
    ``noisy`` and ``noise`` float32 (N, H, W, C), the image index of each patch and its
    sigma. Everything depends only on ``seed`` and the inputs.
    """
    height, width = size
    low, high = sigma_range
    rng = np.random.default_rng(seed)
    noisy, noise, index, sigmas = [], [], [], []
    for i, image in enumerate(images):
        if image.shape[0] < height or image.shape[1] < width:
            raise DataError(f"training image {i} is {image.shape[0]}x{image.shape[1]}, smaller "
                            f"than the patch size {height}x{width}; expected a smaller data.size")
        for _ in range(per_image):
            top = rng.integers(0, image.shape[0] - height + 1)
            left = rng.integers(0, image.shape[1] - width + 1)
            clean = image[top:top + height, left:left + width]
            sigma = rng.uniform(low, high)
            patch_noise = rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)
            noisy.append(clean + patch_noise)
            noise.append(patch_noise)
            index.append(i)
            sigmas.append(sigma)
    return (np.stack(noisy).astype(np.float32), np.stack(noise), np.array(index),
            np.array(sigmas))


def noisy_tiles(image, sigma, tile, seed):
    """An image with seeded noise of ``sigma``, cut into ``tile`` tiles row by row.

    The image is padded by reflection at the bottom and right up to a multiple of the
    tile (BSD68's 321 x 481 has few divisors); the noise is drawn for the padded image,
    so the padding is as noisy as the rest. Returns ``noisy`` and ``noise`` tiles
    (k, th, tw, C) and ``inside`` (k, th, tw): the pixels of the original image.
    """
    th, tw = tile
    pad = ((0, -image.shape[0] % th), (0, -image.shape[1] % tw), (0, 0))
    padded = np.pad(image, pad, mode="reflect" if max(pad[0][1], pad[1][1]) < min(
        image.shape[:2]) else "edge")
    noise = np.random.default_rng(seed).normal(0.0, sigma / 255.0, padded.shape)
    inside = np.pad(np.ones(image.shape[:2], bool), pad[:2])
    cut = lambda a: [a[r:r + th, c:c + tw] for r in range(0, a.shape[0], th)  # noqa: E731
                     for c in range(0, a.shape[1], tw)]
    return (np.stack(cut(padded + noise)).astype(np.float32),
            np.stack(cut(noise)).astype(np.float32), np.stack(cut(inside)))


def untile(tiles, shape):
    """Tiles cut row by row by `noisy_tiles` put back together and cropped to ``shape``
    (H, W): the inverse of the cut."""
    th, tw = tiles.shape[1:3]
    rows, cols = -(-shape[0] // th), -(-shape[1] // tw)
    grid = np.asarray(tiles).reshape((rows, cols) + tiles.shape[1:])
    whole = np.concatenate([np.concatenate(list(row), axis=1) for row in grid], axis=0)
    return whole[: shape[0], : shape[1]]


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
