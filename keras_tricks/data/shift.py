"""Distribution shift between train and dev or test, feature by feature.

For each feature, train is compared with dev and with test by

- the standardised mean difference (Austin 2009; |SMD| > 0.1 is the usual
  sign of imbalance):

      SMD = (mean_other - mean_train) / sqrt((var_train + var_other) / 2)

  flagged by `describe_split` when it exceeds both `smd_threshold` and three
  standard errors of sampling noise, `3 * sqrt(1 / n_train + 1 / n_other)`
  (a small dev set shows |SMD| > 0.1 by chance alone);

- the two-sample Kolmogorov-Smirnov statistic D = max_x |F_train(x) -
  F_other(x)| (the largest gap between the empirical CDFs) and its asymptotic
  p-value (`scipy.stats.ks_2samp`).

NaN and infinite values are left out of each feature's statistics (each
split keeps its finite values, and the noise uses their counts).

Reference:
    Austin, "Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched
    samples", Statistics in Medicine, 2009.
"""

import warnings

import numpy as np

from keras_tricks.data.sizes import SPLITS
from keras_tricks.report import Report


def feature_shift(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SMD, KS statistic and KS p-value of each column of `b` against `a`.

    Args:
        a: the train split, a float matrix (rows, features).
        b: dev or test, the same columns.

    Returns:
        `(smd, ks_statistic, ks_pvalue, noise)`, one value per column, noise
        being three standard errors of the SMD of two samples from one
        distribution, `3 * sqrt(1 / n_a + 1 / n_b)` (finite values counted).
    """
    import scipy.stats

    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    n_a, n_b = finite_a.sum(0), finite_b.sum(0)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Columns without a finite value give nan (and NumPy/SciPy warnings
        # about empty slices, already reported by `non_finite`).
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


def non_finite(names: list[str], matrices: list[np.ndarray]) -> list[str]:
    """One problem line per feature holding NaN or Inf; warns once for all.

    Args:
        names: the feature names.
        matrices: train, dev and test, float matrices of those features.
    """
    counts = np.stack([(~np.isfinite(m)).sum(0) for m in matrices])
    bad = np.flatnonzero(counts.sum(0))
    if not bad.size:
        return []
    problems = []
    for j in bad:
        per_split = ", ".join(
            f"{s} {int(c)}" for s, c in zip(SPLITS, counts[:, j], strict=True)
        )
        text = (
            f"feature {names[j]}: {int(counts[:, j].sum())} NaN/Inf values left "
            f"out of its SMD and KS ({per_split})"
        )
        empty = [
            s
            for s, m, c in zip(SPLITS, matrices, counts[:, j], strict=True)
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


def class_table(
    labels: list[np.ndarray] | None, threshold: float, problems: list[str]
) -> Report | None:
    """Class proportions in each split and their largest gap to train.

    Args:
        labels: class ids of train, dev and test, or `None` (no table).
        threshold: a gap above it is added to `problems`.
        problems: the report's list of problems, appended to.
    """
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
