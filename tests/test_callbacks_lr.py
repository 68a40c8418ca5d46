import keras
import numpy as np
import pytest

from keras_tricks.callbacks import (
    EpochDecay,
    ReduceLROnPlateau,
    ScaledSchedule,
    find_learning_rate,
)
from keras_tricks.callbacks.lr_finder import steepest_descent
from tests.helpers import assert_roundtrip


@keras.saving.register_keras_serializable(package="tests")
class TraceCounter(keras.layers.Layer):
    """Identity layer counting how often its Python `call` runs (= traces)."""

    traces = 0

    def call(self, x):
        TraceCounter.traces += 1
        return x


def _linear(optimizer, jit_compile=False):
    model = keras.Sequential([keras.Input((4,)), TraceCounter(), keras.layers.Dense(1)])
    model.compile(optimizer, "mse", jit_compile=jit_compile)
    return model


def _data(rng, n=32):
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("factor", "min_lr", "start_epoch"),
    [(0.5, 0.0, 0), (0.98, 0.0, 0), (0.5, 0.02, 0), (0.5, 0.0, 2), (1.0, 0.0, 0)],
)
def test_epoch_decay_formula(factor, min_lr, start_epoch, rng):
    model = _linear(keras.optimizers.SGD(0.1))
    x, y = _data(rng)
    history = model.fit(
        x,
        y,
        epochs=5,
        verbose=0,
        callbacks=[EpochDecay(factor, min_lr=min_lr, start_epoch=start_epoch)],
    )
    expected = [max(0.1 * factor ** max(0, t - start_epoch), min_lr) for t in range(5)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    final = max(0.1 * factor ** max(0, 5 - start_epoch), min_lr)
    assert float(model.optimizer.learning_rate) == pytest.approx(final, rel=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_epoch_decay_never_retraces(jit_compile, rng):
    x, y = _data(rng)
    counts = []
    for callbacks, epochs in [([], 1), ([EpochDecay(0.5)], 4)]:
        model = _linear(keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        before = TraceCounter.traces
        model.fit(x, y, epochs=epochs, verbose=0, callbacks=callbacks)
        counts.append(TraceCounter.traces - before)
    assert counts[0] == counts[1]


def test_epoch_decay_changes_the_sgd_step():
    # One weight, loss w^2 / 2 ... as mse of Dense(1, no bias) on x = 1, y = 0:
    # grad = 2 w, so each epoch (one step) multiplies w by (1 - 2 lr_t).
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign([[1.0]])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=3,
        verbose=0,
        callbacks=[EpochDecay(0.5)],
    )
    expected = (1 - 0.2) * (1 - 0.1) * (1 - 0.05)
    assert float(model.layers[0].kernel[0, 0]) == pytest.approx(expected, rel=1e-6)


def test_epoch_decay_through_a_wrapper_optimizer(rng):
    inner = keras.optimizers.SGD(0.1)
    model = _linear(keras.optimizers.LossScaleOptimizer(inner))
    x, y = _data(rng)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochDecay(0.5)])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])
    assert float(inner.learning_rate) == pytest.approx(0.0125)


def test_epoch_decay_under_mirrored_strategy(strategy, rng):
    with strategy.scope():
        model = _linear(keras.optimizers.SGD(0.1))
    x, y = _data(rng)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochDecay(0.5)])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])


def test_epoch_decay_rejects_a_schedule(rng):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = _linear(keras.optimizers.SGD(schedule))
    with pytest.raises(TypeError, match="LearningRateSchedule.*ExponentialDecay"):
        model.fit(*_data(rng), epochs=1, verbose=0, callbacks=[EpochDecay()])


@pytest.mark.parametrize(
    ("factor", "error", "match"),
    [
        (0.0, ValueError, r"Expected a number in \(0, 1\]. Received: factor=0.0"),
        (1.5, ValueError, "Received: factor=1.5"),
        (-0.5, ValueError, "Received: factor=-0.5"),
        ("0.9", TypeError, "Expected a number"),
    ],
)
def test_epoch_decay_bad_factor(factor, error, match):
    with pytest.raises(error, match=match):
        EpochDecay(factor)


def test_epoch_decay_bad_min_lr():
    with pytest.raises(ValueError, match="Received: min_lr=-1"):
        EpochDecay(min_lr=-1)


# ReduceLROnPlateau --------------------------------------------------------


def _feed(callback, model, values):
    callback.set_model(model)
    callback.on_train_begin()
    lrs = []
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        lrs.append(float(model.optimizer.learning_rate))
    return lrs


CURVE = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5, "patience": 1},
        {"factor": 0.5, "patience": 2, "cooldown": 2},
        {"factor": 0.1, "patience": 0, "min_lr": 0.004},
        {"factor": 0.5, "patience": 1, "min_delta": 0.12},
    ],
)
def test_reduce_matches_keras_on_a_float_lr(kwargs, rng):
    ours = _feed(ReduceLROnPlateau(**kwargs), _linear(keras.optimizers.SGD(0.1)), CURVE)
    theirs = _feed(
        keras.callbacks.ReduceLROnPlateau(**kwargs),
        _linear(keras.optimizers.SGD(0.1)),
        CURVE,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[-1] < 0.1


def _warmup_cosine():
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=40, warmup_target=0.1, warmup_steps=8
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_reduce_scales_a_schedule(jit_compile, rng):
    schedule = _warmup_cosine()
    model = _linear(keras.optimizers.SGD(schedule), jit_compile=jit_compile)
    x, y = _data(rng)
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    before = TraceCounter.traces
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[reduce])
    # Every epoch after the first counts as a plateau (min_delta is huge): the
    # factor during epoch t is 0.5 ** (t - 1); 4 steps per epoch were taken.
    steps = np.arange(1, 5) * 4
    factors = [1.0, 1.0, 0.5, 0.25]
    expected = [float(schedule(s)) * f for f, s in zip(factors, steps, strict=True)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-5)
    assert reduce.scale == 0.125
    assert TraceCounter.traces - before <= 2  # traced once (plus the last batch)


def test_reduce_schedule_respects_min_lr():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.9)
    scaled = ScaledSchedule(schedule, factor=1e-3, min_lr=0.01)
    assert float(scaled(0)) == pytest.approx(0.01)
    small = ScaledSchedule(keras.optimizers.schedules.ExponentialDecay(0.005, 10, 0.5))
    small.factor.assign(0.5)
    low = ScaledSchedule(small.schedule, 0.5, min_lr=0.01)
    assert float(low(0)) == pytest.approx(0.005)


def test_reduce_schedule_through_wrapper_and_save(tmp_path, rng):
    inner = keras.optimizers.SGD(_warmup_cosine())
    model = _linear(keras.optimizers.LossScaleOptimizer(inner))
    x, y = _data(rng)
    model.fit(x, y, epochs=1, verbose=0)  # traced before the wrapper exists
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[reduce])
    lrs = history.history["learning_rate"]
    assert lrs[2] == pytest.approx(0.5 * float(_warmup_cosine()(1 + 12)), rel=1e-5)
    assert isinstance(inner._learning_rate, ScaledSchedule)
    loaded = assert_roundtrip(model, x, tmp_path)
    restored = loaded.optimizer.inner_optimizer._learning_rate
    assert float(restored.factor) == pytest.approx(0.25)


def test_reduce_schedule_under_mirrored_strategy(strategy, rng):
    with strategy.scope():
        model = _linear(keras.optimizers.SGD(_warmup_cosine()))
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    history = model.fit(
        *_data(rng), epochs=3, batch_size=8, verbose=0, callbacks=[reduce]
    )
    assert history.history["learning_rate"][2] == pytest.approx(
        0.5 * float(_warmup_cosine()(12)), rel=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factor": 1.0}, r"Expected a number in \(0, 1\). Received: factor=1.0"),
        ({"factor": 0.0}, "Received: factor=0.0"),
        ({"mode": "up"}, "Received: mode='up'"),
        ({"patience": -2}, "Received: patience=-2"),
    ],
)
def test_reduce_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)


def test_reduce_warns_on_missing_monitor():
    reduce = ReduceLROnPlateau("val_acc", mode="max")
    with pytest.warns(UserWarning, match="`val_acc`.*Available metrics are: val_loss"):
        _feed(reduce, _linear(keras.optimizers.SGD(0.1)), [1.0])


# find_learning_rate -------------------------------------------------------


def _mlp(optimizer):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_range_test_restores_model_and_optimizer_exactly(digits):
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


def test_range_test_sweep_and_smoothing(digits):
    (x, y), _ = digits
    result = find_learning_rate(
        _mlp(keras.optimizers.SGD()),
        x,
        y,
        min_lr=1e-4,
        max_lr=1e-1,
        steps=20,
        stop_factor=1e9,
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


def test_range_test_stops_when_loss_explodes(digits):
    (x, y), _ = digits
    result = find_learning_rate(
        _mlp(keras.optimizers.SGD()), x, y, min_lr=1e-3, max_lr=1e4, steps=60
    )
    assert len(result.lrs) < 60
    assert result.losses[-1] > 4 * result.losses.min() or len(result.lrs) < 60


def test_suggestion_trains_digits(digits):
    (x, y), (x_dev, y_dev) = digits
    keras.utils.set_random_seed(1)
    model = _mlp(keras.optimizers.SGD())
    result = find_learning_rate(model, x, y, min_lr=1e-5, max_lr=10.0, steps=100)
    model.optimizer.learning_rate = result.suggestion
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
    assert accuracy >= 0.9, result


def test_range_test_plot(digits):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    (x, y), _ = digits
    result = find_learning_rate(_mlp(keras.optimizers.SGD()), x, y, steps=10)
    ax = result.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) >= 1


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
def test_range_test_bad_arguments(kwargs, error, match, rng):
    model = _linear(keras.optimizers.SGD())
    with pytest.raises(error, match=match):
        find_learning_rate(model, *_data(rng), **kwargs)


def test_range_test_needs_compiled_model_and_float_lr(rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        find_learning_rate(model, *_data(rng))
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(TypeError, match="find_learning_rate sets the learning rate"):
        find_learning_rate(_linear(keras.optimizers.SGD(schedule)), *_data(rng))


def test_suggestion_ignores_the_noisy_start_of_the_sweep():
    lrs = np.logspace(-5, 0, 30)
    losses = np.full(30, 2.3)
    losses[1:] = 2.2
    losses[15:25] = 2.2 - 0.1 * np.arange(1, 11)
    losses[25:] = 3.0
    assert lrs[14] <= steepest_descent(lrs, losses) <= lrs[24]
