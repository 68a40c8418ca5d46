import keras
import numpy as np
import pytest

from keras_tricks.callbacks import ReduceLROnPlateau, ScaledSchedule
from tests.callbacks.helpers import TraceCounter, feed, linear_data, linear_model
from tests.helpers import assert_roundtrip

CURVE = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89]


@pytest.mark.jax
@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5, "patience": 1},
        {"factor": 0.5, "patience": 2, "cooldown": 2},
        {"factor": 0.1, "patience": 0, "min_lr": 0.004},
        {"factor": 0.5, "patience": 1, "min_delta": 0.12},
    ],
)
def test_matches_keras_on_a_float_lr(kwargs):
    ours = feed(
        ReduceLROnPlateau(**kwargs), linear_model(keras.optimizers.SGD(0.1)), CURVE
    )
    theirs = feed(
        keras.callbacks.ReduceLROnPlateau(**kwargs),
        linear_model(keras.optimizers.SGD(0.1)),
        CURVE,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[-1] < 0.1


def test_takes_keras_arguments_positionally():
    args = ("val_loss", 0.5, 2, 0, "min", 0.01, 1, 0.02)
    ours = ReduceLROnPlateau(*args)
    names = ("monitor", "factor", "patience", "verbose", "mode", "min_delta")
    names += ("cooldown", "min_lr")
    assert ours.get_config() == dict(zip(names, args, strict=True))
    theirs = keras.callbacks.ReduceLROnPlateau(*args)
    np.testing.assert_allclose(
        feed(ours, linear_model(keras.optimizers.SGD(0.1)), CURVE),
        feed(theirs, linear_model(keras.optimizers.SGD(0.1)), CURVE),
    )


@pytest.mark.parametrize("cooldown", [0, 2])
def test_stops_at_the_float32_floor_like_keras(cooldown, capsys):
    # Issue 12.11: 0.01 * 0.1 is stored as float32 0.0010000000474974513, above
    # the float64 min_lr=0.001; Keras compares with np.float32(min_lr).
    kwargs = {"factor": 0.1, "patience": 0, "min_lr": 0.001, "cooldown": cooldown}
    flat = [1.0] * 8
    ours = ReduceLROnPlateau(verbose=1, **kwargs)
    theirs = keras.callbacks.ReduceLROnPlateau(**kwargs)
    counters = []
    for callback in (ours, theirs):
        model = linear_model(keras.optimizers.SGD(0.01))
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, value in enumerate(flat):
            callback.on_epoch_end(epoch, {"val_loss": value})
            counters.append((callback.cooldown_counter, callback.wait))
        assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert counters[: len(flat)] == counters[len(flat) :]
    assert capsys.readouterr().out.count("reducing") == 1


def _multi_model(body_lr, head_lr):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, name="body"), keras.layers.Dense(1)]
    )
    mapping = keras.optimizers.OptimizerMap(
        default_optimizer=keras.optimizers.SGD(head_lr, name="head_sgd")
    )
    mapping["^body/.*"] = keras.optimizers.SGD(body_lr, name="body_sgd")
    model.compile(keras.optimizers.MultiOptimizer(mapping), "mse")
    return model


def _multi_rates(callback, model):
    callback.set_model(model)
    callback.on_train_begin()
    rows = []
    for epoch, value in enumerate(CURVE):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        rows.append(logs)
    return rows


def test_reduces_every_sub_optimizer_of_a_multi_optimizer_like_keras():
    # Issue 12.10: Keras 3.15 reduces each sub-optimizer (down to min_lr) and
    # logs learning_rate_<name>; ours raised AttributeError.
    kwargs = {"factor": 0.5, "patience": 1, "min_lr": 0.02}
    ours = _multi_rates(ReduceLROnPlateau(**kwargs), _multi_model(0.1, 0.03))
    theirs = _multi_rates(
        keras.callbacks.ReduceLROnPlateau(**kwargs), _multi_model(0.1, 0.03)
    )
    assert ours == theirs
    # Each sub-optimizer halves until it reaches min_lr, on its own.
    body = [row["learning_rate_body_sgd"] for row in ours]
    head = [row["learning_rate_head_sgd"] for row in ours]
    np.testing.assert_allclose(body[2:6], [0.1, 0.05, 0.025, 0.02])
    np.testing.assert_allclose(head[2:4], [0.03, 0.02])


def test_multi_optimizer_with_a_schedule_inside_fit(rng):
    x, y = linear_data(rng)
    model = _multi_model(0.1, _warmup_cosine())
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e3)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[reduce])
    factors = [1.0, 1.0, 0.5]
    np.testing.assert_allclose(
        history.history["learning_rate_body_sgd"], [0.1, 0.1, 0.05], rtol=1e-6
    )
    np.testing.assert_allclose(
        history.history["learning_rate_head_sgd"],
        [float(_warmup_cosine()(4 * (t + 1))) * f for t, f in enumerate(factors)],
        rtol=1e-5,
    )


def _warmup_cosine():
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=40, warmup_target=0.1, warmup_steps=8
    )


@pytest.mark.parametrize(
    "jit_compile", [False, pytest.param(True, marks=pytest.mark.jax)]
)
def test_scales_a_schedule(jit_compile, rng):
    schedule = _warmup_cosine()
    model = linear_model(keras.optimizers.SGD(schedule), jit_compile=jit_compile)
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e3)
    before = TraceCounter.traces
    history = model.fit(
        *linear_data(rng), epochs=4, batch_size=8, verbose=0, callbacks=[reduce]
    )
    # Every epoch after the first is a plateau (min_delta is above the loss): the
    # factor during epoch t is 0.5 ** (t - 1); 4 steps per epoch were taken.
    steps = np.arange(1, 5) * 4
    factors = [1.0, 1.0, 0.5, 0.25]
    expected = [float(schedule(s)) * f for f, s in zip(factors, steps, strict=True)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-5)
    assert reduce.scale == 0.125
    assert TraceCounter.traces - before <= 2  # traced once (plus the last batch)


def test_schedule_respects_min_lr():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.9)
    scaled = ScaledSchedule(schedule, factor=1e-3, min_lr=0.01)
    assert float(scaled(0)) == pytest.approx(0.01)
    small = ScaledSchedule(keras.optimizers.schedules.ExponentialDecay(0.005, 10, 0.5))
    small.factor.assign(0.5)
    low = ScaledSchedule(small.schedule, 0.5, min_lr=0.01)
    assert float(low(0)) == pytest.approx(0.005)


@pytest.mark.compat
def test_schedule_through_wrapper_and_save(tmp_path, rng):
    inner = keras.optimizers.SGD(_warmup_cosine())
    model = linear_model(keras.optimizers.LossScaleOptimizer(inner))
    x, y = linear_data(rng)
    model.fit(x, y, epochs=1, verbose=0)  # traced before the wrapper exists
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e3)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[reduce])
    lrs = history.history["learning_rate"]
    assert lrs[2] == pytest.approx(0.5 * float(_warmup_cosine()(1 + 12)), rel=1e-5)
    assert isinstance(inner._learning_rate, ScaledSchedule)
    loaded = assert_roundtrip(model, x, tmp_path)
    restored = loaded.optimizer.inner_optimizer._learning_rate
    assert float(restored.factor) == pytest.approx(0.25)


def test_schedule_under_mirrored_strategy(strategy, rng):
    with strategy.scope():
        model = linear_model(keras.optimizers.SGD(_warmup_cosine()))
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e3)
    history = model.fit(
        *linear_data(rng), epochs=3, batch_size=8, verbose=0, callbacks=[reduce]
    )
    assert history.history["learning_rate"][2] == pytest.approx(
        0.5 * float(_warmup_cosine()(12)), rel=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"factor": 1.0},
            ValueError,
            r"Expected a number in \(0, 1\). Received: factor=1.0",
        ),
        ({"factor": 0.0}, ValueError, "Received: factor=0.0"),
        ({"mode": "up"}, ValueError, "Received: mode='up'"),
        ({"patience": -2}, ValueError, "Received: patience=-2"),
        ({"monitor": None}, TypeError, "Expected a metric name"),
        ({"min_lr": -0.1}, ValueError, "Received: min_lr=-0.1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReduceLROnPlateau(**kwargs)


def test_warns_on_missing_monitor():
    reduce = ReduceLROnPlateau("val_acc", mode="max")
    with pytest.warns(UserWarning, match="`val_acc`.*Available metrics are: val_loss"):
        feed(reduce, linear_model(keras.optimizers.SGD(0.1)), [1.0])
