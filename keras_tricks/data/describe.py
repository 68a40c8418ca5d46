"""Do train, dev and test come from one distribution? A report that checks.

`describe_split` gathers, for a train/dev/test split:

- the size of each split;
- class proportions per split (with labels);
- for each feature, the standardised mean difference (Austin 2009) and the
  two-sample Kolmogorov-Smirnov statistic of train against dev and against
  test, flagged when the SMD exceeds `smd_threshold` and three standard
  errors of sampling noise, or the KS p-value is below `ks_alpha` divided by
  the number of features (Bonferroni); see `keras_tricks.data.shift`. NaN
  and infinite values are left out of a feature's statistics, with a
  warning that says how many;
- rows that occur in more than one split (leakage: the model is graded on
  examples it trained on), by a 64-bit hash of each row; see
  `keras_tricks.data.leakage`.

Reference:
    Austin, "Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched
    samples", Statistics in Medicine, 2009.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_tricks._validation import check_number, invalid, invalid_together
from keras_tricks.data.indexing import num_rows
from keras_tricks.data.leakage import row_hashes, shared_rows
from keras_tricks.data.shift import class_table, feature_shift, non_finite
from keras_tricks.data.sizes import SPLITS
from keras_tricks.report import Report

__all__ = ["SplitReport", "describe_split", "row_hashes"]


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
    for split, name, pair in zip(splits, SPLITS, pairs, strict=True):
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
    for split, name in zip(splits, SPLITS, strict=True):
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
    for y, s, name in zip(labels, splits, SPLITS, strict=True):
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
    for split, name in zip(splits, SPLITS, strict=True):
        if not isinstance(split, dict) and len(split) == 0:
            raise invalid(name, split, "at least one row")
    tables = [_columns(s, n) for s, n in zip(splits, SPLITS, strict=True)]
    columns = tables[0][0]
    for (own, _), split, name in zip(tables[1:], splits[1:], SPLITS[1:], strict=True):
        if own != columns:
            raise invalid(name, split, f"the train columns {columns} (it has {own})")
    chosen = _select(columns, features, labels)
    problems: list[str] = []
    n = sum(len(m) for _, m in tables)
    sizes = Report(
        (
            {"split": s, "count": len(m), "fraction": len(m) / n}
            for s, (_, m) in zip(SPLITS, tables, strict=True)
        ),
        title="sizes",
    )
    classes = class_table(_labels(labels, splits), class_threshold, problems)
    matrices = [m[:, chosen] for _, m in tables]
    names = [columns[j] for j in chosen]
    problems += non_finite(names, matrices)
    rows: list[dict[str, Any]] = [{"feature": f} for f in names]
    for other, name in zip(matrices[1:], SPLITS[1:], strict=True):
        smd, ks, p, noise = feature_shift(matrices[0], other)
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
    leakage = shared_rows(splits, problems)
    return SplitReport(sizes, classes, features_table, leakage, problems)


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
