"""The hippocampus MRI task: load subjects and cut them into normalised 2D slices.

The data is the Medical Segmentation Decathlon Task04_Hippocampus (labels 0 = background,
1 = anterior, 2 = posterior hippocampus). Intensity scales differ wildly between volumes
(0-255 in some, up to ~1.7e6 in others), so every volume is normalised on its own.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nengoseg.data.volumes import (
    check_normalise_mode,
    find_pairs,
    load_volume,
    normalise_volume,
    pad_or_crop,
)
from nengoseg.errors import ConfigError, DataError

TASKS = ("binary", "multiclass")
SAMPLES_DIR = Path(__file__).resolve().parent / "sample"


def sample_path(name="hippocampus"):
    """Folder of a data sample shipped inside the package (``load_hippocampus(sample_path())``)."""
    path = SAMPLES_DIR / name
    if not path.is_dir():
        shipped = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_dir())
        raise ConfigError(f"no shipped sample {name!r}; allowed: {', '.join(shipped)}")
    return path


def load_hippocampus(
    root=None, images_dir=None, labels_dir=None, subjects=None, label_values=(0, 1, 2)
):
    """Load image/label volumes, sorted by subject.

    ``root`` holds ``imagesTr/`` and ``labelsTr/``; or give ``images_dir`` and
    ``labels_dir``. ``subjects`` (names such as ``"hippocampus_001"``) keeps only those.
    Raises DataError naming the file for anything unreadable or inconsistent.
    """
    pairs = find_pairs(root, images_dir, labels_dir)
    if subjects is not None:
        pairs = _keep_subjects(pairs, subjects)
    return [load_volume(image, label, label_values) for _, image, label in pairs]


def _keep_subjects(pairs, subjects):
    wanted = set(subjects)
    missing = sorted(wanted - {subject for subject, _, _ in pairs})
    if missing:
        folder = pairs[0][1].parent
        raise DataError(
            f"{folder}: no image for subjects {missing}; expected names like {pairs[0][0]!r}"
        )
    return [pair for pair in pairs if pair[0] in wanted]


@dataclass
class SliceSet:
    """2D slices of several volumes, with the subject and position of each slice."""

    x: np.ndarray  # (N, H, W, 1) float32 normalised images
    y: np.ndarray  # (N, H, W, 1) uint8: 0/1 (binary task) or 0/1/2 (multiclass)
    subjects: np.ndarray  # (N,) str: the subject of each slice
    slice_index: np.ndarray  # (N,) int: index along the slicing axis in the original volume

    def __len__(self):
        return len(self.x)

    def select(self, subjects):
        """The slices of ``subjects``, in their current order."""
        keep = np.isin(self.subjects, list(subjects))
        return SliceSet(self.x[keep], self.y[keep], self.subjects[keep], self.slice_index[keep])


def volumes_to_slices(volumes, axis=0, size=(56, 48), normalise="unit", task="binary"):
    """Cut volumes into 2D slices along ``axis`` for a 2D network.

    Each volume is normalised on its own (:func:`normalise_volume` mode ``normalise``),
    its two in-plane axes are centre-padded or cropped to ``size``, and every slice is
    kept. Padding uses the volume's lowest normalised value (its background).
    ``task="binary"`` gives ``y = label > 0``; ``"multiclass"`` keeps 0/1/2.
    """
    _check_slicing(axis, task)
    check_normalise_mode(normalise)
    if not volumes:
        raise DataError("volumes_to_slices got no volumes; expected at least one")
    in_plane = tuple(a for a in range(3) if a != axis)
    parts = [_slice_volume(v, axis, in_plane, size, normalise, task) for v in volumes]
    return SliceSet(*(np.concatenate(arrays) for arrays in zip(*parts)))


def _check_slicing(axis, task):
    if task not in TASKS:
        raise ConfigError(f"bad task {task!r}; allowed: {', '.join(TASKS)}")
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ConfigError(f"bad slicing axis {axis!r}; allowed: 0, 1, 2")


def _slice_volume(volume, axis, in_plane, size, normalise, task):
    image = normalise_volume(volume.image, normalise)
    image, _ = pad_or_crop(image, size, in_plane, value=image.min())
    label, _ = pad_or_crop(volume.label, size, in_plane)
    if task == "binary":
        label = (label > 0).astype(np.uint8)
    n = image.shape[axis]
    return (
        np.moveaxis(image, axis, 0)[..., None],
        np.moveaxis(label, axis, 0)[..., None],
        np.full(n, volume.subject),
        np.arange(n),
    )
