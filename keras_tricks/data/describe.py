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

Reference:
    Austin, "Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched
    samples", Statistics in Medicine, 2009.
"""

import numpy as np

from keras_tricks._validation import check_number, invalid
from keras_tricks.data.hashing import GOLDEN, MIX1, MIX2
from keras_tricks.report import Report


class SplitReport:
    """The result of `describe_split`: several `Report` tables and warnings.

    Attributes:
        sizes: `Report` of split, count, fraction.
        classes: `Report` of class proportions per split and their largest
            difference (`None` without labels).
        features: `Report` of SMD and KS (statistic, p-value) per feature,
            train vs dev and train vs test.
        leakage: `Report` of rows shared by each pair of splits (count, and
            the first few row positions in the second split).
        warnings: list of strings, one per problem found.
    """

    def __init__(self, sizes, classes, features, leakage, warnings):
        self.sizes = sizes
        self.classes = classes
        self.features = features
        self.leakage = leakage
        self.warnings = warnings

    def tables(self):
        """The non-empty tables, in order."""
        tables = (self.sizes, self.classes, self.features, self.leakage)
        return [t for t in tables if t is not None]

    def to_dict(self):
        """Returns `{table name: list of row dicts, "warnings": [...]}`."""
        out = {
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

    def __str__(self):
        parts = [str(t) for t in self.tables()]
        lines = [f"WARNING: {w}" for w in self.warnings] or ["no warnings"]
        return "\n\n".join(parts + ["\n".join(lines)])

    def __repr__(self):
        return f"SplitReport(warnings={self.warnings!r})"


def _columns(x, name):
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
    x = np.asarray(x)
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise invalid(
            name, x, "a numeric array, DataFrame or dict of arrays", TypeError
        )
    matrix = x.reshape(len(x), -1).astype("float64")
    return [str(i) for i in range(matrix.shape[1])], matrix


def row_hashes(x):
    """A 64-bit hash of every row's contents (equal rows, equal hashes)."""
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


def _fold(words):
    """SplitMix64-style hash of each row of a uint64 matrix."""
    h = np.full(len(words), GOLDEN, np.uint64)
    with np.errstate(over="ignore"):
        for column in words.T:
            h = (h ^ column) * np.uint64(MIX1)
            h = (h ^ (h >> np.uint64(29))) * np.uint64(MIX2)
            h ^= h >> np.uint64(32)
    return h


def _labels(labels, splits):
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
    for y, s, name in zip(labels, splits, ("train", "dev", "test"), strict=True):
        if len(y) != len(s):
            raise invalid(
                "labels",
                given,
                f"one label per {name} row ({len(s)} {name} rows, {len(y)} labels)",
            )
    return [y.reshape(len(y), -1).argmax(1) if y.ndim > 1 else y for y in labels]


def describe_split(
    train,
    dev,
    test,
    *,
    labels=None,
    features=None,
    smd_threshold=0.1,
    ks_alpha=0.001,
    class_threshold=0.02,
):
    """Compares the distributions of a train/dev/test split.

    Args:
        train: features of the train split: a numeric array (rows first),
            a pandas DataFrame/Series, or a dict of arrays.
        dev: features of the dev split, the same kind.
        test: features of the test split, the same kind.
        labels: `(y_train, y_dev, y_test)` (class ids or one-hot rows), or
            the name of a label column of three DataFrames. Defaults to
            `None` (no class table).
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

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(600, 3)), rng.integers(0, 2, 600)
    >>> report = describe_split(x[:400], x[400:500], x[500:],
    ...                         labels=(y[:400], y[400:500], y[500:]))
    >>> report.leakage.to_dict()["train-dev"]["shared_rows"]
    0
    """
    import scipy.stats

    smd_threshold = check_number("smd_threshold", smd_threshold, low=0)
    ks_alpha = check_number("ks_alpha", ks_alpha, low=0, high=1)
    class_threshold = check_number("class_threshold", class_threshold, low=0, high=1)
    splits = (train, dev, test)
    names = ("train", "dev", "test")
    for split, name in zip(splits, names, strict=True):
        if not isinstance(split, dict) and len(split) == 0:
            raise invalid(name, split, "at least one row")
    tables = [_columns(s, n) for s, n in zip(splits, names, strict=True)]
    columns = tables[0][0]
    for (other, _), split, name in zip(tables[1:], splits[1:], names[1:], strict=True):
        if other != columns:
            raise invalid(name, split, f"the train columns {columns} (it has {other})")
    chosen = _select(columns, features, labels)
    warnings = []
    n = sum(len(m) for _, m in tables)
    sizes = Report(
        (
            {"split": s, "count": len(m), "fraction": len(m) / n}
            for s, (_, m) in zip(names, tables, strict=True)
        ),
        title="sizes",
    )
    classes = _class_table(_labels(labels, splits), class_threshold, warnings)
    x_train = tables[0][1][:, chosen]
    rows = [{"feature": columns[j]} for j in chosen]
    for (_, matrix), name in zip(tables[1:], names[1:], strict=True):
        other = matrix[:, chosen]
        pooled = np.sqrt((x_train.var(0) + other.var(0)) / 2)
        diff = other.mean(0) - x_train.mean(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            smd = np.where(diff == 0, 0.0, diff / pooled)
        # Three standard errors of the SMD of two samples from one distribution.
        noise = 3 * np.sqrt(1 / len(x_train) + 1 / len(other))
        ks = scipy.stats.ks_2samp(x_train, other, axis=0, method="asymp")
        for j, row in enumerate(rows):
            row[f"smd_{name}"] = float(smd[j])
            row[f"ks_{name}"] = float(ks.statistic[j])
            row[f"ks_p_{name}"] = float(ks.pvalue[j])
            if abs(smd[j]) > max(smd_threshold, noise):
                warnings.append(
                    f"feature {row['feature']}: |SMD| train vs {name} "
                    f"= {abs(smd[j]):.3g} > {smd_threshold:g}"
                )
            if ks.pvalue[j] < ks_alpha / len(rows):
                warnings.append(
                    f"feature {row['feature']}: KS train vs {name} "
                    f"D = {ks.statistic[j]:.3g}, p = {ks.pvalue[j]:.2g}"
                )
    features_table = Report(rows, title="features: train vs dev, train vs test")
    leakage = _leakage(splits, names, warnings)
    return SplitReport(sizes, classes, features_table, leakage, warnings)


def _select(columns, features, labels):
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


def _class_table(labels, threshold, warnings):
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
            warnings.append(
                f"class {c.item()!r}: proportion train {p[0]:.3g}, "
                f"dev {p[1]:.3g}, test {p[2]:.3g}"
            )
    return Report(
        rows,
        title=f"class proportions (largest difference "
        f"{largest[0]:.3g}, class {largest[1]!r})",
    )


def _leakage(splits, names, warnings):
    hashes = [row_hashes(s) for s in splits]
    rows = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        shared = np.flatnonzero(np.isin(hashes[b], hashes[a]))
        pair = f"{names[a]}-{names[b]}"
        rows.append(
            {
                "pair": pair,
                "shared_rows": int(shared.size),
                "examples": shared[:5].tolist(),
            }
        )
        if shared.size:
            warnings.append(
                f"leakage: {shared.size} {names[b]} rows also in "
                f"{names[a]} (e.g. rows {shared[:5].tolist()})"
            )
    return Report(rows, title="rows in more than one split")
