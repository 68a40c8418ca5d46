"""Stratified group splits, compared with a StratifiedGroupKFold-based split."""

import numpy as np
import pytest

from keras_tricks.data import TrainDevTestSplit, resolve_sizes, train_dev_test_split

# (seed, n_folds): fold sizes 1/5 and 1/10 give dev and test 0.2 and 0.1.
CASES = [(seed, folds) for seed in range(4) for folds in (5, 10)]


def clumpy_data(seed, n=3000, n_groups=150, n_classes=4):
    """Zipf-sized groups, each with its own class mix (the hard case)."""
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(1.6, n_groups).clip(1, n // 10)
    groups = np.repeat(np.arange(n_groups), sizes)
    mix = rng.dirichlet(np.ones(n_classes), n_groups)
    y = np.concatenate(
        [rng.choice(n_classes, s, p=mix[g]) for g, s in enumerate(sizes)]
    )
    return y, groups


def proportion_error(y, indices):
    """Mean over splits of the largest class-proportion gap to the whole data."""
    overall = np.bincount(y) / len(y)
    gaps = [
        np.abs(np.bincount(y[i], minlength=overall.size) / len(i) - overall).max()
        for i in indices
    ]
    return float(np.mean(gaps))


def sklearn_split(y, groups, n_folds, seed):
    """Train/dev/test from StratifiedGroupKFold: fold 0 test, fold 1 dev."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    folds = [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]
    return [np.concatenate(folds[2:]), folds[1], folds[0]]


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
