"""Shared test fixtures.

Data fixtures: the shipped hippocampus sample, the project's shared data sets (tests
that need them skip when ``../shared/data`` is absent), and small writable copies of
real files in ``tmp_path`` for bad-input tests.
"""

import shutil
from pathlib import Path

import pytest

from nengoseg.data import sample_path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE_COPY_SUBJECTS = ("hippocampus_001", "hippocampus_003", "hippocampus_004")


def _shared_dataset(name):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data set {path} is absent")
    return path


@pytest.fixture(scope="session")
def hippocampus_sample():
    """The hippocampus sample shipped in the package (24 subjects, MSD layout)."""
    return sample_path("hippocampus")


@pytest.fixture(scope="session")
def hippocampus_shared():
    """The full shared MSD Task04 copy (200 subjects), read-only."""
    return _shared_dataset("hippocampus_msd_task04")


@pytest.fixture(scope="session")
def isbi_shared():
    return _shared_dataset("isbi2012_membrane")


@pytest.fixture(scope="session")
def airplanes_shared():
    return _shared_dataset("caltech101_airplanes")


@pytest.fixture(scope="session")
def denoising_shared():
    return _shared_dataset("denoising_testsets")


@pytest.fixture
def hippocampus_copy(tmp_path, hippocampus_sample):
    """A writable MSD-layout copy of three sample subjects: ``root/imagesTr``, ``root/labelsTr``."""
    root = tmp_path / "task04"
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
        for subject in SAMPLE_COPY_SUBJECTS:
            name = f"{subject}.nii.gz"
            shutil.copyfile(hippocampus_sample / folder / name, root / folder / name)
    return root


@pytest.fixture
def folder_state():
    """A function: every path under a folder with its size and mtime (to show nothing changed)."""

    def state(folder):
        return {
            str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*"))
        }

    return state
