"""Do train, dev and test come from one distribution? A report that checks.

For each feature, train is compared with dev and with test by

- the standardised mean difference (Austin 2009; |SMD| > 0.1 is the usual
  sign of imbalance):

      SMD = (mean_other - mean_train) / sqrt((var_train + var_other) / 2)

  flagged when it exceeds both `smd_threshold` and three standard errors of
  sampling noise, `3 * sqrt(1 / n_train + 1 / n_other)` (a small dev set
  shows |SMD| > 0.1 by chance alone);

- the two-sample Kolmogorov-Smirnov statistic D = max_x |F_train(x) -
  F_other(x)| (the largest gap between the empirical CDFs) and its asymptotic
  p-value (`scipy.stats.ks_2samp`), flagged below `ks_alpha` divided by the
  number of features (Bonferroni).

Class proportions are compared per split, and rows that occur in more than
one split (leakage: the model is graded on examples it trained on) are found
by a 64-bit hash of each row's bytes (pandas rows by
`pandas.util.hash_pandas_object`), so two different rows are mistaken for
each other with probability about n_rows**2 / 2**64.

NaN and infinite feature values are left out of that feature's statistics
(each split keeps its finite values), with a warning that says how many.

Reference:
    Austin, "Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched
    samples", Statistics in Medicine, 2009.
"""

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_tricks._validation import check_number, invalid, invalid_together
from keras_tricks.data.hashing import GOLDEN, MIX1, MIX2
from keras_tricks.data.indexing import num_rows
from keras_tricks.report import Report

NAMES = ("train", "dev", "test")


class SplitReport:
    """The result of `describe_split`: several `Report` tables and warnings.

    Args:
        sizes: `Report` of split, count, fraction.
        classes: `Report` of class proportions per split, or `None`.
        features: `Report` of the per-feature statistics.
        leakage: `Report` of the rows shared by each pair of splits.
        warnings: one string per problem found.

    Attributes:
        sizes: `Report` of split, count, fraction.
        classes: `Report` of class proportions per split and their largest
            difference (`None` without labels).
        features: `Report` of SMD and KS (statistic, p-value) per feature,
            train vs dev and train vs test.
        leakage: `Report` of rows shared by each pair of splits (count, and
            the first few row positions in the second split).
        warnings: list of strings, one per problem found.

    Example:

    >>> x = np.random.default_rng(0).normal(size=(300, 2))
    >>> report = describe_split(x[:200], x[200:250], np.concatenate([x[250:], x[:1]]))
    >>> report
    SplitReport(warnings=['leakage: 1 test rows also in train (e.g. rows [50])'])
    >>> [row["count"] for row in report.sizes]
    [200, 50, 51]
    """

    def __init__(
        self,
        sizes: Report,
        classes: Report | None,
        features: Report,
        leakage: Report,
        warnings: list[str],
    ) -> None:
        self.sizes = sizes
        self.classes = classes
        self.features = features
        self.leakage = leakage
        self.warnings = warnings

    def tables(self) -> list[Report]:
        """The non-empty tables, in order."""
        tables = (self.sizes, self.classes, self.features, self.leakage)
        return [t for t in tables if t is not None]

    def to_dict(self) -> dict[str, list[Any]]:
        """Returns `{table name: list of row dicts, "warnings": [...]}`."""
        out: dict[str, list[Any]] = {
            name: table.to_records()
            for name, table in (
                ("sizes", self.sizes),
                ("classes", self.classes),
                ("features", self.features),
                ("leakage", self.leakage),
            )
            if table is not None
        }
        out["warnings"] = list(self.warnings)
        return out

    def __str__(self) -> str:
        parts = [str(t) for t in self.tables()]
        lines = [f"WARNING: {w}" for w in self.warnings] or ["no warnings"]
        return "\n\n".join(parts + ["\n".join(lines)])

    def __repr__(self) -> str:
        return f"SplitReport(warnings={self.warnings!r})"


def _is_pair(split: Any) -> bool:
    """Whether `split` is an `(x, y)` or `(x, y, sample_weight)` tuple."""
    return (
        isinstance(split, tuple)
        and len(split) in (2, 3)
        and (hasattr(split[0], "shape") or isinstance(split[0], dict))
        and hasattr(split[1], "__len__")
    )


def _unpack_pairs(splits: tuple[Any, ...], labels: Any) -> tuple[tuple[Any, ...], Any]:
    """Features and labels of `(x, y[, sample_weight])` tuples, as Keras's
    `validation_data`; other splits are returned as they are."""
    pairs = [_is_pair(s) for s in splits]
    if not any(pairs):
        return splits, labels
    for split, name, pair in zip(splits, NAMES, pairs, strict=True):
        if not pair:
            raise invalid(
                name,
                split,
                "an (x, y) tuple, like the other splits",
                TypeError,
                fix="Pass all three splits as (x, y) tuples, or all three as "
                "features with labels=(y_train, y_dev, y_test)",
            )
    if labels is not None:
        raise invalid_together(
            {"train": splits[0], "labels": labels},
            "the labels either in (x, y) tuples or in `labels`, not both",
        )
    for split, name in zip(splits, NAMES, strict=True):
        rows, count = num_rows(split[0], name), len(split[1])
        if rows != count:
            raise invalid(
                name,
                split,
                f"an (x, y) tuple with one label per row ({rows} rows, {count} labels)",
            )
    return tuple(s[0] for s in splits), tuple(s[1] for s in splits)


def _columns(x: Any, name: str) -> tuple[list[str], np.ndarray]:
    """`(names, float matrix)` of the numeric columns of one split."""
    if hasattr(x, "select_dtypes"):
        numeric = x.select_dtypes("number")
        return [str(c) for c in numeric.columns], numeric.to_numpy("float64")
    if hasattr(x, "iloc"):
        return [str(x.name)], x.to_numpy("float64").reshape(-1, 1)
    if isinstance(x, dict):
        names, blocks = [], []
        for key, value in x.items():
            sub_names, block = _columns(value, f"{name}[{key!r}]")
            names += [key if len(sub_names) == 1 else f"{key}[{s}]" for s in sub_names]
            blocks.append(block)
        return names, np.concatenate(blocks, axis=1)
    expected = "a numeric array, DataFrame, dict of arrays or (x, y) tuple"
    try:
        array = np.asarray(x)
    except ValueError:  # ragged, e.g. a list [x, y] of different shapes
        raise invalid(
            name, x, expected, TypeError, fix="Pass (x, y) pairs as tuples"
        ) from None
    if array.ndim == 0 or array.dtype.kind not in "biuf":
        raise invalid(name, x, expected, TypeError)
    matrix = array.reshape(len(array), -1).astype("float64")
    return [str(i) for i in range(matrix.shape[1])], matrix


def row_hashes(x: Any) -> np.ndarray:
    """A 64-bit hash of every row's contents (equal rows, equal hashes).

    Args:
        x: a NumPy array (rows first), a pandas DataFrame/Series, or a dict
            of arrays.

    Returns:
        A `uint64` array, one hash per row.

    Example:

    >>> h = row_hashes(np.array([[1, 2], [3, 4], [1, 2]]))
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    if hasattr(x, "iloc"):
        import pandas  # present, since x is a pandas object

        return pandas.util.hash_pandas_object(x, index=False).to_numpy()
    if isinstance(x, dict):
        hashes = [row_hashes(v) for v in x.values()]
        return _fold(np.stack(hashes, axis=1))
    x = np.ascontiguousarray(x)
    if x.dtype == object:
        return np.array([hash(tuple(np.ravel(r))) for r in x]).view(np.uint64)
    raw = x.reshape(len(x), -1).view(np.uint8).reshape(len(x), -1)
    width = -(-raw.shape[1] // 8) * 8
    padded = np.zeros((len(x), width), np.uint8)
    padded[:, : raw.shape[1]] = raw
    return _fold(padded.view(np.uint64))


def _fold(words: np.ndarray) -> np.ndarray:
    """SplitMix64-style hash of each row of a uint64 matrix."""
    h = np.full(len(words), GOLDEN, np.uint64)
    with np.errstate(over="ignore"):
        for column in words.T:
            h = (h ^ column) * np.uint64(MIX1)
            h = (h ^ (h >> np.uint64(29))) * np.uint64(MIX2)
            h ^= h >> np.uint64(32)
    return h


def _labels(labels: Any, splits: Sequence[Any]) -> list[np.ndarray] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        if not all(hasattr(s, "columns") and labels in s.columns for s in splits):
            raise invalid("labels", labels, "a column of all three DataFrames")
        return [s[labels].to_numpy() for s in splits]
    if not isinstance(labels, list | tuple) or len(labels) != 3:
        raise invalid(
            "labels",
            labels,
            "(y_train, y_dev, y_test) or a DataFrame column name",
            TypeError,
        )
    given = labels
    labels = [np.asarray(y) for y in labels]
    for y, s, name in zip(labels, splits, NAMES, strict=True):
        if len(y) != len(s):
            raise invalid(
                "labels",
                given,
                f"one label per {name} row ({len(s)} {name} rows, {len(y)} labels)",
            )
    return [y.reshape(len(y), -1).argmax(1) if y.ndim > 1 else y for y in labels]


def describe_split(
    train: Any,
    dev: Any,
    test: Any,
    *,
    labels: Sequence[Any] | str | None = None,
    features: Sequence[int | str] | None = None,
    smd_threshold: float = 0.1,
    ks_alpha: float = 0.001,
    class_threshold: float = 0.02,
) -> SplitReport:
    """Compares the distributions of a train/dev/test split.

    See the module docstring for the statistics (SMD, Austin 2009; the
    two-sample Kolmogorov-Smirnov test) and the leakage check.

    Args:
        train: features of the train split: a numeric array (rows first),
            a pandas DataFrame/Series, or a dict of arrays; or an `(x, y)`
            tuple (`(x, y, sample_weight)` too, the weights unused), as
            Keras's `validation_data`, which gives the labels.
        dev: features of the dev split, the same kind.
        test: features of the test split, the same kind.
        labels: `(y_train, y_dev, y_test)` (class ids or one-hot rows), or
            the name of a label column of three DataFrames. Defaults to
            `None` (no class table, unless the splits are `(x, y)` tuples).
        features: names (DataFrame columns, dict keys) or column indices of
            the features to compare. Defaults to `None`, all numeric columns
            (but the label column).
        smd_threshold: warn when |SMD| exceeds it (and the sampling noise,
            see above). Defaults to `0.1`.
        ks_alpha: warn when a KS p-value is below `ks_alpha / n_features`.
            Defaults to `0.001`.
        class_threshold: warn when a class proportion in dev or test differs
            from train by more than this. Defaults to `0.02`.

    Returns:
        A `SplitReport`: `print` it for the tables, `.to_dict()` for data.

    Raises:
        TypeError: for a split that is neither numeric data nor an `(x, y)`
            tuple, or `labels` of the wrong kind.
        ValueError: for an empty split, splits with different columns,
            labels that do not match the rows, unknown `features`, or a
            threshold out of range.

    Warns:
        UserWarning: when a compared feature holds NaN or infinite values
            (left out of its statistics; the warning says how many).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(600, 3)), rng.integers(0, 2, 600)
    >>> report = describe_split(x[:400], x[400:500], x[500:],
    ...                         labels=(y[:400], y[400:500], y[500:]))
    >>> report.leakage.to_dict()["train-dev"]["shared_rows"]
    0
    >>> pairs = describe_split((x[:400], y[:400]), (x[400:500], y[400:500]),
    ...                        (x[500:], y[500:]))
    >>> pairs.classes.to_records() == report.classes.to_records()
    True
    """
    smd_threshold = check_number("smd_threshold", smd_threshold, low=0)
    ks_alpha = check_number("ks_alpha", ks_alpha, low=0, high=1)
    class_threshold = check_number("class_threshold", class_threshold, low=0, high=1)
    splits, labels = _unpack_pairs((train, dev, test), labels)
    for split, name in zip(splits, NAMES, strict=True):
        if not isinstance(split, dict) and len(split) == 0:
            raise invalid(name, split, "at least one row")
    tables = [_columns(s, n) for s, n in zip(splits, NAMES, strict=True)]
    columns = tables[0][0]
    for (own, _), split, name in zip(tables[1:], splits[1:], NAMES[1:], strict=True):
        if own != columns:
            raise invalid(name, split, f"the train columns {columns} (it has {own})")
    chosen = _select(columns, features, labels)
    problems: list[str] = []
    n = sum(len(m) for _, m in tables)
    sizes = Report(
        (
            {"split": s, "count": len(m), "fraction": len(m) / n}
            for s, (_, m) in zip(NAMES, tables, strict=True)
        ),
        title="sizes",
    )
    classes = _class_table(_labels(labels, splits), class_threshold, problems)
    matrices = [m[:, chosen] for _, m in tables]
    names = [columns[j] for j in chosen]
    problems += _non_finite(names, matrices)
    rows: list[dict[str, Any]] = [{"feature": f} for f in names]
    for other, name in zip(matrices[1:], NAMES[1:], strict=True):
        smd, ks, p, noise = _shift(matrices[0], other)
        for j, row in enumerate(rows):
            row[f"smd_{name}"] = float(smd[j])
            row[f"ks_{name}"] = float(ks[j])
            row[f"ks_p_{name}"] = float(p[j])
            if abs(smd[j]) > max(smd_threshold, noise[j]):
                problems.append(
                    f"feature {row['feature']}: |SMD| train vs {name} "
                    f"= {abs(smd[j]):.3g} > {smd_threshold:g}"
                )
            if p[j] < ks_alpha / len(rows):
                problems.append(
                    f"feature {row['feature']}: KS train vs {name} "
                    f"D = {ks[j]:.3g}, p = {p[j]:.2g}"
                )
    features_table = Report(rows, title="features: train vs dev, train vs test")
    leakage = _leakage(splits, problems)
    return SplitReport(sizes, classes, features_table, leakage, problems)


def _non_finite(names: list[str], matrices: list[np.ndarray]) -> list[str]:
    """Problems for the features holding NaN or Inf; warns once for all."""
    counts = np.stack([(~np.isfinite(m)).sum(0) for m in matrices])
    bad = np.flatnonzero(counts.sum(0))
    if not bad.size:
        return []
    problems = []
    for j in bad:
        per_split = ", ".join(
            f"{s} {int(c)}" for s, c in zip(NAMES, counts[:, j], strict=True)
        )
        text = (
            f"feature {names[j]}: {int(counts[:, j].sum())} NaN/Inf values left "
            f"out of its SMD and KS ({per_split})"
        )
        empty = [
            s
            for s, m, c in zip(NAMES, matrices, counts[:, j], strict=True)
            if c == len(m)
        ]
        if empty:
            text += f"; no finite value in {', '.join(empty)}, so they are nan"
        problems.append(text)
    shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
    warnings.warn(
        f"describe_split: {len(problems)} features hold NaN or Inf values, "
        f"computed on their finite values only: {shown}",
        stacklevel=3,
    )
    return problems


def _shift(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `a` (train) vs `b`: SMD, KS statistic and p-value, and
    three standard errors of the SMD's sampling noise; NaN/Inf left out."""
    import scipy.stats

    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    n_a, n_b = finite_a.sum(0), finite_b.sum(0)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Columns without a finite value give nan (and NumPy/SciPy warnings
        # about empty slices, already reported by `_non_finite`).
        warnings.simplefilter("ignore", RuntimeWarning)
        if finite_a.all() and finite_b.all():
            mean, var, policy = np.mean, np.var, "propagate"
        else:
            a, b = np.where(finite_a, a, np.nan), np.where(finite_b, b, np.nan)
            mean, var, policy = np.nanmean, np.nanvar, "omit"
        diff = mean(b, 0) - mean(a, 0)
        pooled = np.sqrt((var(a, 0) + var(b, 0)) / 2)
        smd = np.where(diff == 0, 0.0, diff / pooled)
        ks = scipy.stats.ks_2samp(a, b, axis=0, method="asymp", nan_policy=policy)
        noise = 3 * np.sqrt(1 / n_a + 1 / n_b)
    return smd, np.asarray(ks.statistic), np.asarray(ks.pvalue), noise


def _select(columns: list[str], features: Any, labels: Any) -> list[int]:
    if features is None:
        label_column = labels if isinstance(labels, str) else None
        return [j for j, c in enumerate(columns) if c != label_column]
    chosen = []
    for f in features:
        if isinstance(f, int | np.integer) and 0 <= f < len(columns):
            chosen.append(int(f))
        elif str(f) in columns:
            chosen.append(columns.index(str(f)))
        else:
            raise invalid("features", f, f"names or indices of the columns {columns}")
    return chosen


def _class_table(
    labels: list[np.ndarray] | None, threshold: float, problems: list[str]
) -> Report | None:
    if labels is None:
        return None
    classes = np.unique(np.concatenate(labels))
    rows, largest = [], (0.0, None)
    for c in classes:
        p = [float(np.mean(y == c)) for y in labels]
        gap = max(abs(p[1] - p[0]), abs(p[2] - p[0]))
        rows.append(
            {
                "class": c.item(),
                "train": p[0],
                "dev": p[1],
                "test": p[2],
                "max_difference": gap,
            }
        )
        largest = max(largest, (gap, c.item()), key=lambda t: t[0])
        if gap > threshold:
            problems.append(
                f"class {c.item()!r}: proportion train {p[0]:.3g}, "
                f"dev {p[1]:.3g}, test {p[2]:.3g}"
            )
    return Report(
        rows,
        title=f"class proportions (largest difference "
        f"{largest[0]:.3g}, class {largest[1]!r})",
    )


def _leakage(splits: Sequence[Any], problems: list[str]) -> Report:
    hashes = [row_hashes(s) for s in splits]
    rows = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        shared = np.flatnonzero(np.isin(hashes[b], hashes[a]))
        pair = f"{NAMES[a]}-{NAMES[b]}"
        rows.append(
            {
                "pair": pair,
                "shared_rows": int(shared.size),
                "examples": shared[:5].tolist(),
            }
        )
        if shared.size:
            problems.append(
                f"leakage: {shared.size} {NAMES[b]} rows also in "
                f"{NAMES[a]} (e.g. rows {shared[:5].tolist()})"
            )
    return Report(rows, title="rows in more than one split")
