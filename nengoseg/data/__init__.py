"""Data loading for nengoseg: hippocampus MRI volumes, ISBI 2012 EM, DRIVE retinal vessels,
Caltech airplanes, denoising test sets; normalisation, padding, 2D slices and subject-wise
splits.

Loaders only read (never write into a data folder) and raise
:class:`~nengoseg.errors.DataError` naming the file for bad data.
"""

from nengoseg.data.airplanes import load_airplanes
from nengoseg.data.denoising import load_denoising
from nengoseg.data.drive import DriveSet, load_drive
from nengoseg.data.hippocampus import (
    SliceSet,
    load_hippocampus,
    sample_path,
    volumes_to_slices,
)
from nengoseg.data.isbi import load_isbi2012
from nengoseg.data.splits import kfold_subjects, split_subjects
from nengoseg.data.volumes import (
    Volume,
    find_pairs,
    load_volume,
    normalise_volume,
    pad_or_crop,
    undo_pad_or_crop,
)

__all__ = [
    "DriveSet",
    "SliceSet",
    "Volume",
    "find_pairs",
    "kfold_subjects",
    "load_airplanes",
    "load_denoising",
    "load_drive",
    "load_hippocampus",
    "load_isbi2012",
    "load_volume",
    "normalise_volume",
    "pad_or_crop",
    "sample_path",
    "split_subjects",
    "undo_pad_or_crop",
    "volumes_to_slices",
]
