"""Rows that occur in more than one split: the model graded on its training data.

Rows are compared by a 64-bit hash of their bytes (pandas rows by
`pandas.util.hash_pandas_object`), so two different rows are mistaken for
each other with probability about n_rows**2 / 2**64.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_tricks.data.hashing import GOLDEN, MIX1, MIX2
from keras_tricks.data.sizes import SPLITS
from keras_tricks.report import Report


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


def shared_rows(splits: Sequence[Any], problems: list[str]) -> Report:
    """Rows of each later split whose contents also occur in an earlier one.

    Args:
        splits: train, dev and test.
        problems: the report's list of problems, appended to.
    """
    hashes = [row_hashes(s) for s in splits]
    rows = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        shared = np.flatnonzero(np.isin(hashes[b], hashes[a]))
        pair = f"{SPLITS[a]}-{SPLITS[b]}"
        rows.append(
            {
                "pair": pair,
                "shared_rows": int(shared.size),
                "examples": shared[:5].tolist(),
            }
        )
        if shared.size:
            problems.append(
                f"leakage: {shared.size} {SPLITS[b]} rows also in "
                f"{SPLITS[a]} (e.g. rows {shared[:5].tolist()})"
            )
    return Report(rows, title="rows in more than one split")
