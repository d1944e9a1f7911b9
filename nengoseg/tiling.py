"""Sliding-window prediction of 2D slices of any size with a fixed-size network.

As nnU-Net's predictor: every slice is covered by tiles of the training size
that overlap (by half by default); each tile is predicted, its probabilities are
weighted with a Gaussian that trusts the tile's centre more than its border, and
the weighted probabilities are averaged where tiles overlap. A slice smaller
than a tile is padded (centred) first. Nothing is ever cropped away.
"""

import math

import numpy as np

from nengoseg.errors import ConfigError

MAX_TILE_BYTES = 256 * 2**20  # inputs handed to the network in one call


def check_overlap(overlap):
    if not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        raise ConfigError(f"bad overlap {overlap!r}; expected a fraction of a tile, "
                          "0 <= overlap < 1")
    return float(overlap)


def tile_starts(length, tile, overlap=0.5):
    """Start positions of tiles of ``tile`` voxels covering ``length`` voxels (evenly spread,
    neighbours overlapping by at least ``overlap`` of a tile); ``[0]`` when one tile is enough."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - check_overlap(overlap))))
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def gaussian_weights(shape, sigma_scale=1 / 8):
    """nnU-Net's importance map: a Gaussian (sigma = shape / 8) peaking at 1 in the centre."""
    weights = np.ones((), dtype=np.float64)
    for n in shape:
        x = np.arange(n) - (n - 1) / 2
        sigma = max(n * sigma_scale, 1e-6)
        weights = np.multiply.outer(weights, np.exp(-(x**2) / (2 * sigma**2)))
    weights /= weights.max()
    return np.maximum(weights, 1e-4).astype(np.float32)  # the border still counts a little


def centre_padding(shape, tile):
    """``(before, after)`` padding per axis to make ``shape`` at least ``tile``."""
    return [((max(t - n, 0)) // 2, max(t - n, 0) - max(t - n, 0) // 2) for n, t in zip(shape, tile)]


def predict_tiled(slices, tile, predict, overlap=0.5, gaussian=True, pad_value=0.0,
                  max_tile_bytes=MAX_TILE_BYTES):
    """Averaged per-voxel probabilities ``(n, H, W, C)`` of slices ``(n, H, W)`` of any size.

    ``predict`` maps tiles ``(k, *tile, 1)`` (float32) to probabilities ``(k, *tile, C)``.
    Tiles are handed over in as few calls as fit in ``max_tile_bytes``.
    """
    slices = np.asarray(slices, dtype=np.float32)
    tile = tuple(int(t) for t in tile)
    padding = centre_padding(slices.shape[1:], tile)
    padded = np.pad(slices, [(0, 0)] + padding, constant_values=pad_value)
    starts = [(y, x) for y in tile_starts(padded.shape[1], tile[0], overlap)
              for x in tile_starts(padded.shape[2], tile[1], overlap)]
    jobs = [(s, y, x) for s in range(len(padded)) for y, x in starts]
    weights = gaussian_weights(tile) if gaussian else np.ones(tile, np.float32)
    per_call = max(1, max_tile_bytes // (4 * tile[0] * tile[1]))
    total = weight_sum = None
    for first in range(0, len(jobs), per_call):
        chunk = jobs[first:first + per_call]
        tiles = np.stack([padded[s, y:y + tile[0], x:x + tile[1]] for s, y, x in chunk])
        probs = np.asarray(predict(tiles[..., None]), dtype=np.float32)
        if probs.shape[:3] != (len(chunk),) + tile:
            raise ValueError(f"the network returned {probs.shape} for tiles {tiles.shape}")
        if total is None:
            total = np.zeros(padded.shape + probs.shape[3:], np.float32)
            weight_sum = np.zeros(padded.shape[1:], np.float32)
        for (s, y, x), p in zip(chunk, probs):
            total[s, y:y + tile[0], x:x + tile[1]] += p * weights[..., None]
    for y, x in starts:
        weight_sum[y:y + tile[0], x:x + tile[1]] += weights
    total /= weight_sum[None, ..., None]
    (top, _), (left, _) = padding
    return total[:, top:top + slices.shape[1], left:left + slices.shape[2]]
