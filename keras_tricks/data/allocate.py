"""Assigning examples to splits: stratified by class, or whole groups at once.

Stratified allocation rounds the table of exact per-class split sizes
`n_c * size_s / n` to integers that keep both the class totals and the split
totals. Such a rounding, with every entry the floor or the ceiling of its
exact value, always exists (Bacharach 1966): it is an integral maximum flow
from the classes to the splits, found here with
`scipy.sparse.csgraph.maximum_flow`. So every split's count of every class is
within one example of exact, and the split sizes are exactly the requested
ones.

Reference:
    Bacharach, "Matrix Rounding Problems", Management Science, 1966.
"""

import numpy as np
from numpy.typing import ArrayLike

from keras_tricks._validation import invalid
from keras_tricks.data.sizes import SPLITS

# Group splits try this many random group orders and keep the closest sizes.
GROUP_ORDERS = 32


def class_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps labels to codes `0..k-1`; returns `(codes, classes, counts)`.

    Integer and boolean labels with a small range take an O(n) path (a
    lookup table); others are sorted by `np.unique`. Rows of a 2-D array
    (one-hot or multi-label targets) are classes.
    """
    if labels.ndim == 1 and labels.dtype.kind in "iub" and labels.size:
        # Booleans as 0/1 integers: a bool array would index as a mask.
        values = labels.view(np.uint8) if labels.dtype.kind == "b" else labels
        low, high = int(values.min()), int(values.max())
        if high - low <= max(values.size, 1 << 16):
            # Negative labels shift up in int64 (int8 -128..127 would wrap).
            shifted = np.subtract(values, low, dtype=np.int64) if low else values
            counts = np.bincount(shifted, minlength=0)
            present = np.flatnonzero(counts)
            table = np.zeros(high - low + 1, dtype=_code_dtype(present.size))
            table[present] = np.arange(present.size)
            classes = (present + low).astype(labels.dtype)
            return table[shifted], classes, counts[present]
    if labels.ndim == 1:
        classes, codes, counts = np.unique(
            labels, return_inverse=True, return_counts=True
        )
    else:
        flat = labels.reshape(len(labels), -1)
        classes, codes, counts = np.unique(
            flat, axis=0, return_inverse=True, return_counts=True
        )
    return codes.reshape(-1).astype(_code_dtype(classes.shape[0])), classes, counts


def _code_dtype(k: int) -> type[np.integer]:
    return np.uint8 if k <= 1 << 8 else np.uint16 if k <= 1 << 16 else np.int64


def round_table(
    class_counts: ArrayLike, split_counts: ArrayLike, rng: np.random.Generator
) -> np.ndarray:
    """Integer `(classes, splits)` table with the given row and column sums.

    Entry `(c, s)` is the floor or the ceiling of
    `class_counts[c] * split_counts[s] / n`.
    """
    import scipy.sparse
    from scipy.sparse.csgraph import maximum_flow

    class_counts = np.asarray(class_counts, dtype="int64")
    split_counts = np.asarray(split_counts, dtype="int64")
    n = int(class_counts.sum())
    exact = class_counts[:, None] * (split_counts[None, :] / n)
    table = np.floor(np.round(exact, 9)).astype("int64")
    row_left = class_counts - table.sum(1)
    col_left = split_counts - table.sum(0)
    if not row_left.any():
        return table
    rows = np.flatnonzero(row_left)
    rows = rows[rng.permutation(rows.size)]
    k, s = rows.size, split_counts.size
    # Nodes: source 0, classes 1..k, splits k+1..k+s, sink k+s+1.
    fractional = (exact[rows] - table[rows]) > 1e-9
    r, c = np.nonzero(fractional)
    heads = np.concatenate([np.zeros(k, "int32"), 1 + r, k + 1 + np.arange(s)])
    tails = np.concatenate([1 + np.arange(k), k + 1 + c, np.full(s, k + s + 1)])
    caps = np.concatenate([row_left[rows], np.ones(r.size, "int64"), col_left])
    graph = scipy.sparse.csr_matrix(
        (caps.astype("int32"), (heads, tails)), shape=(k + s + 2,) * 2
    )
    flow = maximum_flow(graph, 0, k + s + 1).flow.tocsr()
    extra = np.asarray(flow[1 : k + 1, k + 1 : k + s + 1].todense()).clip(0)
    table[rows] += extra
    return table


def stratified_assignment(
    codes: np.ndarray, table: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split id of every example (3 = left out), and a random example order.

    Class c gets `table[c, s]` examples in split s, chosen at random.
    """
    n = codes.size
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    rng.shuffle(order)
    # Radix sort (stable, O(n)) for the small integer codes: within a class
    # the examples keep their random order.
    by_class = order[np.argsort(codes[order], kind="stable")]
    split_ids = np.arange(table.shape[1], dtype=np.uint8)
    labels = np.repeat(np.tile(split_ids, table.shape[0]), table.ravel())
    assignment = np.empty(n, dtype=np.uint8)
    assignment[by_class] = labels
    return assignment, order


def group_assignment(
    group_codes: np.ndarray,
    group_sizes: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Split id of every group, cutting an order of the groups at boundaries.

    Each of the two boundaries (train|dev, dev|test) is put at the group
    boundary nearest the requested cumulative count. With `shuffle`, the
    best of `GROUP_ORDERS` random group orders (smallest total deviation from
    the requested counts) is kept; without, the groups stay in order of first
    appearance.

    Returns:
        `(split id per group, achieved counts)`.
    """
    n_groups = group_sizes.size
    targets = np.cumsum(counts)[:2]
    tried = []
    for _ in range(GROUP_ORDERS if shuffle else 1):
        order = rng.permutation(n_groups) if shuffle else np.arange(n_groups)
        cum = np.cumsum(group_sizes[order])
        cuts = np.array([_nearest_cut(cum, t) for t in targets])
        cuts[0] = min(max(cuts[0], 1), n_groups - 2)
        cuts[1] = min(max(cuts[1], cuts[0] + 1), n_groups - 1)
        edges = np.concatenate([[0], cum[cuts - 1], [cum[-1]]])
        achieved = np.diff(edges)
        tried.append((np.abs(achieved - counts).sum(), order, cuts, achieved))
    # The first order with the smallest total deviation.
    _, order, cuts, achieved = min(tried, key=lambda t: t[0])
    split_of_group = np.empty(n_groups, dtype=np.uint8)
    split_of_group[order] = np.repeat(
        np.arange(3, dtype=np.uint8), np.diff(np.concatenate([[0], cuts, [n_groups]]))
    )
    return split_of_group[group_codes], achieved


def _nearest_cut(cum: np.ndarray, target: float) -> int:
    """Number of leading groups whose total is nearest to `target` (>= 1)."""
    i = int(np.searchsorted(cum, target))
    candidates = [j for j in (i, i + 1) if 1 <= j <= cum.size]
    return min(candidates, key=lambda j: abs(cum[j - 1] - target))


def check_class_sizes(
    labels: np.ndarray,
    classes: np.ndarray,
    counts: np.ndarray,
    needed: int,
    fix: str = "Merge rare classes, or do not stratify",
) -> None:
    """Raises when a class has fewer members than the splits needing it."""
    small = np.flatnonzero(counts < needed)
    if small.size:
        c = small[np.argmin(counts[small])]
        name = classes[c].tolist() if hasattr(classes[c], "tolist") else classes[c]
        raise invalid(
            "stratify",
            labels,
            f"every class to have at least {needed} members (one per split: "
            f"{', '.join(SPLITS)}); class {name!r} has {int(counts[c])}",
            fix=fix,
        )
