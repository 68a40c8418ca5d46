"""Streaming three-way split of a `tf.data.Dataset` by hashing element keys.

For data too large to hold in memory (the 98/1/1 case), each element is
assigned to a split by a hash of its key and the seed, with no state: the
same key always lands in the same split, on every machine and pass. The key
of element k is, by default, its position k; the hash is the k-th output of
a SplitMix64 generator seeded with `splitmix64(seed)`:

    h = splitmix64(k * 0x9E3779B97F4A7C15 + splitmix64(seed))
    u = (h >> 11) / 2**53        # uniform in [0, 1)
    test if u < test_size, dev if u < test_size + dev_size, else train

Each split is the source filtered by its bucket, so the three together hold
every element exactly once, and the achieved fractions are binomial around
the requested ones (standard error sqrt(p (1 - p) / n): 0.03 percentage
points for p = 1% at n = 100,000).

Reference:
    Steele, Lea & Flood, "Fast Splittable Pseudorandom Number Generators",
    OOPSLA 2014 (SplitMix64).

Elements of a fixed shape are hashed `HASH_BATCH` at a time; each split
then either unbatches its kept elements or, with `batch_size`, rebatches
them directly (`Dataset.rebatch`: one copy of each element instead of the
two of `unbatch()` followed by `batch()`).

This is a TensorFlow-specific component: it streams `tf.data` pipelines, on
any Keras backend, with TensorFlow installed (it imports TensorFlow when
called, never at import).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keras_tricks._extras import require
from keras_tricks._validation import check_number, invalid, invalid_together
from keras_tricks.data.hashing import GOLDEN, MASK64, MIX1, MIX2, splitmix64

if TYPE_CHECKING:
    import tensorflow as tf

# Elements hashed per vectorised step.
HASH_BATCH = 1024


def _splitmix64_tensor(z: "tf.Tensor") -> "tf.Tensor":
    """SplitMix64's finaliser on a `tf.uint64` tensor."""
    import tensorflow as tf

    rshift = tf.bitwise.right_shift
    z = tf.bitwise.bitwise_xor(z, rshift(z, tf.constant(30, tf.uint64)))
    z = z * tf.constant(MIX1, tf.uint64)
    z = tf.bitwise.bitwise_xor(z, rshift(z, tf.constant(27, tf.uint64)))
    z = z * tf.constant(MIX2, tf.uint64)
    return tf.bitwise.bitwise_xor(z, rshift(z, tf.constant(31, tf.uint64)))


def hash_uniform(keys: Any, seed: int = 0) -> "tf.Tensor":
    """Maps integer or string keys to uniform floats in [0, 1) (float64).

    Integer keys k give `(splitmix64(k * 0x9E3779B97F4A7C15 +
    splitmix64(seed)) >> 11) / 2**53`, the same numbers as
    `keras_tricks.data.hashing.hash_uniform_numpy`; string keys are first
    hashed to integers by `tf.strings.to_hash_bucket_fast`.

    Args:
        keys: an integer or string tensor (or anything convertible to one).
        seed: int >= 0. Defaults to `0`.

    Returns:
        A `tf.float64` tensor of the shape of `keys`.

    Example:

    >>> import tensorflow as tf
    >>> u = hash_uniform(tf.range(4, dtype=tf.int64), seed=0)
    >>> [round(float(v), 4) for v in u]
    [0.0, 0.8833, 0.4315, 0.0264]
    """
    require("tensorflow", "tensorflow", "hash_uniform()")
    import tensorflow as tf

    tensor = tf.convert_to_tensor(keys)
    if tensor.dtype == tf.string:
        tensor = tf.strings.to_hash_bucket_fast(tensor, 2**63 - 1)
    elif not tensor.dtype.is_integer:
        raise invalid("keys", keys, "an integer or string tensor", TypeError)
    tensor = tf.bitwise.bitwise_and(  # two's complement bits as uint64
        tf.cast(tf.cast(tensor, tf.int64), tf.uint64), tf.constant(MASK64, tf.uint64)
    )
    state = tf.constant(splitmix64(seed), tf.uint64)
    h = _splitmix64_tensor(tensor * tf.constant(GOLDEN, tf.uint64) + state)
    top = tf.bitwise.right_shift(h, tf.constant(11, tf.uint64))
    return tf.cast(top, tf.float64) * (2.0**-53)


def split_dataset(
    dataset: "tf.data.Dataset",
    *,
    dev_size: float,
    test_size: float,
    key: Callable[..., Any] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> tuple["tf.data.Dataset", "tf.data.Dataset", "tf.data.Dataset"]:
    """Splits a `tf.data.Dataset` into train, dev and test without loading it.

    Every element goes to exactly one split, decided by a hash of its key and
    `seed` (see the module docstring), so nothing is held in memory and the
    splits are the same on every pass and machine. Each split reads the whole
    source and keeps its share: put `split_dataset` before expensive `map`s,
    and shuffle or repeat the splits, never the source (with the default key,
    the position, a reshuffled source would move elements between splits).

    TensorFlow-specific: it needs TensorFlow installed and works on
    `tf.data` pipelines, which `model.fit` accepts on every Keras backend.

    Args:
        dataset: a `tf.data.Dataset` of finite or infinite length.
        dev_size: fraction of elements in the dev split, in (0, 1).
        test_size: fraction of elements in the test split, in (0, 1); dev and
            test together below 1.
        key: function mapping an element (unpacked like `Dataset.map` does)
            to an integer or string scalar tensor, e.g. an example id, which
            makes the split independent of the order. Defaults to `None`,
            the element's position.
        seed: int >= 0. Defaults to `0`.
        batch_size: int >= 1: each split comes in batches of this size (the
            last one may be smaller), the same batches as `split.batch(
            batch_size)` but faster, as the kept elements are copied into
            them once. Defaults to `None`: the splits hold single elements.

    Returns:
        A tuple of datasets `(train, dev, test)`.

    Raises:
        ImportError: when TensorFlow is not installed (the `tensorflow` extra).
        TypeError: when `dataset` is not a `tf.data.Dataset`, `key` is not
            callable or returns neither integer nor string scalars, or
            `batch_size` is not an int.
        ValueError: for sizes outside (0, 1) or adding up to 1 or more, or
            a `batch_size` below 1.

    Example:

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.range(1000)
    >>> train, dev, test = split_dataset(ds, dev_size=0.1, test_size=0.1)
    >>> sum(1 for _ in dev) + sum(1 for _ in test) + sum(1 for _ in train)
    1000
    >>> train, dev, test = split_dataset(ds, dev_size=0.1, test_size=0.1,
    ...                                  batch_size=256)
    >>> [int(b.shape[0]) for b in train]
    [256, 256, 256, 36]
    """
    require("tensorflow", "tensorflow", "split_dataset()")
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise invalid("dataset", dataset, "a tf.data.Dataset", TypeError)
    dev_size = check_number(
        "dev_size", dev_size, low=0, high=1, low_open=True, high_open=True
    )
    test_size = check_number(
        "test_size", test_size, low=0, high=1, low_open=True, high_open=True
    )
    if dev_size + test_size >= 1:
        raise invalid_together(
            {"dev_size": dev_size, "test_size": test_size},
            "fractions adding up to less than 1 (train needs the rest)",
        )
    if key is not None and not callable(key):
        raise invalid("key", key, "a function of an element, or None", TypeError)
    seed = check_number("seed", seed, low=0, integer=True)
    if batch_size is not None:
        batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    bounds = (test_size, test_size + dev_size)

    def bucket(keys: tf.Tensor) -> tf.Tensor:
        u = hash_uniform(keys, seed)
        return tf.where(u < bounds[0], 2, tf.where(u < bounds[1], 1, 0))

    if key is None:
        keyed = dataset.enumerate()
    else:
        unpacked = isinstance(dataset.element_spec, tuple)
        keyed = dataset.map(
            lambda *args: (key(*args), args if unpacked else args[0]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        _check_key_spec(key, keyed.element_spec[0])
    specs = tf.nest.flatten(keyed.element_spec)
    batchable = all(
        isinstance(s, tf.TensorSpec) and s.shape.is_fully_defined() for s in specs
    )
    if not batchable:  # ragged, sparse or variable-shape elements

        def filtered(split: int) -> tf.data.Dataset:
            kept = keyed.filter(lambda k, _: bucket(k) == split)
            kept = kept.map(lambda _, element: element)
            return kept if batch_size is None else kept.batch(batch_size)

        return filtered(0), filtered(1), filtered(2)

    keys_of: Callable[[Any, Any], tuple[tf.Tensor, Any]]
    if key is None:
        # Positions from batch numbers: every batch but the last is full, so
        # batch b holds elements b * HASH_BATCH + 0, 1, ...; this spares the
        # per-element cost of `enumerate`.
        batches = dataset.batch(HASH_BATCH).enumerate()

        def positions(index: tf.Tensor, elements: Any) -> tuple[tf.Tensor, Any]:
            size = tf.shape(tf.nest.flatten(elements)[0], out_type=tf.int64)[0]
            return index * HASH_BATCH + tf.range(size, dtype=tf.int64), elements

        keys_of = positions
    else:
        batches = keyed.batch(HASH_BATCH)

        def given(keys: tf.Tensor, elements: Any) -> tuple[tf.Tensor, Any]:
            return keys, elements

        keys_of = given

    def part(split: int) -> tf.data.Dataset:
        def select(*batch: Any) -> Any:
            keys, elements = keys_of(*batch)
            mask = bucket(keys) == split
            return tf.nest.map_structure(lambda t: tf.boolean_mask(t, mask), elements)

        # Hashing a batch at a time costs one op per batch instead of a
        # dozen per element.
        kept = batches.map(select, num_parallel_calls=tf.data.AUTOTUNE)
        return kept.unbatch() if batch_size is None else kept.rebatch(batch_size)

    return part(0), part(1), part(2)


def _check_key_spec(key: Callable[..., Any], spec: Any) -> None:
    """Raises unless `key` returns integer or string scalars."""
    import tensorflow as tf

    dtype = getattr(spec, "dtype", None)
    good = isinstance(spec, tf.TensorSpec) and spec.shape.rank == 0
    if not (good and dtype is not None and (dtype.is_integer or dtype == tf.string)):
        raise invalid(
            "key",
            key,
            "a function returning an integer or string scalar tensor",
            TypeError,
            fix=f"It returned {spec}",
        )
