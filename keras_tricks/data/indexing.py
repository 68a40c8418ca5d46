"""Length and row selection for the containers a split accepts.

NumPy arrays (and anything with `shape` and fancy indexing), SciPy sparse
matrices and arrays of every format, lists and tuples, pandas DataFrames and
Series (selected with `.iloc`, so their type and index survive; pandas is
never imported), and dicts of those (a Keras multi-input), all indexed along
the first axis.
"""

from typing import Any

import numpy as np

from keras_tricks._validation import invalid

# Sparse formats that select rows by an index array; the others (COO, BSR,
# DIA, DOK) are converted to CSR first, as scikit-learn's `indexable` does.
ROW_INDEXED_SPARSE = ("csr", "csc", "lil")


def _is_sparse(array: Any) -> bool:
    if not type(array).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return bool(scipy.sparse.issparse(array))


def indexable(array: Any) -> Any:
    """`array`, with sparse formats that cannot select rows converted to CSR."""
    if _is_sparse(array):  # before dict: a DOK matrix is a dict
        return array if array.format in ROW_INDEXED_SPARSE else array.tocsr()
    if isinstance(array, dict):
        return {key: indexable(value) for key, value in array.items()}
    return array


def num_rows(array: Any, name: str) -> int:
    """Number of rows of `array`; raises for unsupported or ragged input."""
    if isinstance(array, dict):
        if not array:
            raise invalid(name, array, "a non-empty dict of arrays")
        lengths = {
            key: num_rows(value, f"{name}[{key!r}]") for key, value in array.items()
        }
        if len(set(lengths.values())) > 1:
            raise invalid(
                name, array, f"dict values with the same number of rows ({lengths})"
            )
        return next(iter(lengths.values()))
    if hasattr(array, "iloc"):
        return len(array)
    if hasattr(array, "shape") and hasattr(array, "__getitem__"):
        if len(array.shape) == 0:
            raise invalid(name, array, "an array with at least one dimension")
        return int(array.shape[0])
    if isinstance(array, list | tuple):
        return len(array)
    raise invalid(
        name,
        array,
        "a NumPy array, SciPy sparse matrix, list, tuple, pandas "
        "DataFrame/Series or dict of those",
        TypeError,
    )


def take(array: Any, indices: np.ndarray) -> Any:
    """Rows `indices` of `array`, in the container type of `array`."""
    if isinstance(array, dict):
        return {key: take(value, indices) for key, value in array.items()}
    if hasattr(array, "iloc"):
        return array.iloc[indices]
    if isinstance(array, np.ndarray):
        return array.take(indices, axis=0)
    if hasattr(array, "shape"):
        return array[indices]
    rows = [array[i] for i in indices.tolist()]
    return tuple(rows) if isinstance(array, tuple) else rows


def as_labels(values: Any, name: str) -> np.ndarray:
    """A NumPy array of labels; raises for NaN."""
    given = values
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    values = np.asarray(values)
    if values.ndim == 0:
        raise invalid(name, given, "an array of labels, one per example")
    if values.dtype.kind == "f" and np.isnan(values).any():
        where = np.flatnonzero(np.isnan(values.reshape(len(values), -1)).any(1))
        raise invalid(
            name,
            given,
            f"labels without NaN (NaN at rows {where[:5].tolist()})",
            fix="Drop or impute those rows first",
        )
    if values.dtype == object:
        bad = [i for i, v in enumerate(values.ravel()) if v != v]
        if bad:
            raise invalid(
                name,
                given,
                f"labels without NaN (NaN at rows {bad[:5]})",
                fix="Drop or impute those rows first",
            )
        _check_one_label_kind(name, given, values)
    elif isinstance(given, list | tuple) and values.dtype.kind in "US":
        _check_one_label_kind(name, given, np.asarray(given, dtype=object))
    return values


def _check_one_label_kind(name: str, given: Any, values: np.ndarray) -> None:
    """Raises when labels mix strings with numbers (`1` and `"1"`).

    NumPy turns `[1, "1"]` into two equal strings, so the classes would
    merge silently; an object array would keep them apart, sorting fails.
    """
    flat = values.ravel().tolist()
    is_text = [isinstance(v, str | bytes) for v in flat]
    if any(is_text) and not all(is_text):
        first_text = is_text.index(True)
        first_other = is_text.index(False)
        raise invalid(
            name,
            given,
            "labels of one kind, all strings or all numbers (element "
            f"{first_other} is {flat[first_other]!r}, element {first_text} "
            f"is {flat[first_text]!r})",
            TypeError,
            fix="Convert them to one type first, e.g. all to str",
        )
