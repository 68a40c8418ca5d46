import keras
import numpy as np
import pytest

from keras_tricks.diagnostics import layer_stats


def _model(activations):
    return keras.Sequential(
        [keras.Input((10,))]
        + [keras.layers.Dense(12, activation=a) for a in activations]
    )


def _numpy_outputs(model, x):
    functions = {
        "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
        "relu": lambda z: np.maximum(z, 0),
        "linear": lambda z: z,
    }
    h, outputs = np.asarray(x, "float64"), []
    for layer in model.layers:
        kernel, bias = (np.asarray(w, "float64") for w in layer.get_weights())
        h = functions[layer.activation.__name__](h @ kernel + bias)
        outputs.append(h)
    return outputs


@pytest.mark.compat
@pytest.mark.jax
def test_statistics_match_numpy(rng):
    model = _model(["tanh", "sigmoid", "relu", "linear"])
    for layer in model.layers:
        layer.kernel.assign(rng.normal(scale=2.0, size=layer.kernel.shape))
    x = rng.normal(size=(200, 10))
    report = layer_stats(model, x)
    for row, h in zip(report, _numpy_outputs(model, x), strict=True):
        assert row["mean"] == pytest.approx(h.mean(), abs=1e-5)
        assert row["std"] == pytest.approx(h.std(), rel=1e-5)
    tanh, sigmoid, relu, linear = (report[i] for i in range(4))
    outputs = _numpy_outputs(model, x)
    assert tanh["saturated"] == pytest.approx(
        np.mean(np.abs(outputs[0]) > 0.99), abs=1e-3
    )
    sig = outputs[1]
    assert sigmoid["saturated"] == pytest.approx(
        np.mean((sig > 0.99) | (sig < 0.01)), abs=1e-3
    )
    assert relu["dead"] == pytest.approx(np.mean(np.all(outputs[2] == 0, axis=0)))
    assert linear["saturated"] is None and linear["dead"] is None


def test_dead_units_are_counted():
    model = _model(["relu"])
    kernel = np.ones((10, 12), "float32")
    kernel[:, :3] = -1.0
    model.layers[0].kernel.assign(kernel)
    report = layer_stats(model, np.abs(np.random.default_rng(1).normal(size=(50, 10))))
    assert report[0]["dead"] == pytest.approx(3 / 12)


@pytest.mark.jax
def test_gradient_norm_matches_the_formula(rng):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    kernel, bias = model.get_weights()
    residual = x @ kernel + bias - y
    expected = 2 * x.T @ residual / residual.size
    report = layer_stats(model, x, y)
    assert report[0]["grad_norm"] == pytest.approx(np.linalg.norm(expected), rel=1e-4)


def test_no_gradient_column_without_targets(rng):
    report = layer_stats(_model(["tanh"]), rng.normal(size=(4, 10)))
    assert "grad_norm" not in report.columns


def test_targets_need_a_compiled_model(rng):
    with pytest.raises(ValueError, match="`y`.*compile"):
        layer_stats(_model(["tanh"]), rng.normal(size=(4, 10)), np.zeros((4, 12)))


def test_bad_batch(rng):
    with pytest.raises(ValueError, match="`x`"):
        layer_stats(_model(["tanh"]), np.zeros((0, 10)))
