import keras
import numpy as np
import pytest

from keras_tricks.initializers import lsuv_initialize


def _mlp(depth=6, width=32, activation="tanh"):
    return keras.Sequential(
        [keras.Input((16,))]
        + [keras.layers.Dense(width, activation=activation) for _ in range(depth)]
        + [keras.layers.Dense(3)]
    )


def _numpy_pre_activations(model, x):
    """Independent forward pass of a Dense-only Sequential model in NumPy."""
    activations = {
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0),
        "linear": lambda z: z,
    }
    h, pres = np.asarray(x, "float64"), []
    for layer in model.layers:
        kernel, bias = (np.asarray(w, "float64") for w in layer.get_weights())
        z = h @ kernel + bias
        pres.append(z)
        h = activations[layer.activation.__name__](z)
    return pres


@pytest.mark.parametrize(
    ("activation", "target_std", "depth"),
    [
        ("tanh", 1.0, 6),
        ("tanh", 0.5, 6),
        ("relu", 1.0, 6),
        pytest.param("relu", 0.5, 2, marks=pytest.mark.jax),
    ],
)
def test_every_layer_reaches_target_std(activation, target_std, depth, rng):
    model = _mlp(depth=depth, activation=activation)
    x = rng.normal(size=(256, 16))
    report = lsuv_initialize(model, x, target_std=target_std, tol=0.02, seed=0)
    assert [row["layer"] for row in report] == [layer.name for layer in model.layers]
    for row, z in zip(report, _numpy_pre_activations(model, x), strict=True):
        assert abs(z.std() - target_std) <= 0.02
        assert row["final_std"] == pytest.approx(z.std(), rel=1e-4)
        assert row["converged"]


def test_orthonormal_start(rng):
    model = _mlp(depth=2, width=16)
    lsuv_initialize(model, rng.normal(size=(64, 16)), tol=10.0, seed=0)
    kernel = model.layers[0].kernel.numpy()
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(16), atol=1e-5)


def test_functional_conv_model_skips_layers_without_kernels(rng):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dropout(0.5)(h)
    outputs = keras.layers.Dense(10)(h)
    model = keras.Model(inputs, outputs)
    report = lsuv_initialize(model, rng.normal(size=(128, 8, 8, 1)), seed=0)
    assert [row["layer"] for row in report] == [
        model.layers[1].name,
        model.layers[-1].name,
    ]
    assert all(abs(row["final_std"] - 1.0) <= 0.05 for row in report)


def test_nested_and_unbuilt_models(rng):
    inner = keras.Sequential(
        [
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(8, activation="tanh"),
        ]
    )
    model = keras.Sequential([inner, keras.layers.Dense(2)])
    report = lsuv_initialize(model, rng.normal(size=(100, 5)), seed=0)
    assert len(report) == 3
    assert all(row["converged"] for row in report)


def test_report_prints_and_converts(rng):
    report = lsuv_initialize(_mlp(depth=2), rng.normal(size=(64, 16)), seed=0)
    text = str(report)
    assert "final_std" in text and report[0]["layer"] in text
    assert set(report.to_dict()) == {row["layer"] for row in report}


def test_seed_makes_it_deterministic(rng):
    x = rng.normal(size=(64, 16))
    a, b = _mlp(depth=2), _mlp(depth=2)
    lsuv_initialize(a, x, seed=7)
    lsuv_initialize(b, x, seed=7)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tol": 0}, ValueError, "`tol`.*Received: tol=0"),
        ({"tol": -1.0}, ValueError, "`tol`"),
        ({"target_std": 0.0}, ValueError, "`target_std`"),
        ({"max_iters": 0}, ValueError, "`max_iters`"),
        ({"max_iters": 2.5}, TypeError, "`max_iters`"),
    ],
)
def test_bad_arguments(kwargs, error, message, rng):
    with pytest.raises(error, match=message):
        lsuv_initialize(_mlp(depth=1), rng.normal(size=(8, 16)), **kwargs)


def test_bad_batches(rng):
    model = _mlp(depth=1)
    with pytest.raises(ValueError, match="`x`.*non-empty"):
        lsuv_initialize(model, np.zeros((0, 16)))
    with pytest.raises(ValueError, match="`x`.*rank 2"):
        lsuv_initialize(model, rng.normal(size=(8, 4, 4)))
    with pytest.raises(TypeError, match="`x`"):
        lsuv_initialize(model, [[1.0] * 16])


@pytest.mark.compat
@pytest.mark.jax
def test_nan_rows_are_named_and_the_kernels_left_unchanged(rng):
    """Before: LSUV measured a NaN std, stopped, and silently left every
    layer with its unscaled orthonormal start."""
    model = _mlp(depth=2)
    x = rng.normal(size=(64, 16))
    x[3, 2], x[40, 0] = np.nan, -np.inf
    model(x[:1])
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"`x`.*finite.*Rows 3, 40 hold NaN"):
        lsuv_initialize(model, x)
    for ours, theirs in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_layer_with_non_finite_output_is_named_and_nothing_changes(rng):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4, name="first")(inputs)
    h = keras.layers.Lambda(lambda t: t * np.inf)(h)  # inf, or NaN for 0
    outputs = keras.layers.Dense(2, name="second")(h)
    model = keras.Model(inputs, outputs)
    before = model.get_weights()
    with pytest.raises(ValueError, match="layer 'second' holds NaN or Inf"):
        lsuv_initialize(model, rng.normal(size=(32, 4)))
    for ours, theirs in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(ours, theirs)
