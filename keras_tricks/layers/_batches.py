"""The input batches of one pass over the data given to `recalibrate_batch_norm`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras

from keras_tricks._validation import invalid

Batches = Callable[[], Iterator[Any]]
"""A zero-argument function giving an iterator over the input batches of one
pass (each call starts a new pass, except for a one-shot generator)."""


def passes(data: Any, batch_size: int, steps: int | None, reads: int) -> Batches:
    """Returns a function that yields the input batches `x` of one pass.

    `reads` is the number of passes the caller makes: a generator object can
    be read once only.
    """
    source = _source(data, batch_size, reads)
    if steps is None and hasattr(data, "cardinality"):
        import tensorflow as tf

        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise invalid("steps", None, "a number of batches for an infinite dataset")

    def batches():
        for step, element in enumerate(source()):
            if steps is not None and step >= steps:
                return
            yield keras.utils.unpack_x_y_sample_weight(element)[0]

    return batches


def rows(x: Any) -> int:
    """The number of rows of a batch (of its first array)."""
    return int(keras.tree.flatten(x)[0].shape[0])


def _source(data: Any, batch_size: int, reads: int) -> Batches:
    """Returns a zero-argument function giving an iterator over `data`."""
    if hasattr(data, "element_spec") or isinstance(data, list | tuple):
        return data.__iter__  # tf.data.Dataset or list of batches
    if hasattr(data, "shape"):
        if len(data.shape) == 0 or data.shape[0] == 0:
            raise invalid("data", data, "a non-empty batch")
        starts = range(0, data.shape[0], batch_size)
        return lambda: (data[s : s + batch_size] for s in starts)
    if isinstance(data, keras.utils.PyDataset):
        return lambda: (data[i] for i in range(data.num_batches))
    if callable(data):
        return data
    if hasattr(data, "__next__"):
        if reads > 1:
            raise invalid(
                "data",
                data,
                "data that can be read several times (method='sequential' "
                "makes one pass per BatchNormalization layer)",
                fix="Pass the generator function itself (e.g. `make_batches` "
                "instead of `make_batches()`), an array or a tf.data.Dataset, "
                "or use method='single_pass'",
            )
        return lambda: data
    raise invalid(
        "data",
        data,
        "a tf.data.Dataset, an array, a PyDataset, a list of batches or "
        "a generator function",
        TypeError,
    )
