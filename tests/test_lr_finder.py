import importlib
import sys

import keras
import numpy as np
import pytest

from keras_tricks.lr_finder import LRFinderResult, find_learning_rate, steepest_descent
from tests.callbacks.helpers import linear_data, linear_model


def _mlp(optimizer, jit_compile=False):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def test_restores_model_and_optimizer_exactly(digits):
    (x, y), _ = digits
    model = _mlp(keras.optimizers.Adam(1e-3))
    model.fit(x[:256], y[:256], epochs=1, verbose=0)  # non-zero moments
    weights = model.get_weights()
    state = [np.array(v) for v in model.optimizer.variables]
    result = find_learning_rate(model, x, y, steps=30, max_lr=1.0)
    assert len(result.lrs) >= 10
    for actual, expected in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(actual, expected)
    for actual, expected in zip(model.optimizer.variables, state, strict=True):
        np.testing.assert_array_equal(np.array(actual), expected)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_sweep_and_smoothing(digits):
    (x, y), _ = digits
    model = _mlp(keras.optimizers.SGD(), jit_compile=True)
    result = find_learning_rate(
        model, x, y, min_lr=1e-4, max_lr=1e-1, steps=20, stop_factor=1e9
    )
    np.testing.assert_allclose(result.lrs, 1e-4 * 1000 ** (np.arange(20) / 19))
    weights = 0.02 * 0.98 ** np.arange(19, -1, -1)
    expected_last = (weights * result.raw_losses).sum() / (1 - 0.98**20)
    assert result.losses[-1] == pytest.approx(expected_last, rel=1e-6)
    end = np.argmin(result.losses) + 1
    end = end if end >= 3 else len(result.losses)
    start = min(2, end - 3)
    slopes = np.gradient(result.losses[start:end], np.log(result.lrs[start:end]))
    assert result.suggestion == result.lrs[start + np.argmin(slopes)]


def test_stops_when_loss_explodes(digits):
    (x, y), _ = digits
    result = find_learning_rate(
        _mlp(keras.optimizers.SGD()), x, y, min_lr=1e-3, max_lr=1e4, steps=60
    )
    assert len(result.lrs) < 60
    assert result.losses[-1] > 4 * result.losses.min() or len(result.lrs) < 60


def test_applied_suggestion_trains_digits(digits):
    (x, y), (x_dev, y_dev) = digits
    keras.utils.set_random_seed(1)
    model = _mlp(keras.optimizers.SGD())
    result = find_learning_rate(model, x, y, min_lr=1e-5, max_lr=10.0, steps=100)
    assert result.apply(model) == result.suggestion
    assert float(model.optimizer.learning_rate) == pytest.approx(result.suggestion)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
    assert accuracy >= 0.9, result


def _result():
    """A sweep that descends, bottoms out at lrs[6] and diverges."""
    lrs = np.logspace(-4, 0, 9)
    losses = [2.3, 2.3, 2.2, 1.8, 1.2, 0.9, 0.8, 1.5, 40.0]
    return LRFinderResult(lrs, losses, raw_losses=losses)


def test_apply_sets_the_rate_through_a_wrapper():
    inner = keras.optimizers.SGD(0.5)
    model = linear_model(keras.optimizers.LossScaleOptimizer(inner))
    result = _result()
    assert result.apply(model) == result.lrs[3]
    assert float(inner.learning_rate) == pytest.approx(result.lrs[3])


def test_apply_without_a_suggestion_or_a_compiled_model():
    short = LRFinderResult([1e-3, 1e-2], [1.0, 0.9], [1.0, 0.9])
    assert short.suggestion is None
    with pytest.raises(ValueError, match="made no suggestion"):
        short.apply(linear_model(keras.optimizers.SGD()))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        _result().apply(model)


def test_plot_trims_the_divergent_tail_and_labels_the_suggestion():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    result = _result()
    ax = result.plot()
    low, high = ax.get_ylim()
    # The y-range covers the descent (2.3 .. 0.8) with a 5% margin, not 40.
    assert (low, high) == pytest.approx((0.8 - 0.075, 2.3 + 0.075))
    assert ax.get_xscale() == "log"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["smoothed loss", "suggestion: lr = 0.00316"]
    marker = ax.lines[-1]
    assert marker.get_xdata()[0] == result.suggestion
    assert marker.get_ydata()[0] == 1.8
    assert [t.get_text() for t in ax.texts] == ["0.00316"]


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "keras-tricks\[lab\]"'):
        _result().plot()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, ValueError, "a rate below max_lr=0.1"),
        ({"steps": 1}, ValueError, "Received: steps=1"),
        ({"min_lr": 0.0}, ValueError, "Received: min_lr=0.0"),
        ({"stop_factor": 1.0}, ValueError, "Received: stop_factor=1.0"),
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
    ],
)
def test_bad_arguments(kwargs, error, match, rng):
    model = linear_model(keras.optimizers.SGD())
    with pytest.raises(error, match=match):
        find_learning_rate(model, *linear_data(rng), **kwargs)


def test_needs_compiled_model_and_float_lr(rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        find_learning_rate(model, *linear_data(rng))
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(TypeError, match="find_learning_rate sets the learning rate"):
        find_learning_rate(
            linear_model(keras.optimizers.SGD(schedule)), *linear_data(rng)
        )


def test_suggestion_ignores_the_noisy_start_of_the_sweep():
    lrs = np.logspace(-5, 0, 30)
    losses = np.full(30, 2.3)
    losses[1:] = 2.2
    losses[15:25] = 2.2 - 0.1 * np.arange(1, 11)
    losses[25:] = 3.0
    assert lrs[14] <= steepest_descent(lrs, losses) <= lrs[24]


def test_old_import_paths_keep_working():
    from keras_tricks.callbacks import LRFinderResult as Reexported
    from keras_tricks.callbacks import find_learning_rate as reexported

    assert Reexported is LRFinderResult and reexported is find_learning_rate
    sys.modules.pop("keras_tricks.callbacks.lr_finder", None)
    with pytest.warns(DeprecationWarning, match="import from keras_tricks.lr_finder"):
        old = importlib.import_module("keras_tricks.callbacks.lr_finder")
    assert old.find_learning_rate is find_learning_rate
