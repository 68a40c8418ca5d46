"""Stratified group splits, compared with a StratifiedGroupKFold-based split."""

import numpy as np
import pytest

from benchmarks.bench_data import clumpy_groups as clumpy_data
from benchmarks.bench_data import proportion_error
from benchmarks.bench_data import sklearn_group_split as sklearn_split
from keras_tricks.data import TrainDevTestSplit, resolve_sizes, train_dev_test_split

# (seed, n_folds): fold sizes 1/5 and 1/10 give dev and test 0.2 and 0.1.
CASES = [(seed, folds) for seed in range(4) for folds in (5, 10)]


def ours(y, groups, n_folds, seed):
    splitter = TrainDevTestSplit(
        dev_size=1 / n_folds, test_size=1 / n_folds, random_state=seed
    )
    return splitter.split(len(y), stratify=y, groups=groups)


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("sklearn")
    rows = []
    for seed, n_folds in CASES:
        y, groups = clumpy_data(seed)
        rows.append(
            (
                y,
                groups,
                n_folds,
                ours(y, groups, n_folds, seed),
                sklearn_split(y, groups, n_folds, seed),
            )
        )
    return rows


def test_groups_never_straddle_splits(results):
    for y, groups, _, indices, _ in results:
        np.testing.assert_array_equal(
            np.sort(np.concatenate(indices)), np.arange(len(y))
        )
        owners = [set(groups[i].tolist()) for i in indices]
        assert not owners[0] & owners[1]
        assert not owners[0] & owners[2]
        assert not owners[1] & owners[2]


def test_sizes_within_the_largest_group(results):
    for y, groups, n_folds, indices, _ in results:
        wanted = resolve_sizes(len(y), None, 1 / n_folds, 1 / n_folds)
        largest = np.bincount(groups).max()
        for idx, size in zip(indices, wanted, strict=True):
            assert abs(len(idx) - size) <= largest


def test_proportions_at_least_as_close_as_stratified_group_kfold(results):
    errors = np.array(
        [
            (proportion_error(y, mine), proportion_error(y, theirs))
            for y, _, _, mine, theirs in results
        ]
    )
    ours_mean, theirs_mean = errors.mean(0)
    assert ours_mean <= theirs_mean
    assert errors[:, 0].max() <= errors[:, 1].max()


def test_balanced_groups_give_near_exact_proportions_and_sizes():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 400, 8000)
    y = rng.integers(0, 5, 8000)
    indices = ours(y, groups, 5, seed=0)
    assert proportion_error(y, indices) < 0.005
    for idx, size in zip(indices, (4800, 1600, 1600), strict=True):
        assert abs(len(idx) - size) <= np.bincount(groups).max()


def test_same_seed_same_split():
    y, groups = clumpy_data(7, n=600, n_groups=40)
    first = ours(y, groups, 5, seed=3)
    again = ours(y, groups, 5, seed=3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:The groups allow only")
def test_function_keeps_rows_together():
    y, groups = clumpy_data(1, n=600, n_groups=30)
    x = np.arange(len(y))
    parts = train_dev_test_split(
        x, y, groups, stratify=y, groups=groups, random_state=0
    )
    for split in range(3):
        x_s, y_s, g_s = parts[split], parts[3 + split], parts[6 + split]
        np.testing.assert_array_equal(y[x_s], y_s)
        np.testing.assert_array_equal(groups[x_s], g_s)


def test_a_split_smaller_than_the_classes_is_refused_with_groups():
    y = np.repeat(np.arange(4), 5)
    with pytest.raises(ValueError, match=r"`test_size`.*at least 4 examples.*it has 2"):
        train_dev_test_split(
            np.arange(20), stratify=y, groups=np.arange(20), dev_size=6, test_size=2
        )
