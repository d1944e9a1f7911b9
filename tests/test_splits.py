"""Subject-wise splits: disjoint, complete, seeded, and k-fold tests each subject once."""

import pytest

from nengoseg.data import kfold_subjects, load_hippocampus, split_subjects, volumes_to_slices
from nengoseg.errors import ConfigError

SUBJECTS_200 = [f"hippocampus_{i:03d}" for i in range(200)]
PARTS = ("train", "val", "test")


def _check_partition(split, subjects):
    assert set(split) == set(PARTS)
    assert sum(len(split[p]) for p in PARTS) == len(set(subjects))
    assert set().union(*(split[p] for p in PARTS)) == set(subjects)


def test_split_sizes_and_partition():
    split = split_subjects(SUBJECTS_200, test_fraction=0.2, val_fraction=0.1, seed=0)
    _check_partition(split, SUBJECTS_200)
    assert [len(split[p]) for p in PARTS] == [140, 20, 40]


def test_split_is_seeded_and_ignores_input_order():
    a = split_subjects(SUBJECTS_200, seed=3)
    assert split_subjects(list(reversed(SUBJECTS_200)), seed=3) == a
    assert split_subjects(SUBJECTS_200, seed=4)["test"] != a["test"]


def test_small_fractions_still_give_one_subject():
    split = split_subjects(SUBJECTS_200[:6], test_fraction=0.1, val_fraction=0.05)
    assert [len(split[p]) for p in PARTS] == [4, 1, 1]
    assert split_subjects(SUBJECTS_200[:6], val_fraction=0)["val"] == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"test_fraction": 0.6, "val_fraction": 0.4}, "none for training"),
    ],
)
def test_bad_fractions_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        split_subjects(SUBJECTS_200, **kwargs)


@pytest.mark.parametrize("n_subjects, test_size", [(200, 40), (110, 22)])
def test_kfold_tests_every_subject_exactly_once(n_subjects, test_size):
    subjects = SUBJECTS_200[:n_subjects]
    tested = []
    for fold in range(5):
        split = kfold_subjects(subjects, n_folds=5, fold=fold, val_fraction=0.1, seed=1)
        _check_partition(split, subjects)
        assert len(split["test"]) == test_size
        assert len(split["val"]) == round(0.1 * n_subjects)
        tested += split["test"]
    assert sorted(tested) == sorted(subjects)


def test_kfold_without_validation_matches_the_papers_88_22():
    split = kfold_subjects(SUBJECTS_200[:110], n_folds=5, fold=4, val_fraction=0)
    assert [len(split[p]) for p in PARTS] == [88, 0, 22]


def test_kfold_is_seeded():
    a = kfold_subjects(SUBJECTS_200, fold=2, seed=7)
    assert kfold_subjects(SUBJECTS_200[::-1], fold=2, seed=7) == a
    assert kfold_subjects(SUBJECTS_200, fold=2, seed=8)["test"] != a["test"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_folds": 1}, "n_folds"),
        ({"n_folds": 300}, "n_folds"),
        ({"fold": 5}, r"0 \.\. 4"),
        ({"fold": -1}, r"0 \.\. 4"),
        ({"val_fraction": 1.5}, "val_fraction"),
    ],
)
def test_bad_folds_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        kfold_subjects(SUBJECTS_200, **kwargs)


def test_split_of_real_slices_keeps_subjects_apart(hippocampus_sample):
    slices = volumes_to_slices(load_hippocampus(hippocampus_sample))
    split = split_subjects(sorted(set(slices.subjects)), seed=0)
    parts = {p: slices.select(split[p]) for p in PARTS}
    assert sum(len(parts[p]) for p in PARTS) == len(slices)
    seen = [set(parts[p].subjects) for p in PARTS]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert [len(split[p]) for p in PARTS] == [17, 2, 5]
