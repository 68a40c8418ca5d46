"""Split sizes: fractions, counts, "the rest", and the automatic ratio rule.

The usual rule of thumb is 60/20/20 for small data and 98/1/1 for big data:
dev and test need only be large enough to tell models apart, and the rest is
better spent on training (Ng, "Machine Learning Yearning", 2018, chapter 7).
`auto_fraction` joins the two rules with one formula: dev and test each get

    f(n) = min(0.2, max(0.01, 10_000 / n))

of the n examples, so up to 50,000 examples the split is 60/20/20, from
1,000,000 on it is 98/1/1, and in between dev and test hold 10,000 examples
each (enough to measure an error rate to about +-0.5 percentage points).
"""

import math
import numbers
from collections.abc import Sequence

import numpy as np

from keras_tricks._validation import check_number, invalid, invalid_together

# A split size: a float fraction, an int count, or None for "the rest".
Size = float | int | None

SPLITS = ("train", "dev", "test")

# Dev and test each hold between 1% and 20% of the data, and 10,000 examples
# when that lies in between.
AUTO_MIN_FRACTION = 0.01
AUTO_MAX_FRACTION = 0.2
AUTO_EXAMPLES = 10_000


def auto_fraction(n: int) -> float:
    """The fraction of `n` examples that dev and test each get by default.

    Args:
        n: number of examples.

    Returns:
        `min(0.2, max(0.01, 10_000 / n))`.

    Example:

    >>> auto_fraction(1_000), auto_fraction(100_000), auto_fraction(10**7)
    (0.2, 0.1, 0.01)
    """
    n = check_number("n", n, low=1, integer=True)
    return min(AUTO_MAX_FRACTION, max(AUTO_MIN_FRACTION, AUTO_EXAMPLES / n))


def _check_size(name: str, value: Size, n: int | None = None) -> float | None:
    """Returns the target number of examples (a float) for one size argument.

    With `n=None` (not known yet) only the type and sign are checked.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid(name, value, "a float fraction, an int count or None", TypeError)
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise invalid(name, value, "a positive count (or a fraction)")
        if n is not None and value > n:
            raise invalid(name, value, f"a count in [1, {n}] (n_samples={n})")
        return float(value)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise invalid(name, value, "a fraction in (0, 1)")
    return float(value) * (1 if n is None else n)


def largest_remainder(targets: Sequence[float], total: int) -> np.ndarray:
    """Rounds non-negative `targets` (summing to `total`) to integers that do.

    Each result is the floor or the ceiling of its target; the units left
    after flooring go to the largest fractional parts, ties to the earlier
    entry (Hamilton's method).

    Example:

    >>> largest_remainder([1.5, 1.5, 1.0], 4).tolist()
    [2, 1, 1]
    """
    values = np.round(np.asarray(targets, dtype="float64"), 9)
    counts = np.floor(values).astype("int64")
    left = int(total - counts.sum())
    if left > 0:
        order = np.argsort(-(values - counts), kind="stable")
        counts[order[:left]] += 1
    return counts


def resolve_sizes(
    n: int,
    train_size: Size = None,
    dev_size: Size = None,
    test_size: Size = None,
) -> tuple[int, int, int]:
    """Turns the three size arguments into exact counts.

    A float is a fraction of `n`, an int a count, `None` "the rest":

    - all `None`: dev and test each `auto_fraction(n)`, train the rest;
    - `train_size` `None`: dev and test as given (one missing mirrors the
      other; both missing use `auto_fraction(n)`), train the rest;
    - only `train_size` given: dev and test share the rest equally;
    - `train_size` and one of dev/test given: the other is the rest;
    - all three given: they may add up to less than `n`; the remaining
      examples are left out of every split (as in scikit-learn).

    Fractions are rounded by `largest_remainder`, so the counts add up to
    exactly `n` (or to the requested total when all three are given).

    Args:
        n: number of examples.
        train_size: size of the train split. Defaults to `None`.
        dev_size: size of the dev split. Defaults to `None`.
        test_size: size of the test split. Defaults to `None`.

    Returns:
        A tuple of int counts `(train, dev, test)`.

    Raises:
        TypeError: for a size that is not a float, an int or None.
        ValueError: for a negative or zero size, a fraction outside (0, 1),
            sizes adding up to more than `n` (or 1), or an empty split.

    Example:

    >>> resolve_sizes(1000)
    (600, 200, 200)
    >>> resolve_sizes(1001, train_size=0.5)
    (501, 250, 250)
    >>> resolve_sizes(1000, train_size=0.5, dev_size=0.1, test_size=0.1)
    (500, 100, 100)
    """
    n = check_number("n", n, low=1, integer=True)
    given = {
        "train_size": _check_size("train_size", train_size, n),
        "dev_size": _check_size("dev_size", dev_size, n),
        "test_size": _check_size("test_size", test_size, n),
    }
    total = sum(v for v in given.values() if v is not None)
    if total > n * (1 + 1e-12):
        sizes = {"train_size": train_size, "dev_size": dev_size, "test_size": test_size}
        raise invalid_together(
            {k: v for k, v in sizes.items() if v is not None},
            f"sizes adding up to at most 1 (or n_samples={n})",
        )
    train, dev, test = given["train_size"], given["dev_size"], given["test_size"]
    if train is None:
        if dev is None:
            dev = auto_fraction(n) * n if test is None else test
        if test is None:
            test = dev
        train = n - dev - test
    else:
        rest = n - train
        if dev is None:
            dev = rest / 2 if test is None else rest - test
        if test is None:
            test = rest - dev
    dropped = max(0.0, n - train - dev - test)
    targets = [max(0.0, train), dev, test, dropped]
    counts = largest_remainder(targets, n)[:3]
    for empty in np.flatnonzero((counts == 0) & (np.array(targets[:3]) > 0)):
        # A split with a positive target rounded to 0 takes a unit from a
        # split that was rounded up: both stay within one of their targets.
        over = np.where(counts >= 2, counts - np.array(targets[:3]), 0)
        if over.max() > 0:
            counts[np.argmax(over)] -= 1
            counts[empty] += 1
    for split, count in zip(SPLITS, counts, strict=True):
        if count < 1:
            raise invalid_together(
                {
                    "train_size": train_size,
                    "dev_size": dev_size,
                    "test_size": test_size,
                },
                f"sizes that leave no split empty; with n_samples={n} the {split} "
                "split would be empty",
                fix=f"Give the {split} split a larger size, or the others smaller ones",
            )
    return int(counts[0]), int(counts[1]), int(counts[2])
