"""Train / validation / test splits over subjects, never over slices.

Splits are seeded and deterministic: the same subjects (in any order) and the same seed
give the same split. The parts are disjoint and together cover every subject. Each part
is returned sorted.
"""

import numpy as np

from nengoseg.errors import ConfigError


def split_subjects(subjects, test_fraction=0.2, val_fraction=0.1, seed=0):
    """Split subjects at random into ``{"train": [...], "val": [...], "test": [...]}``.

    The test and validation parts hold ``test_fraction`` and ``val_fraction`` of all
    subjects (rounded half up; at least one subject when the fraction is above 0).
    """
    subjects = _unique(subjects)
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("val_fraction", val_fraction)
    order = _shuffled(subjects, seed)
    n_test = _count(test_fraction, len(order))
    n_val = _count(val_fraction, len(order))
    return _parts(order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test])


def kfold_subjects(subjects, n_folds=5, fold=0, val_fraction=0.1, seed=0):
    """Fold ``fold`` of a seeded k-fold split over subjects, as ``{"train", "val", "test"}``.

    The shuffled subjects are cut into ``n_folds`` folds whose sizes differ by at most
    one; across ``fold = 0 .. n_folds - 1`` every subject is tested exactly once. The
    validation part, ``val_fraction`` of all subjects, is taken from the other folds.
    """
    subjects = _unique(subjects)
    _check_folds(n_folds, fold, len(subjects))
    _check_fraction("val_fraction", val_fraction)
    folds = np.array_split(np.array(_shuffled(subjects, seed), dtype=object), n_folds)
    rest = [s for i, part in enumerate(folds) if i != fold for s in part]
    n_val = _count(val_fraction, len(subjects))
    return _parts(rest[n_val:], rest[:n_val], list(folds[fold]))


def _unique(subjects):
    """Sorted distinct subjects, so that the input order does not change a split."""
    unique = sorted(set(subjects))
    if not unique:
        raise ConfigError("no subjects to split; expected at least one")
    return unique


def _shuffled(subjects, seed):
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [subjects[i] for i in order]


def _count(fraction, n):
    """``fraction * n`` rounded half up, and at least 1 when ``fraction > 0``."""
    count = int(np.floor(fraction * n + 0.5))
    return max(count, 1) if fraction > 0 else 0


def _parts(train, val, test):
    if not train:
        n = len(train) + len(val) + len(test)
        raise ConfigError(
            f"{n} subjects leave none for training ({len(val)} validation, {len(test)} test); "
            "use more subjects or smaller fractions / more folds"
        )
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def _check_fraction(name, value):
    if not 0 <= value < 1:
        raise ConfigError(f"bad {name} {value!r}; allowed: 0 <= {name} < 1")


def _check_folds(n_folds, fold, n_subjects):
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)):
        raise ConfigError(f"bad n_folds {n_folds!r}; allowed: an integer from 2 to {n_subjects}")
    if not 2 <= n_folds <= n_subjects:
        raise ConfigError(
            f"bad n_folds {n_folds}; allowed: 2 .. {n_subjects} (the number of subjects)"
        )
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < n_folds:
        raise ConfigError(f"bad fold {fold!r}; allowed: 0 .. {n_folds - 1}")
