import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from keras_tricks.data import SplitReport, describe_split, train_dev_test_split


def _ks(a, b):
    """Two-sample KS statistic from the empirical CDFs, in plain NumPy."""
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return np.abs(cdf_a - cdf_b).max()


@pytest.fixture
def split(rng):
    x = rng.normal(size=(3000, 4))
    y = rng.integers(0, 3, 3000)
    return train_dev_test_split(x, y, stratify=y, random_state=0)


@pytest.mark.jax
def test_matching_split_has_no_warnings(split):
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    report = describe_split(x_tr, x_dev, x_te, labels=(y_tr, y_dev, y_te))
    assert isinstance(report, SplitReport)
    assert report.warnings == []
    assert [r["count"] for r in report.sizes] == [1800, 600, 600]
    assert report.sizes.to_dict()["dev"]["fraction"] == pytest.approx(0.2)
    assert all(r["shared_rows"] == 0 for r in report.leakage)
    assert "no warnings" in str(report)


@pytest.mark.jax
def test_smd_and_ks_match_formulas(split):
    x_tr, x_dev, x_te, *_ = split
    report = describe_split(x_tr, x_dev, x_te, features=[0, 2])
    rows = report.features.to_dict()
    assert list(rows) == ["0", "2"]
    for name, other in (("dev", x_dev), ("test", x_te)):
        for j in (0, 2):
            a, b = x_tr[:, j], other[:, j]
            smd = (b.mean() - a.mean()) / np.sqrt((a.var() + b.var()) / 2)
            assert rows[str(j)][f"smd_{name}"] == pytest.approx(smd, rel=1e-9)
            d = _ks(a, b)
            assert rows[str(j)][f"ks_{name}"] == pytest.approx(d, rel=1e-9)
            # Smirnov's asymptotic p-value: the KS distribution at the
            # effective sample size m n / (m + n).
            p = scipy.stats.kstwo.sf(d, round(a.size * b.size / (a.size + b.size)))
            assert rows[str(j)][f"ks_p_{name}"] == pytest.approx(p, rel=1e-6)


def test_shifted_feature_and_class_are_flagged(split):
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    x_te = x_te.copy()
    x_te[:, 1] += 0.5  # SMD ~ 0.5
    y_dev = np.where(np.arange(len(y_dev)) < 100, 0, y_dev)  # more class 0
    report = describe_split(x_tr, x_dev, x_te, labels=(y_tr, y_dev, y_te))
    text = " | ".join(report.warnings)
    assert "feature 1: |SMD| train vs test" in text
    assert "feature 1: KS train vs test" in text
    assert "class 0:" in text
    assert "vs dev" not in text
    classes = report.classes.to_dict()
    assert classes[0]["dev"] == pytest.approx(np.mean(y_dev == 0))
    assert classes[0]["max_difference"] == pytest.approx(
        abs(np.mean(y_dev == 0) - np.mean(y_tr == 0))
    )


def test_leakage_finds_planted_duplicates(split):
    x_tr, x_dev, x_te, *_ = split
    x_dev, x_te = x_dev.copy(), x_te.copy()
    x_dev[[3, 10]] = x_tr[[0, 1]]
    x_te[7] = x_dev[5]
    report = describe_split(x_tr, x_dev, x_te)
    leaks = report.leakage.to_dict()
    assert leaks["train-dev"]["shared_rows"] == 2
    assert leaks["train-dev"]["examples"] == [3, 10]
    assert leaks["train-test"]["shared_rows"] == 0
    assert leaks["dev-test"]["examples"] == [7]
    assert any(w.startswith("leakage: 2 dev rows") for w in report.warnings)


def test_dataframes_label_column_and_dict(split):
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    frames = [
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y, "name": "row"})
        for x, y in ((x_tr, y_tr), (x_dev, y_dev), (x_te, y_te))
    ]
    frames[2].iloc[4] = frames[0].iloc[9]
    report = describe_split(*frames, labels="y")
    assert [r["feature"] for r in report.features] == ["a", "b"]
    assert report.leakage.to_dict()["train-test"]["examples"] == [4]
    assert set(report.to_dict()) == {
        "sizes",
        "classes",
        "features",
        "leakage",
        "warnings",
    }
    dicts = [{"image": x[:, :2], "meta": x[:, 3]} for x in (x_tr, x_dev, x_te)]
    names = [r["feature"] for r in describe_split(*dicts).features]
    assert names == ["image[0]", "image[1]", "meta"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"labels": (np.zeros(3),) * 3},
            ValueError,
            r"`labels`.*one label per train row \(\d+ train rows, 3 labels\)",
        ),
        ({"labels": "y"}, ValueError, r"labels='y'"),
        ({"labels": np.zeros(5)}, TypeError, r"`labels`"),
        ({"features": ["zz"]}, ValueError, r"features='zz'"),
        ({"features": [7]}, ValueError, r"features=7"),
        ({"smd_threshold": -1}, ValueError, r"smd_threshold=-1"),
        ({"ks_alpha": 2}, ValueError, r"`ks_alpha`.*ks_alpha=2"),
        ({"class_threshold": -0.1}, ValueError, r"class_threshold=-0.1"),
    ],
)
def test_bad_arguments(split, kwargs, error, match):
    x_tr, x_dev, x_te, *_ = split
    with pytest.raises(error, match=match):
        describe_split(x_tr, x_dev, x_te, **kwargs)


def test_mismatched_splits(split):
    x_tr, x_dev, x_te, *_ = split
    with pytest.raises(ValueError, match=r"`dev`.*train columns"):
        describe_split(x_tr, x_dev[:, :2], x_te)
    with pytest.raises(
        ValueError,
        match=r"`test`.*at least one row.*Received: test=array\(\[\], shape=\(0, ",
    ):
        describe_split(x_tr, x_dev, x_te[:0])
    with pytest.raises(TypeError, match=r"`train`"):
        describe_split(np.array(["a", "b"]), x_dev, x_te)


def test_one_hot_labels_equal_class_ids(split):
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    ids = describe_split(x_tr, x_dev, x_te, labels=(y_tr, y_dev, y_te))
    one_hot = describe_split(
        x_tr, x_dev, x_te, labels=tuple(np.eye(3)[y] for y in (y_tr, y_dev, y_te))
    )
    assert one_hot.classes.to_records() == ids.classes.to_records()
    for c, row in ids.classes.to_dict().items():
        assert row["test"] == pytest.approx(np.mean(y_te == c))


def test_non_numeric_dict_value_is_refused(split):
    x_tr, x_dev, x_te, *_ = split
    dicts = [{"x": x, "tag": np.array(["a"] * len(x))} for x in (x_tr, x_dev, x_te)]
    with pytest.raises(TypeError, match=r"`train\['tag'\]`.*dtype='<U1'"):
        describe_split(*dicts)


@pytest.mark.jax
def test_x_y_pairs_give_the_labels(split):
    """(x, y) tuples, the form of Keras's `validation_data`, carry the labels."""
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    expected = describe_split(x_tr, x_dev, x_te, labels=(y_tr, y_dev, y_te))
    pairs = describe_split((x_tr, y_tr), (x_dev, y_dev), (x_te, y_te))
    assert pairs.to_dict() == expected.to_dict()
    weights = [np.ones(len(y)) for y in (y_tr, y_dev, y_te)]
    one_hot = describe_split(
        *(
            (x, np.eye(3)[y], w)
            for x, y, w in zip(split[:3], split[3:], weights, strict=True)
        )
    )
    assert one_hot.classes.to_records() == expected.classes.to_records()


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        # A list is not a pair: NumPy used to fail on its "inhomogeneous shape".
        (lambda s: ([s[0], s[3]], s[1], s[2]), TypeError, r"(?s)`train`.*as tuples"),
        (lambda s: ((s[0], s[3]), s[1], s[2]), TypeError, r"`dev`.*\(x, y\) tuple"),
        (
            lambda s: ((s[0], s[3][:5]), (s[1], s[4]), (s[2], s[5])),
            ValueError,
            r"`train`.*one label per row \(1800 rows, 5 labels\)",
        ),
    ],
)
def test_bad_pairs_name_the_argument(split, arguments, error, match):
    with pytest.raises(error, match=match):
        describe_split(*arguments(split))


def test_pairs_and_labels_together_are_refused(split):
    x_tr, x_dev, x_te, y_tr, y_dev, y_te = split
    with pytest.raises(ValueError, match=r"`train`, `labels`.*not both"):
        describe_split(
            (x_tr, y_tr), (x_dev, y_dev), (x_te, y_te), labels=(y_tr, y_dev, y_te)
        )


@pytest.mark.jax
def test_non_finite_values_are_left_out_with_a_warning(split):
    x_tr, x_dev, x_te, *_ = (a.copy() for a in split)
    x_tr[[3, 8], 1] = np.nan
    x_dev[5, 1] = np.inf
    x_te[:, 3] = np.nan
    with pytest.warns(UserWarning, match=r"2 features hold NaN or Inf") as caught:
        report = describe_split(x_tr, x_dev, x_te)
    assert len(caught) == 1
    rows = report.features.to_dict()
    a, b = x_tr[:, 1], x_dev[:, 1]
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    smd = (b.mean() - a.mean()) / np.sqrt((a.var() + b.var()) / 2)
    assert rows["1"]["smd_dev"] == pytest.approx(smd, rel=1e-9)
    assert rows["1"]["ks_dev"] == pytest.approx(_ks(a, b), rel=1e-9)
    assert np.isnan(rows["3"]["smd_test"]) and np.isnan(rows["3"]["ks_p_test"])
    assert np.isfinite(rows["3"]["smd_dev"])
    assert (
        "feature 1: 3 NaN/Inf values left out of its SMD and KS "
        "(train 2, dev 1, test 0)" in report.warnings
    )
    assert any(
        w.startswith("feature 3: 600 NaN/Inf") and "no finite value in test" in w
        for w in report.warnings
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        describe_split(x_tr, x_dev, x_te, features=[0, 2])  # finite: no warning
