import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from keras_tricks.data import (
    TrainDevTestSplit,
    auto_fraction,
    quantile_bins,
    resolve_sizes,
    train_dev_test_split,
)


def _partition(n, indices):
    joined = np.concatenate(indices)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


@pytest.mark.parametrize(
    ("n", "train", "dev", "test", "expected"),
    [
        (1000, None, None, None, (600, 200, 200)),  # small data: 60/20/20
        (100_000, None, None, None, (80_000, 10_000, 10_000)),  # 10k each
        (2_000_000, None, None, None, (1_960_000, 20_000, 20_000)),  # 98/1/1
        (7, None, None, None, (4, 2, 1)),  # 4.2/1.4/1.4: tie to the earlier
        (1000, None, 0.1, 0.1, (800, 100, 100)),
        (1000, None, 0.15, None, (700, 150, 150)),  # test mirrors dev
        (1000, None, None, 0.05, (900, 50, 50)),  # dev mirrors test
        (1000, None, 50, 25, (925, 50, 25)),
        (1001, 0.5, None, None, (501, 250, 250)),  # dev and test share the rest
        (1000, 0.7, 0.2, None, (700, 200, 100)),
        (1000, 0.7, None, 0.1, (700, 200, 100)),
        (1000, 600, 0.2, None, (600, 200, 200)),
        (1000, 0.6, 0.2, 0.2, (600, 200, 200)),
        (1000, 0.5, 0.1, 0.1, (500, 100, 100)),  # 300 left out
        (10, 5, 2, 3, (5, 2, 3)),
        (999, None, 1 / 3, 1 / 3, (333, 333, 333)),
    ],
)
def test_exact_sizes(n, train, dev, test, expected):
    sizes = resolve_sizes(n, train, dev, test)
    assert sizes == expected
    if n > 100_000:
        return  # resolve_sizes is the whole story; spare the shuffle
    splitter = TrainDevTestSplit(train_size=train, dev_size=dev, test_size=test)
    indices = splitter.split(n)
    assert tuple(len(i) for i in indices) == expected
    joined = np.concatenate(indices)
    assert np.unique(joined).size == joined.size


@pytest.mark.parametrize("n", [3, 11, 97, 1234, 49_999, 50_001, 999_999])
def test_auto_rule_counts_add_up_and_round_to_nearest(n):
    counts = resolve_sizes(n)
    assert sum(counts) == n
    f = min(0.2, max(0.01, 10_000 / n))
    assert auto_fraction(n) == f
    targets = (n * (1 - 2 * f), n * f, n * f)
    assert all(abs(c - t) < 1 for c, t in zip(counts, targets, strict=True))


def test_split_is_a_partition_and_shuffled():
    indices = TrainDevTestSplit(random_state=0).split(1000)
    _partition(1000, indices)
    assert not np.all(np.diff(indices[0]) > 0)


def test_shuffle_false_keeps_order():
    train, dev, test = TrainDevTestSplit(shuffle=False).split(10)
    assert [train.tolist(), dev.tolist(), test.tolist()] == [
        list(range(6)),
        [6, 7],
        [8, 9],
    ]


def test_deterministic_golden_values():
    # PCG64 with a fixed seed gives these on every machine.
    train, dev, test = TrainDevTestSplit(random_state=0).split(10)
    assert train.tolist() == [4, 6, 2, 7, 3, 5]
    assert dev.tolist() == [9, 0]
    assert test.tolist() == [8, 1]


@pytest.mark.compat
@pytest.mark.jax
def test_deterministic_golden_values_stratified_and_grouped():
    y = np.array([0] * 4 + [1] * 5 + [2] * 3)
    # Dev and test of 3: one example of each of the 3 classes fits in each.
    splitter = TrainDevTestSplit(dev_size=3, test_size=3, random_state=0)
    indices = splitter.split(12, stratify=y)
    assert [i.tolist() for i in indices] == [
        [9, 2, 7, 4, 5, 0],
        [11, 3, 6],
        [10, 8, 1],
    ]
    groups = np.repeat(np.arange(6), 2)
    indices = TrainDevTestSplit(random_state=0).split(12, groups=groups)
    assert [i.tolist() for i in indices] == [[6, 4, 5, 7, 10, 11], [8, 1, 0, 9], [2, 3]]


@pytest.mark.parametrize("stratified", [False, True])
def test_same_seed_same_split_other_seed_differs(stratified, rng):
    y = rng.integers(0, 5, 500) if stratified else None
    first = TrainDevTestSplit(random_state=3).split(500, stratify=y)
    again = TrainDevTestSplit(random_state=3).split(500, stratify=y)
    other = TrainDevTestSplit(random_state=4).split(500, stratify=y)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    ("sizes", "n_classes"),
    [((None, 0.2, 0.1), 3), ((0.5, 0.25, None), 7), ((None, 0.01, 0.01), 100)],
)
@pytest.mark.jax
def test_stratified_within_one_example(sizes, n_classes, rng):
    n = 20_011
    y = rng.choice(n_classes, n, p=rng.dirichlet(np.ones(n_classes) * 5))
    train_size, dev_size, test_size = sizes
    splitter = TrainDevTestSplit(
        train_size=train_size, dev_size=dev_size, test_size=test_size, random_state=0
    )
    indices = splitter.split(n, stratify=y)
    _partition(n, indices)
    counts = resolve_sizes(n, train_size, dev_size, test_size)
    assert tuple(len(i) for i in indices) == counts
    class_counts = np.bincount(y, minlength=n_classes)
    for idx, size in zip(indices, counts, strict=True):
        exact = class_counts * size / n
        got = np.bincount(y[idx], minlength=n_classes)
        assert np.all(np.abs(got - exact) < 1)


def test_stratified_with_examples_left_out(rng):
    n = 10_007
    y = rng.integers(0, 6, n)
    train, dev, test = TrainDevTestSplit(
        train_size=0.5, dev_size=0.1, test_size=0.1, random_state=0
    ).split(n, stratify=y)
    joined = np.concatenate([train, dev, test])
    assert np.unique(joined).size == joined.size
    class_counts = np.bincount(y)
    for idx, size in zip((train, dev, test), (5003, 1001, 1001), strict=True):
        assert len(idx) == size
        exact = class_counts * size / n
        assert np.all(np.abs(np.bincount(y[idx], minlength=6) - exact) < 1)


def test_stratified_string_and_one_hot_labels(rng):
    codes = rng.integers(0, 4, 400)
    names = np.array(["cat", "dog", "emu", "fox"])[codes]
    by_name = TrainDevTestSplit(random_state=1).split(400, stratify=names)
    by_code = TrainDevTestSplit(random_state=1).split(400, stratify=codes)
    by_row = TrainDevTestSplit(random_state=1).split(400, stratify=np.eye(4)[codes])
    for a, b in zip(by_name, by_code, strict=True):
        np.testing.assert_array_equal(a, b)
    for idx, size in zip(by_row, (240, 80, 80), strict=True):
        exact = np.bincount(codes) * size / 400
        assert np.all(np.abs(np.bincount(codes[idx], minlength=4) - exact) < 1)


def test_stratify_quantiles_balances_a_continuous_target(rng):
    x = rng.normal(size=(3000, 2))
    y = np.exp(rng.normal(size=3000))  # skewed regression target
    out = train_dev_test_split(x, y, stratify="quantiles", random_state=0)
    bins = quantile_bins(y, 10)
    assert np.bincount(bins).tolist() == [300] * 10
    for y_split, size in zip(out[3:], (1800, 600, 600), strict=True):
        in_split = np.isin(y, y_split)  # continuous y: values are unique
        assert in_split.sum() == size
        # Every decile holds a tenth of the split, within one example.
        got = np.bincount(bins[in_split], minlength=10)
        assert np.all(np.abs(got - size / 10) < 1)


def test_quantile_bins_are_deciles(rng):
    y = rng.permutation(1000).astype("float64")
    np.testing.assert_array_equal(quantile_bins(y, 10), (y // 100).astype(int))
    assert np.unique(quantile_bins(np.repeat([1.0, 2.0], 50), 10)).size == 2


@pytest.mark.jax
def test_groups_never_share_a_split(rng):
    groups = rng.integers(0, 300, 5000)
    splitter = TrainDevTestSplit(dev_size=0.2, test_size=0.2, random_state=0)
    indices = splitter.split(5000, groups=groups)
    _partition(5000, indices)
    sets = [set(groups[i].tolist()) for i in indices]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    biggest = np.bincount(groups).max()
    for row in splitter.report_:
        assert abs(row["count"] - row["requested"]) <= biggest
    assert [row["split"] for row in splitter.report_] == ["train", "dev", "test"]


def test_groups_without_shuffle_cut_in_order():
    groups = np.repeat(["a", "b", "c", "d", "e"], [4, 2, 2, 1, 1])
    train, dev, test = TrainDevTestSplit(shuffle=False).split(10, groups=groups)
    assert groups[train].tolist() == ["a"] * 4 + ["b"] * 2
    assert groups[dev].tolist() == ["c", "c"]
    assert groups[test].tolist() == ["d", "e"]


def test_coarse_groups_warn_with_achieved_fractions():
    groups = np.repeat([0, 1, 2, 3], [70, 10, 10, 10])
    with pytest.warns(UserWarning, match="groups allow only") as caught:
        out = train_dev_test_split(np.arange(100), groups=groups, random_state=0)
    sizes = [len(part) for part in out]
    assert sorted(sizes) == [10, 20, 70] or sorted(sizes) == [10, 10, 80]
    message = str(caught[0].message)
    for split, size in zip(("train", "dev", "test"), sizes, strict=True):
        assert re.search(rf"{split}\s+\d+\s+{size}\s+{size / 100:g}", message)


@pytest.mark.jax
def test_containers_keep_their_type(rng):
    n = 50
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"], index=np.arange(100, 150))
    series = pd.Series(np.arange(n), index=frame.index, name="y")
    sparse = scipy.sparse.csr_matrix(x)
    inputs = {"image": x, "meta": np.arange(n)}
    out = train_dev_test_split(
        x,
        list(range(n)),
        tuple(range(n)),
        frame,
        series,
        sparse,
        inputs,
        random_state=0,
    )
    (
        x_tr,
        _,
        _,
        l_tr,
        _,
        _,
        t_tr,
        _,
        _,
        f_tr,
        f_dev,
        f_te,
        s_tr,
        _,
        _,
        sp_tr,
        _,
        _,
        d_tr,
        _,
        _,
    ) = out
    assert isinstance(l_tr, list) and isinstance(t_tr, tuple)
    assert isinstance(f_tr, pd.DataFrame) and isinstance(s_tr, pd.Series)
    assert list(f_tr.columns) == ["a", "b", "c"] and s_tr.name == "y"
    assert scipy.sparse.issparse(sp_tr)
    assert len(f_tr) + len(f_dev) + len(f_te) == n
    # Every container is indexed the same way.
    rows = f_tr.index.to_numpy() - 100
    np.testing.assert_array_equal(x_tr, x[rows])
    np.testing.assert_array_equal(l_tr, rows)
    np.testing.assert_array_equal(s_tr.to_numpy(), rows)
    np.testing.assert_array_equal(sp_tr.toarray(), x[rows])
    np.testing.assert_array_equal(d_tr["meta"], rows)
    np.testing.assert_array_equal(d_tr["image"], x[rows])


def test_split_smaller_than_the_classes_names_split_size_and_classes():
    # Issue 25, defect 4: a test split of 2 held 2 of the 3 classes.
    with pytest.raises(
        ValueError,
        match=r"`test_size`.*test split of at least 3 examples, one per class of "
        r"`stratify` \(3 classes\); it has 2\. Received: test_size=2",
    ):
        train_dev_test_split(
            np.arange(9),
            stratify=[0, 0, 0, 1, 1, 1, 2, 2, 2],
            dev_size=3,
            test_size=2,
            random_state=0,
        )


def test_too_small_class_names_class_and_count():
    y = np.array([0] * 10 + [1] * 10 + [7, 7])
    with pytest.raises(ValueError, match=r"class 7 has 2"):
        train_dev_test_split(np.arange(22), stratify=y)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"test_size": -0.1}, ValueError, r"`test_size`.*\(0, 1\).*test_size=-0.1"),
        ({"dev_size": -5}, ValueError, r"`dev_size`.*positive count.*dev_size=-5"),
        ({"dev_size": "10%"}, TypeError, r"`dev_size`.*dev_size='10%'"),
        (
            {"dev_size": 0.6, "test_size": 0.5},
            ValueError,
            r"at most 1.*dev_size=0.6, test_size=0.5",
        ),
        (
            {"train_size": 15, "test_size": 10},
            ValueError,
            r"n_samples=20.*train_size=15, test_size=10",
        ),
        ({"test_size": 30}, ValueError, r"count in \[1, 20\].*test_size=30"),
        (
            {"dev_size": 0.01, "test_size": 0.01},
            ValueError,
            r"test split would be empty.*Received: train_size=None, "
            r"dev_size=0.01, test_size=0.01\. Give the test split a larger size",
        ),
        ({"dev_size": 10, "test_size": 10}, ValueError, r"train split would be empty"),
        (
            {"train_size": 0.9, "dev_size": 0.1},
            ValueError,
            r"test split would be empty",
        ),
        (
            {"stratify": [0, 1] * 9 + [np.nan, 1]},
            ValueError,
            r"`stratify`.*NaN at rows \[18\]",
        ),
        (
            {"stratify": [0, 1] * 10, "shuffle": False},
            ValueError,
            r"`stratify`.*None when shuffle=False",
        ),
        (
            {"stratify": [0, 1] * 10, "groups": [0, 1] * 10},
            ValueError,
            r"`groups`.*at least 3 distinct groups",
        ),
        (
            {"stratify": [0, 1] * 10, "groups": list(range(19))},
            ValueError,
            r"`groups`.*one group id per example \(20\)",
        ),
        (
            {"stratify": [0] * 19},
            ValueError,
            r"`stratify`.*one label per example \(20\)",
        ),
        ({"stratify": "bins"}, ValueError, r"stratify='bins'"),
        ({"groups": [0, 1] * 10}, ValueError, r"at least 3 distinct groups"),
        (
            {"groups": list(range(19))},
            ValueError,
            r"`groups`.*one group id per example \(20\)",
        ),
        (
            {"stratify": np.array(["a", "b", np.nan, "a"] * 5, dtype=object)},
            ValueError,
            r"`stratify`.*NaN at rows \[2, 6, 10, 14, 18\]",
        ),
        ({"stratify": "quantiles", "n_bins": 1}, ValueError, r"n_bins=1"),
        ({"random_state": -1}, ValueError, r"random_state=-1"),
        ({"shuffle": "yes"}, TypeError, r"shuffle='yes'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_dev_test_split(np.arange(20), **kwargs)


@pytest.mark.parametrize(
    ("arrays", "error", "match"),
    [
        ((), ValueError, r"at least one array"),
        ((np.zeros(10), np.zeros(9)), ValueError, r"same number of rows \(\[10, 9\]\)"),
        ((np.zeros((0, 3)),), ValueError, r"at least one row each"),
        (([],), ValueError, r"at least one row each"),
        ((np.float64(3.0),), ValueError, r"at least one dimension"),
        ((5,), TypeError, r"`arrays\[0\]`.*Received: arrays\[0\]=5$"),
        (({"a": np.zeros(5), "b": np.zeros(6)},), ValueError, r"same number of rows"),
    ],
)
def test_bad_arrays(arrays, error, match):
    with pytest.raises(error, match=match):
        train_dev_test_split(*arrays)


def test_quantiles_need_a_numeric_target():
    with pytest.raises(
        ValueError, match=r"`y`.*1-D numeric target.*stratify='quantiles'"
    ):
        train_dev_test_split(np.arange(20), np.array(["a"] * 20), stratify="quantiles")


SPARSE_FORMATS = ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")  # all of SciPy's


@pytest.mark.jax
@pytest.mark.parametrize("kind", ["matrix", "array"])
@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_every_sparse_format(fmt, kind, rng):
    x = rng.normal(size=(40, 4)) * (rng.random((40, 4)) < 0.5)
    sparse = getattr(scipy.sparse, f"{fmt}_{kind}")(x)
    out = train_dev_test_split(x, {"x": sparse}, random_state=0)
    indices = TrainDevTestSplit(random_state=0).split(sparse)
    for dense, part, idx in zip(out[:3], out[3:], indices, strict=True):
        part = part["x"]
        assert scipy.sparse.issparse(part)
        # Formats that index rows keep theirs; the others come back as CSR.
        assert part.format == (fmt if fmt in ("csr", "csc", "lil") else "csr")
        assert (kind == "array") == isinstance(part, scipy.sparse.sparray)
        np.testing.assert_array_equal(part.toarray(), dense)
        np.testing.assert_array_equal(dense, x[idx])


@pytest.mark.jax
@pytest.mark.parametrize("n", [30, 1001])
def test_boolean_and_int8_labels_stratify(n, rng):
    y = rng.random(n) < 0.3
    for labels in (y, np.where(y, 127, -128).astype(np.int8)):
        train, dev, test = TrainDevTestSplit(random_state=0).split(n, stratify=labels)
        _partition(n, [train, dev, test])
        for idx, size in zip((train, dev, test), resolve_sizes(n), strict=True):
            assert len(idx) == size
            assert abs(y[idx].sum() - y.sum() * size / n) < 1
    # The same split as the 0/1 integer labels, and as train_dev_test_split.
    as_int = TrainDevTestSplit(random_state=0).split(n, stratify=y.astype(int))
    out = train_dev_test_split(np.arange(n), stratify=y, random_state=0)
    for a, b in zip(as_int, out, strict=True):
        np.testing.assert_array_equal(a, b)


def test_too_small_boolean_class_names_it():
    with pytest.raises(ValueError, match=r"class True has 2"):
        train_dev_test_split(np.arange(22), stratify=np.arange(22) < 2)
