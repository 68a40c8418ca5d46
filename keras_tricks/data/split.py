"""Three-way train/dev/test split of in-memory data (see `docs/data.md`).

`TrainDevTestSplit` computes the indices; `train_dev_test_split` is the thin
convenience function over it that also selects the rows, in scikit-learn's
flat style.
"""

import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from keras_tricks._validation import check_number, invalid
from keras_tricks.data import allocate
from keras_tricks.data.indexing import as_labels, indexable, num_rows, take
from keras_tricks.data.sizes import SPLITS, Size, _check_size, resolve_sizes
from keras_tricks.data.stratified_groups import stratified_group_assignment
from keras_tricks.report import Report

# With `groups`, warn when a split's achieved fraction is this far off.
GROUP_TOLERANCE = 0.01


def make_rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A `numpy.random.Generator` on PCG64 from None, an int or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is not None:
        check_number("random_state", random_state, low=0, integer=True)
    return np.random.Generator(np.random.PCG64(random_state))


def quantile_bins(y: ArrayLike, n_bins: int = 10) -> np.ndarray:
    """Bins a continuous target into `n_bins` quantile bins `0..n_bins-1`.

    Bin b holds the values between the `b / n_bins` and `(b + 1) / n_bins`
    quantiles of `y`. Tied quantile edges are merged, so there may be fewer
    bins.

    Args:
        y: a 1-D numeric target.
        n_bins: number of bins, >= 2. Defaults to `10`.

    Returns:
        A `uint16` array of bin ids, one per value of `y`.

    Example:

    >>> quantile_bins(np.arange(8.0), n_bins=4).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    """
    n_bins = check_number("n_bins", n_bins, low=2, integer=True)
    values = as_labels(y, "y")
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise invalid(
            "y",
            y,
            "a 1-D numeric target (the last array, for stratify='quantiles')",
        )
    y = values
    edges = np.unique(np.quantile(y, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, y, side="right").astype(np.uint16)


class TrainDevTestSplit:
    """Splits example indices into train, dev and test sets.

    Sizes (`train_size`, `dev_size`, `test_size`): a float is a fraction, an
    int a count, `None` the rest; with all three `None`, dev and test each
    get `min(0.2, max(0.01, 10_000 / n))` of the n examples (60/20/20 for
    small data, 98/1/1 for big data). See `keras_tricks.data.resolve_sizes`
    for every combination. Counts are rounded so that they add up to n.

    With `stratify`, every class is spread over the splits in proportion: the
    count of class c in split s is the floor or the ceiling of
    `n_c * size_s / n`, and the split sizes are exact. With `groups`, each
    group lands in one split only, and the sizes are as close to the
    requested ones as the groups allow (see `report_`). With both, groups
    stay whole and each group goes, largest first, to the split with room
    for it where it brings the class proportions closest to the overall
    ones (`keras_tricks.data.stratified_groups`); every
    split's size is then within one group of the requested one.

    Args:
        dev_size: size of the dev split. Defaults to `None`.
        test_size: size of the test split. Defaults to `None`.
        train_size: size of the train split. Defaults to `None`.
        shuffle: shuffle before splitting; `False` keeps the order (train
            first, then dev, then test). Defaults to `True`.
        random_state: `None`, a seed (int >= 0) or a `numpy.random.Generator`.
            The same seed gives the same split on every machine (NumPy's
            PCG64 generator). Defaults to `None`.

    Attributes:
        report_: after `split`, a `Report` with the requested and the
            achieved count and fraction of every split.

    Example:

    >>> splitter = TrainDevTestSplit(dev_size=0.1, test_size=0.1, random_state=0)
    >>> train, dev, test = splitter.split(100)
    >>> len(train), len(dev), len(test)
    (80, 10, 10)
    """

    def __init__(
        self,
        *,
        dev_size: Size = None,
        test_size: Size = None,
        train_size: Size = None,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        for name, value in (
            ("dev_size", dev_size),
            ("test_size", test_size),
            ("train_size", train_size),
        ):
            _check_size(name, value)
        if not isinstance(shuffle, bool):
            raise invalid("shuffle", shuffle, "True or False", TypeError)
        if not (random_state is None or isinstance(random_state, np.random.Generator)):
            check_number("random_state", random_state, low=0, integer=True)
        self.dev_size = dev_size
        self.test_size = test_size
        self.train_size = train_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.report_: Report | None = None

    def split(
        self,
        n_samples: int | Any,
        *,
        stratify: ArrayLike | None = None,
        groups: ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the index arrays `(train, dev, test)`.

        Args:
            n_samples: number of examples, or an array of them.
            stratify: class labels, one per example (a 2-D array: one class
                per distinct row). Defaults to `None`.
            groups: group ids, one per example. Defaults to `None`.

        Returns:
            Three integer index arrays, disjoint; together they hold every
            example (unless the three sizes add up to less than n).

        Raises:
            ValueError: for bad sizes, an empty split, NaN labels, a class
                smaller than the number of splits (without groups), a split
                smaller than the number of classes, or stratify without
                shuffle.
        """
        if not isinstance(n_samples, numbers.Integral):
            n_samples = num_rows(indexable(n_samples), "n_samples")
        n = check_number("n_samples", n_samples, low=1, integer=True)
        counts = np.array(
            resolve_sizes(n, self.train_size, self.dev_size, self.test_size)
        )
        if stratify is not None and not self.shuffle:
            raise invalid(
                "stratify",
                stratify,
                "None when shuffle=False",
                fix="Stratifying needs shuffling; pass shuffle=True",
            )
        rng = make_rng(self.random_state)
        indices: list[np.ndarray]
        if stratify is not None:
            labels = as_labels(stratify, "stratify")
            if len(labels) != n:
                raise invalid("stratify", stratify, f"one label per example ({n})")
            codes, classes, class_counts = allocate.class_codes(labels)
            self._check_split_sizes(counts, classes.shape[0])
            if groups is not None:
                indices = self._stratified_grouped(
                    n, counts, codes, as_labels(groups, "groups"), rng
                )
            else:
                allocate.check_class_sizes(labels, classes, class_counts, 3)
                indices = self._stratified(n, counts, codes, class_counts, rng)
        elif groups is not None:
            indices = self._grouped(n, counts, as_labels(groups, "groups"), rng)
        elif self.shuffle:
            order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
            rng.shuffle(order)
            edges = np.cumsum(counts)
            indices = np.split(order, edges[:2])[:2] + [order[edges[1] : edges[2]]]
        else:
            edges = np.concatenate([[0], np.cumsum(counts)])
            indices = [np.arange(edges[i], edges[i + 1]) for i in range(3)]
        self.report_ = Report(
            (
                {
                    "split": split,
                    "requested": int(want),
                    "count": len(idx),
                    "fraction": len(idx) / n,
                    "requested_fraction": want / n,
                }
                for split, want, idx in zip(SPLITS, counts, indices, strict=True)
            ),
            title=f"train/dev/test split of {n} examples",
        )
        return indices[0], indices[1], indices[2]

    def _check_split_sizes(self, counts: np.ndarray, n_classes: int) -> None:
        """Raises when a split is too small to hold one example per class."""
        for split, count in zip(SPLITS, counts.tolist(), strict=True):
            if count < n_classes:
                name = f"{split}_size"
                raise invalid(
                    name,
                    getattr(self, name),
                    f"a {split} split of at least {n_classes} examples, one per "
                    f"class of `stratify` ({n_classes} classes); it has {count}",
                    fix=f"Give the {split} split at least {n_classes} examples, "
                    "merge rare classes, or do not stratify",
                )

    @staticmethod
    def _stratified(
        n: int,
        counts: np.ndarray,
        codes: np.ndarray,
        class_counts: np.ndarray,
        rng: np.random.Generator,
    ) -> list[np.ndarray]:
        split_counts = np.append(counts, n - counts.sum())
        table = allocate.round_table(class_counts, split_counts, rng)
        assignment, order = allocate.stratified_assignment(codes, table, rng)
        in_order = assignment[order]
        return [order[in_order == s] for s in range(3)]

    @staticmethod
    def _stratified_grouped(
        n: int,
        counts: np.ndarray,
        codes: np.ndarray,
        groups: np.ndarray,
        rng: np.random.Generator,
    ) -> list[np.ndarray]:
        if len(groups) != n:
            raise invalid("groups", groups, f"one group id per example ({n})")
        group_codes, _, sizes = allocate.class_codes(groups)
        if sizes.size < 3:
            raise invalid(
                "groups",
                groups,
                f"at least 3 distinct groups, one per split (it has {sizes.size})",
            )
        split_counts = np.append(counts, n - counts.sum())
        assignment = stratified_group_assignment(group_codes, codes, split_counts, rng)
        order = rng.permutation(n)
        in_order = assignment[order]
        return [order[in_order == s] for s in range(3)]

    def _grouped(
        self, n: int, counts: np.ndarray, groups: np.ndarray, rng: np.random.Generator
    ) -> list[np.ndarray]:
        if len(groups) != n:
            raise invalid("groups", groups, f"one group id per example ({n})")
        if self.shuffle:
            codes, _, sizes = allocate.class_codes(groups)
        else:
            _, first, codes, sizes = np.unique(
                groups, return_index=True, return_inverse=True, return_counts=True
            )
            rank = np.empty_like(first)
            rank[np.argsort(first)] = np.arange(first.size)
            codes, sizes = rank[codes.reshape(-1)], sizes[np.argsort(first)]
        if sizes.size < 3:
            raise invalid(
                "groups",
                groups,
                f"at least 3 distinct groups, one per split (it has {sizes.size})",
            )
        assignment, _ = allocate.group_assignment(
            codes, sizes, counts, rng, self.shuffle
        )
        if self.shuffle:
            order = rng.permutation(n)
            in_order = assignment[order]
            return [order[in_order == s] for s in range(3)]
        return [np.flatnonzero(assignment == s) for s in range(3)]


def train_dev_test_split(
    *arrays: Any,
    dev_size: Size = None,
    test_size: Size = None,
    train_size: Size = None,
    stratify: ArrayLike | str | None = None,
    groups: ArrayLike | None = None,
    shuffle: bool = True,
    random_state: int | np.random.Generator | None = None,
    n_bins: int = 10,
) -> list[Any]:
    """Splits arrays into train, dev and test sets from one distribution.

    Like `sklearn.model_selection.train_test_split`, but three ways, with
    exact sizes, stratification within one example per class and split,
    group-aware splitting, and default ratios that follow the size of the
    data. Every array is indexed the same way, and keeps its type (SciPy
    sparse formats without row indexing, COO, BSR, DIA and DOK, come back as
    CSR, as in scikit-learn).

    Sizes: a float is a fraction, an int a count, `None` the rest. With all
    three `None`, dev and test each get `min(0.2, max(0.01, 10_000 / n))` of
    n: 60/20/20 up to 50,000 examples, 98/1/1 from 1,000,000, 10,000 examples
    each in between. Counts are rounded to add up to n exactly.

    Args:
        *arrays: NumPy arrays, SciPy sparse matrices or arrays, lists,
            tuples, pandas DataFrames/Series, or dicts of those (Keras
            multi-input), all with the same number of rows.
        dev_size: size of the dev split. Defaults to `None`.
        test_size: size of the test split. Defaults to `None`.
        train_size: size of the train split. Defaults to `None`.
        stratify: class labels to keep in proportion in every split, or
            `"quantiles"` to bin the last array (a continuous target) into
            `n_bins` quantiles and stratify on those. Defaults to `None`.
        groups: group ids (e.g. patient ids); no group is in two splits.
            With `stratify` too, the class proportions are kept as close as
            whole groups allow. Defaults to `None`.
        shuffle: `False` keeps the order (and refuses `stratify`). Defaults
            to `True`.
        random_state: seed (int >= 0), `numpy.random.Generator` or `None`.
            Defaults to `None`.
        n_bins: number of quantile bins for `stratify="quantiles"`. Defaults
            to `10`.

    Returns:
        A list `[a_train, a_dev, a_test, b_train, b_dev, b_test, ...]`.

    Raises:
        TypeError: for an unsupported container or a size of the wrong type.
        ValueError: for no arrays, no rows, arrays of different lengths, bad
            sizes, an empty split, NaN in `stratify`, a class smaller than
            three (without `groups`), a split smaller than the number of
            classes, or `stratify` with `shuffle=False`.

    Example:

    >>> x, y = np.arange(200).reshape(100, 2), np.arange(100) % 2
    >>> x_train, x_dev, x_test, y_train, y_dev, y_test = train_dev_test_split(
    ...     x, y, dev_size=0.1, test_size=0.1, stratify=y, random_state=0)
    >>> len(x_train), len(x_dev), len(x_test), int(y_dev.sum())
    (80, 10, 10, 5)
    """
    if not arrays:
        raise invalid("arrays", arrays, "at least one array to split")
    arrays = tuple(indexable(a) for a in arrays)
    lengths = [num_rows(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    if len(set(lengths)) > 1:
        raise invalid(
            "arrays", arrays, f"arrays with the same number of rows ({lengths})"
        )
    if lengths[0] == 0:
        raise invalid("arrays", arrays, "at least one row each")
    if isinstance(stratify, str):
        if stratify != "quantiles":
            raise invalid("stratify", stratify, "labels, 'quantiles' or None")
        stratify = quantile_bins(arrays[-1], n_bins)
    splitter = TrainDevTestSplit(
        dev_size=dev_size,
        test_size=test_size,
        train_size=train_size,
        shuffle=shuffle,
        random_state=random_state,
    )
    indices = splitter.split(lengths[0], stratify=stratify, groups=groups)
    if groups is not None and splitter.report_ is not None:
        gap = max(
            abs(row["fraction"] - row["requested_fraction"]) for row in splitter.report_
        )
        if gap > GROUP_TOLERANCE:
            warnings.warn(
                f"The groups allow only these split sizes:\n{splitter.report_}",
                stacklevel=2,
            )
    return [take(a, idx) for a in arrays for idx in indices]
