import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    # split_dataset streams tf.data: TensorFlow-specific by design. Skipping
    # here spares the JAX run the import of TensorFlow.
    pytest.skip("split_dataset is TensorFlow-specific", allow_module_level=True)

import tensorflow as tf  # noqa: E402

from keras_tricks.data import split_dataset  # noqa: E402
from keras_tricks.data.hashing import hash_uniform_numpy, splitmix64  # noqa: E402
from keras_tricks.data.stream import hash_uniform  # noqa: E402


def _ids(dataset, pick=lambda e: e):
    return np.array([int(pick(e)) for e in dataset.as_numpy_iterator()], "int64")


def _batched_ids(dataset, pick):
    batches = [pick(b) for b in dataset.batch(8192).as_numpy_iterator()]
    return np.concatenate(batches) if batches else np.zeros(0, "int64")


def test_splitmix64_reference_value():
    # First output of SplitMix64 seeded with 0 (Steele et al. reference code).
    assert splitmix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("seed", [0, 7])
def test_tf_hash_equals_numpy_formula(seed):
    keys = np.concatenate([np.arange(-3, 2000), [2**62, -(2**62)]])
    np.testing.assert_array_equal(
        hash_uniform(keys, seed).numpy(), hash_uniform_numpy(keys, seed)
    )


def _expected_split(n, dev, test, seed):
    u = hash_uniform_numpy(np.arange(n), seed)
    return np.where(u < test, 2, np.where(u < test + dev, 1, 0))


@pytest.mark.compat
@pytest.mark.parametrize("batch_size", [None, 100])
def test_every_element_exactly_once_at_the_hashed_split(batch_size):
    n, dev, test = 5000, 0.1, 0.2
    parts = split_dataset(
        tf.data.Dataset.range(n),
        dev_size=dev,
        test_size=test,
        seed=3,
        batch_size=batch_size,
    )
    expected = _expected_split(n, dev, test, 3)
    for split, part in enumerate(parts):
        if batch_size is not None:
            part = part.unbatch()
        ids = _batched_ids(part, lambda b: b)
        np.testing.assert_array_equal(ids, np.flatnonzero(expected == split))


def test_batch_size_gives_the_batches_of_batch():
    """`batch_size=b` yields what `.batch(b)` of the element split yields, for
    a given key and for variable-shape elements (the position key: above)."""
    x = np.arange(2500)
    sources = [
        (tf.data.Dataset.from_tensor_slices({"id": x, "x": x * 2.0}), _by_id),
        # Unknown static shape, equal actual shapes: the per-element path.
        (tf.data.Dataset.range(300).map(lambda i: tf.range(i, i + 2)), None),
    ]
    for source, key in sources:
        options = {"dev_size": 0.2, "test_size": 0.2, "key": key, "seed": 1}
        plain = split_dataset(source, **options)
        batched = split_dataset(source, **options, batch_size=50)
        for a, b in zip(plain, batched, strict=True):
            want = list(a.batch(50).as_numpy_iterator())
            got = list(b.as_numpy_iterator())
            assert len(got) == len(want) > 1
            for w, g in zip(want, got, strict=True):
                tf.nest.map_structure(np.testing.assert_array_equal, w, g)


def _by_id(e):
    return e["id"]


def test_variable_shape_elements_use_positions_too():
    n = 400
    source = tf.data.Dataset.range(n).map(lambda i: tf.range(i % 3))
    parts = split_dataset(source, dev_size=0.25, test_size=0.25, seed=5)
    expected = _expected_split(n, 0.25, 0.25, 5)
    for split, part in enumerate(parts):
        lengths = [len(e) for e in part.as_numpy_iterator()]
        np.testing.assert_array_equal(lengths, np.flatnonzero(expected == split) % 3)


def test_fractions_within_half_a_point_at_100k():
    n = 100_000
    x = np.arange(n)
    source = tf.data.Dataset.from_tensor_slices((x.astype("float32")[:, None], x))
    parts = split_dataset(source, dev_size=0.01, test_size=0.01)
    ids = [_batched_ids(p, lambda b: b[1]) for p in parts]
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), x)
    for got, want in zip(ids, (0.98, 0.01, 0.01), strict=True):
        assert abs(len(got) / n - want) < 0.005
    # The features travel with their ids.
    train = next(parts[0].batch(10).as_numpy_iterator())
    np.testing.assert_array_equal(train[0][:, 0], train[1])


def test_key_makes_the_split_independent_of_order():
    ids = np.arange(3000)
    source = tf.data.Dataset.from_tensor_slices({"id": ids, "x": ids * 2.0})
    shuffled = source.shuffle(3000, seed=1)

    def by_id(e):
        return e["id"]

    first = split_dataset(source, dev_size=0.2, test_size=0.2, key=by_id)
    second = split_dataset(shuffled, dev_size=0.2, test_size=0.2, key=by_id)
    for a, b in zip(first, second, strict=True):
        ids_a = _batched_ids(a, lambda e: e["id"])
        np.testing.assert_array_equal(
            ids_a, np.sort(_batched_ids(b, lambda e: e["id"]))
        )
        np.testing.assert_array_equal(ids_a, np.sort(ids_a))


def test_string_keys_and_ragged_elements():
    names = [f"patient-{i}" for i in range(600)]
    lengths = np.arange(600) % 5
    source = tf.data.Dataset.from_tensor_slices((names, lengths)).map(
        lambda name, k: (name, tf.range(k))  # variable length: per-element path
    )
    parts = split_dataset(
        source, dev_size=0.25, test_size=0.25, key=lambda name, _: name
    )
    seen = [[n.decode() for n, _ in p.as_numpy_iterator()] for p in parts]
    assert sorted(sum(seen, [])) == sorted(names)
    assert all(120 < len(s) for s in seen)
    again = [
        n.decode()
        for n, _ in split_dataset(
            source, dev_size=0.25, test_size=0.25, key=lambda name, _: name
        )[1].as_numpy_iterator()
    ]
    assert again == seen[1]


def test_seed_changes_the_split():
    source = tf.data.Dataset.range(2000)
    a = _ids(split_dataset(source, dev_size=0.1, test_size=0.1, seed=0)[1])
    b = _ids(split_dataset(source, dev_size=0.1, test_size=0.1, seed=1)[1])
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dataset": [1, 2]}, TypeError, r"`dataset`.*Received: dataset=\[1, 2\]"),
        ({"dev_size": 0.0}, ValueError, r"`dev_size`.*dev_size=0.0"),
        ({"test_size": 1.5}, ValueError, r"`test_size`.*test_size=1.5"),
        ({"dev_size": -0.1}, ValueError, r"dev_size=-0.1"),
        ({"dev_size": 0.5, "test_size": 0.5}, ValueError, r"less than 1"),
        ({"key": "id"}, TypeError, r"`key`.*key='id'"),
        ({"seed": -1}, ValueError, r"seed=-1"),
        ({"key": lambda e: tf.cast(e, "float32")}, TypeError, r"`key`.*float32"),
        ({"key": lambda e: tf.stack([e, e])}, TypeError, r"`key`.*scalar.*\(2,\)"),
        ({"batch_size": 0}, ValueError, r"`batch_size`.*batch_size=0"),
        ({"batch_size": 8.0}, TypeError, r"`batch_size`.*batch_size=8.0"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {
        "dataset": tf.data.Dataset.range(10),
        "dev_size": 0.1,
        "test_size": 0.1,
        **kwargs,
    }
    dataset = arguments.pop("dataset")
    with pytest.raises(error, match=match):
        split_dataset(dataset, **arguments)
