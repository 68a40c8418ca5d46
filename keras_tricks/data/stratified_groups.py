"""Stratified group splits: whole groups, class proportions kept.

Each example belongs to a group (a patient, a user, a recording session) and
has a class; every group must land in one split, and every split should hold
the classes in the same proportions as the whole data, at the requested size.
Like scikit-learn's `StratifiedGroupKFold`, the groups are placed greedily;
unlike it, the split sizes are capacities (so every split ends within one
group of its requested size), and a local search then moves and swaps groups
between splits while that brings the class counts closer to their targets.

The objective is the squared deviation of each split's class counts from
their targets, relative to the split's requested size:

    cost = sum_s sum_c ((filled[s, c] - size[s] * p_c) / size[s]) ** 2,

where `p_c` is class c's share of all examples: the squared error of the
class proportions, at the requested sizes. Every step lowers it, so the
search ends.

Reference:
    scikit-learn's `StratifiedGroupKFold` (Pedregosa et al., "Scikit-learn:
    Machine Learning in Python", JMLR 2011), whose greedy placement of the
    groups, most informative first, the first phase follows.
"""

import numpy as np

# The local search tries swaps of two groups (quadratic in the number of
# groups) only up to this many groups; with more, groups are small enough
# that moving single groups reaches the same proportions.
SWAP_GROUPS = 500
# At most this many improving moves or swaps.
MAX_STEPS = 1000
# Improvements smaller than this (on the scaled cost) end the search.
MIN_IMPROVEMENT = 1e-9


def stratified_group_assignment(
    group_codes: np.ndarray,
    class_codes: np.ndarray,
    split_counts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Split id of every example: whole groups, classes in proportion.

    1. Greedy: the groups are shuffled, then sorted by size, largest first
       (stable, so equal sizes keep the random order). Each goes to the split,
       among those with room left for all of it, where it lowers the cost
       most; when no split has room, to the split with the most room. A
       split thus overflows only when no split has room for the group, by
       less than that group, and since the sizes add up no split ends short
       by more than the largest group.
    2. An empty split gets the smallest group of the split with the most
       groups.
    3. Local search: the best move of one group to another split, or when
       no move helps (and up to `SWAP_GROUPS` groups) the best swap of two
       groups in different splits, is applied while it lowers the cost,
       keeps every split within the largest group's size of its requested
       size and leaves no split empty.

    Args:
        group_codes: group code `0..g-1` of every example.
        class_codes: class code `0..k-1` of every example.
        split_counts: requested size of every split (with a last, left-out
            split when the sizes add up to less than n).
        rng: the generator that shuffles the groups.

    Returns:
        The split id of every example (`uint8`).
    """
    group_codes = group_codes.astype(np.int64)
    n_groups = int(group_codes.max()) + 1
    k = int(class_codes.max()) + 1
    table = np.bincount(group_codes * k + class_codes, minlength=n_groups * k).reshape(
        n_groups, k
    )
    sizes = table.sum(1)
    counts = np.asarray(split_counts, dtype=np.float64)
    targets = counts[:, None] * (table.sum(0) / sizes.sum())[None, :]
    # Scaled so that the largest split weighs 1: improvements of a whole
    # example stay far above MIN_IMPROVEMENT.
    weight = (counts.max() / np.maximum(counts, 1.0)) ** 2
    split_of_group = _greedy(table, sizes, counts, targets, weight, rng)
    _fill_empty_splits(split_of_group, sizes, counts)
    _improve(split_of_group, table.astype(np.float64), sizes, counts, targets, weight)
    return split_of_group[group_codes]


def _greedy(
    table: np.ndarray,
    sizes: np.ndarray,
    counts: np.ndarray,
    targets: np.ndarray,
    weight: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    order = rng.permutation(sizes.size)
    order = order[np.argsort(-sizes[order], kind="stable")]
    gap = -targets  # filled - target, per split and class
    room = counts.copy()
    split_of_group = np.empty(sizes.size, dtype=np.uint8)
    for g in order.tolist():
        members, size = table[g], sizes[g]
        fits = room >= size
        if fits.any():
            # Change of sum_c (gap + members)^2 - gap^2, per split.
            change = (members * (2 * gap + members)).sum(1) * weight
            s = int(np.argmin(np.where(fits, change, np.inf)))
        else:
            s = int(np.argmax(room))
        split_of_group[g] = s
        gap[s] += members
        room[s] -= size
    return split_of_group


def _fill_empty_splits(
    split_of_group: np.ndarray, sizes: np.ndarray, counts: np.ndarray
) -> None:
    for s in np.flatnonzero(counts > 0).tolist():
        if (split_of_group == s).any():
            continue
        members = np.bincount(split_of_group, minlength=counts.size)
        candidates = np.flatnonzero(split_of_group == int(np.argmax(members)))
        split_of_group[candidates[np.argmin(sizes[candidates])]] = s


def _improve(
    split_of_group: np.ndarray,
    table: np.ndarray,
    sizes: np.ndarray,
    counts: np.ndarray,
    targets: np.ndarray,
    weight: np.ndarray,
) -> None:
    """Best-improvement moves and swaps, in place (see the module docstring)."""
    n_splits = counts.size
    tolerance = sizes.max()
    squares = (table**2).sum(1)
    gram = table @ table.T if sizes.size <= SWAP_GROUPS else None
    rows = np.arange(sizes.size)
    for _ in range(MAX_STEPS):
        own = split_of_group.astype(np.int64)
        filled = np.zeros((n_splits, table.shape[1]))
        np.add.at(filled, own, table)
        gap = filled - targets
        size = filled.sum(1)
        groups_in = np.bincount(own, minlength=n_splits)
        # Move g from its split a to b: |gap_a - v|^2 + |gap_b + v|^2 - before.
        out = weight[own] * (squares - 2 * (table * gap[own]).sum(1))
        into = weight[None, :] * (squares[:, None] + 2 * table @ gap.T)
        change = out[:, None] + into
        allowed = (
            (np.abs(size[own] - sizes - counts[own]) <= tolerance)[:, None]
            & (np.abs(size[None, :] + sizes[:, None] - counts[None, :]) <= tolerance)
            & (groups_in[own] > 1)[:, None]
        )
        allowed[rows, own] = False
        change = np.where(allowed, change, np.inf)
        g, b = np.unravel_index(int(np.argmin(change)), change.shape)
        best = change[g, b]
        swap = None
        if gram is not None and not best < -MIN_IMPROVEMENT:
            swap_change, pair = _best_swap(
                own, table, gap, size, sizes, counts, weight, gram, squares, tolerance
            )
            if swap_change < best:
                best, swap = swap_change, pair
        if not best < -MIN_IMPROVEMENT:
            return
        if swap is None:
            split_of_group[g] = b
        else:
            h1, h2 = swap
            split_of_group[h1], split_of_group[h2] = own[h2], own[h1]


def _best_swap(own, table, gap, size, sizes, counts, weight, gram, squares, tolerance):
    """The best swap of two groups in different splits: (change, (g, h))."""
    # With d = v_h - v_g, the swap changes split a (of g) by |d|^2 + 2 d.gap_a
    # and split b (of h) by |d|^2 - 2 d.gap_b.
    dots = table @ gap[own].T  # dots[i, j] = v_i . gap_{a(j)}
    own_dots = np.diagonal(dots)
    distance = squares[:, None] + squares[None, :] - 2 * gram
    along_a = dots.T - own_dots[:, None]
    along_b = own_dots[None, :] - dots
    change = weight[own][:, None] * (distance + 2 * along_a) + weight[own][None, :] * (
        distance - 2 * along_b
    )
    moved = sizes[None, :] - sizes[:, None]  # size change of g's split
    allowed = (
        (np.abs(size[own][:, None] + moved - counts[own][:, None]) <= tolerance)
        & (np.abs(size[own][None, :] - moved - counts[own][None, :]) <= tolerance)
        & (own[:, None] != own[None, :])
    )
    change = np.where(allowed, change, np.inf)
    g, h = np.unravel_index(int(np.argmin(change)), change.shape)
    return change[g, h], (int(g), int(h))
