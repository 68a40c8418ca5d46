import math

import keras
import numpy as np
import pytest

from keras_tricks import initializers
from tests.helpers import assert_roundtrip


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize("name", initializers.NAMES)
def test_std_matches_formula(name):
    values = keras.ops.convert_to_numpy(initializers.get(name, seed=1)((512, 512)))
    expected = initializers.expected_std(name, (512, 512))
    assert abs(values.std() / expected - 1) < 0.03
    assert abs(values.mean()) < 0.05 * expected


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("uniform", 1 / math.sqrt(3 * 512)),
        ("gaussian", 1 / 512),
        ("lecun", 1 / math.sqrt(512)),
        ("glorot", math.sqrt(2 / 1024)),
        ("xavier", math.sqrt(2 / 1024)),
        ("he", math.sqrt(2 / 512)),
        ("orthogonal", 1 / math.sqrt(512)),
    ],
)
def test_expected_std_is_the_formula(name, formula):
    assert initializers.expected_std(name, (512, 512)) == pytest.approx(formula)


def test_convolution_fan_in_counts_the_window():
    shape = (3, 3, 64, 32)
    values = keras.ops.convert_to_numpy(initializers.get("he", seed=0)(shape))
    assert values.std() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.03)
    gaussian = keras.ops.convert_to_numpy(initializers.get("gaussian", seed=0)(shape))
    assert gaussian.std() == pytest.approx(1 / (9 * 64), rel=0.03)


def test_uniform_is_bounded_by_one_over_sqrt_fan_in():
    values = keras.ops.convert_to_numpy(initializers.get("uniform", seed=0)((400, 50)))
    assert np.abs(values).max() <= 1 / math.sqrt(400) + 1e-7
    assert np.abs(values).max() > 0.95 / math.sqrt(400)


def test_orthogonal_columns_are_orthonormal():
    w = keras.ops.convert_to_numpy(initializers.get("orthogonal", seed=0)((64, 32)))
    np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-5)


def test_names_are_case_insensitive_and_instances_pass_through():
    assert isinstance(initializers.get("HE"), keras.initializers.HeNormal)
    assert isinstance(initializers.get("xavier"), keras.initializers.GlorotNormal)
    init = keras.initializers.Zeros()
    assert initializers.get(init) is init


def test_seed_makes_values_reproducible():
    a = initializers.get("gaussian", seed=3)((8, 8))
    b = initializers.get("gaussian", seed=3)((8, 8))
    c = initializers.get("gaussian", seed=4)((8, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("bad", ["kaiming", "", 3, None])
def test_unknown_name_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="Invalid value for argument `name`") as err:
        initializers.get(bad)
    for name in initializers.NAMES:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="Received: name="):
        initializers.expected_std(bad, (2, 2))


def test_expected_std_names_are_case_insensitive_like_get():
    assert initializers.expected_std("HE", (8, 4)) == initializers.expected_std(
        "he", (8, 4)
    )


def test_bad_seed_is_a_type_error():
    with pytest.raises(TypeError, match="`seed`.*Received: seed='x'"):
        initializers.InverseFanInNormal(seed="x")


@pytest.mark.jax
def test_inverse_fan_in_normal_config_round_trip():
    init = initializers.InverseFanInNormal(seed=5)
    config = keras.initializers.serialize(init)
    clone = keras.initializers.deserialize(config)
    assert isinstance(clone, initializers.InverseFanInNormal)
    np.testing.assert_array_equal(clone((4, 4)), init((4, 4)))


@pytest.mark.compat
@pytest.mark.parametrize("name", initializers.NAMES)
def test_model_with_named_initializer_round_trips(name, tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, kernel_initializer=initializers.get(name, seed=2)),
        ]
    )
    loaded = assert_roundtrip(model, rng.normal(size=(3, 6)), tmp_path)
    assert type(loaded.layers[0].kernel_initializer) is type(
        model.layers[0].kernel_initializer
    )


@pytest.mark.compat
@pytest.mark.xla
def test_trains_with_jit_compile(rng):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                8,
                activation="tanh",
                kernel_initializer=initializers.get("gaussian", seed=0),
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse", jit_compile=True)
    history = model.fit(
        rng.normal(size=(32, 4)), rng.normal(size=(32, 1)), epochs=2, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
