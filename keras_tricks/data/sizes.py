"""Split sizes: fractions, counts, "the rest", and the automatic ratio rule.

The lecture's rule of thumb is 60/20/20 for small data and 98/1/1 for big
data. `auto_fraction` joins the two with one formula: dev and test each get

    f(n) = min(0.2, max(0.01, 10_000 / n))

of the n examples, so up to 50,000 examples the split is 60/20/20, from
1,000,000 on it is 98/1/1, and in between dev and test hold 10,000 examples
each (enough to measure an error rate to about +-0.5 percentage points).
"""

import math
import numbers

import numpy as np

from keras_tricks._validation import invalid, invalid_together

SPLITS = ("train", "dev", "test")

# Dev and test each hold between 1% and 20% of the data, and 10,000 examples
# when that lies in between.
AUTO_MIN_FRACTION = 0.01
AUTO_MAX_FRACTION = 0.2
AUTO_EXAMPLES = 10_000


def auto_fraction(n):
    """The fraction of `n` examples that dev and test each get by default.

    Args:
        n: number of examples.

    Returns:
        `min(0.2, max(0.01, 10_000 / n))`.

    Example:

    >>> auto_fraction(1_000), auto_fraction(100_000), auto_fraction(10**7)
    (0.2, 0.1, 0.01)
    """
    return min(AUTO_MAX_FRACTION, max(AUTO_MIN_FRACTION, AUTO_EXAMPLES / n))


def _check_size(name, value, n=None):
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


def largest_remainder(targets, total):
    """Rounds non-negative `targets` (summing to `total`) to integers that do.

    Each result is the floor or the ceiling of its target; the units left
    after flooring go to the largest fractional parts, ties to the earlier
    entry (Hamilton's method).
    """
    targets = np.round(np.asarray(targets, dtype="float64"), 9)
    counts = np.floor(targets).astype("int64")
    left = int(total - counts.sum())
    if left > 0:
        order = np.argsort(-(targets - counts), kind="stable")
        counts[order[:left]] += 1
    return counts


def resolve_sizes(n, train_size=None, dev_size=None, test_size=None):
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

    Returns:
        A tuple of int counts `(train, dev, test)`.

    Raises:
        TypeError: for a size that is not a float, an int or None.
        ValueError: for a negative or zero size, a fraction outside (0, 1),
            sizes adding up to more than `n` (or 1), or an empty split.
    """
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
        if dev is None and test is None:
            dev = test = auto_fraction(n) * n
        dev = test if dev is None else dev
        test = dev if test is None else test
        train = n - dev - test
    elif dev is None and test is None:
        dev = test = (n - train) / 2
    elif dev is None:
        dev = n - train - test
    elif test is None:
        test = n - train - dev
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
            raise ValueError(
                f"The {split} split would be empty: with n_samples={n}, "
                f"train_size={train_size!r}, dev_size={dev_size!r} and "
                f"test_size={test_size!r} it gets {max(0, int(count))} examples. "
                "Give it a larger size, or the others smaller ones."
            )
    return tuple(int(c) for c in counts)
