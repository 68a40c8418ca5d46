import math

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import EarlyStopping

VAL = [1.0, 0.8, 0.7, 0.65, 0.66, 0.64, 0.7, 0.67, 0.72, 0.8, 0.9, 0.85, 0.95, 1.0]
VAL += [1.05, 1.1, 1.2, 1.15, 1.3, 1.4]
TRAIN = [1.0 / (1 + 0.5 * t) for t in range(len(VAL))]


def _model():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


def _feed(callback, val, train=None, monitor="val_loss", rows=None):
    """Calls the hooks with made-up logs; returns the epoch training stopped.

    Each epoch's logs (after the callback wrote into them) go into `rows`.
    """
    model = _model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(val):
        logs = {monitor: value, "loss": (train or TRAIN)[epoch]}
        callback.on_epoch_end(epoch, logs)
        if rows is not None:
            rows.append(logs)
        if getattr(model, "stop_training", False):
            return epoch
    return None


def _reference_gl(val, alpha):
    for t in range(len(val)):
        if 100 * (val[t] / min(val[: t + 1]) - 1) > alpha:
            return t
    return None


def _reference_pq(val, train, alpha, k):
    for t in range(k, len(val) + 1, k):  # t is 1-based: strip ends
        gl = 100 * (val[t - 1] / min(val[:t]) - 1)
        strip = np.array(train[t - k : t])
        progress = 1000 * (strip.sum() / (k * strip.min()) - 1)
        if gl / progress > alpha:
            return t - 1
    return None


def _reference_up(val, s, k):
    rises = 0
    for t in range(2 * k, len(val) + 1, k):
        rises = rises + 1 if val[t - 1] > val[t - 1 - k] else 0
        if rises >= s:
            return t - 1
    return None


@pytest.mark.parametrize("alpha", [0.5, 5.0, 20.0, 60.0, 500.0])
def test_gl_stops_at_reference_epoch(alpha):
    stopper = EarlyStopping(criterion="gl", alpha=alpha, restore_best_weights=False)
    assert _feed(stopper, VAL) == _reference_gl(VAL, alpha)


def test_gl_hand_computed():
    # E_opt = 0.64 at epoch 5; epoch 6: 100 * (0.7 / 0.64 - 1) = 9.4 > 5.
    assert _feed(EarlyStopping(criterion="gl", alpha=5.0), VAL) == 6


def test_pq_hand_computed():
    # Strip ends t = 5, 10, 15, 20 (epochs 4, 9, 14, 19). At t = 20:
    # GL = 100 * (1.4 / 0.64 - 1) = 118.75; the train strip 1 / (1 + t / 2),
    # t = 15..19, gives P_5 = 1000 * (0.5292 / (5 * 0.09524) - 1) = 111.4;
    # PQ = 1.066 > 0.5. Earlier strip ends give PQ = 0.002, 0.098, 0.414.
    assert _feed(EarlyStopping(criterion="pq", alpha=0.5), VAL) == 19


def test_up_hand_computed():
    # Strip ends t = 5, 10 (epochs 4, 9): E_va rose from 0.66 to 0.8.
    assert _feed(EarlyStopping(criterion="up", alpha=1), VAL) == 9


@pytest.mark.parametrize(("alpha", "k"), [(0.05, 5), (0.5, 5), (0.2, 3), (2.0, 2)])
def test_pq_stops_at_reference_epoch(alpha, k):
    stopper = EarlyStopping(criterion="pq", alpha=alpha, strip_length=k)
    expected = _reference_pq(VAL, TRAIN, alpha, k)
    assert expected is not None or alpha == 2.0
    assert _feed(stopper, VAL) == expected


@pytest.mark.parametrize(("s", "k"), [(1, 5), (2, 5), (1, 3), (2, 2), (3, 2)])
def test_up_stops_at_reference_epoch(s, k):
    stopper = EarlyStopping(criterion="up", alpha=s, strip_length=k)
    assert _feed(stopper, VAL) == _reference_up(VAL, s, k)


@pytest.mark.parametrize(
    ("patience", "min_delta", "baseline", "start"),
    [
        (0, 0, None, 0),
        (2, 0, None, 0),
        (3, 0.02, None, 0),
        (1, 0, 0.6, 0),
        (2, 0, None, 4),
    ],
)
def test_patience_matches_keras(patience, min_delta, baseline, start):
    kwargs = dict(
        patience=patience,
        min_delta=min_delta,
        baseline=baseline,
        start_from_epoch=start,
    )
    ours = _feed(EarlyStopping(**kwargs), VAL)
    keras_stopper = keras.callbacks.EarlyStopping(**kwargs)
    assert ours == _feed(keras_stopper, VAL)


def test_takes_keras_arguments_positionally():
    args = ("val_loss", 0.02, 2, 0, "min", 0.7, False, 1)
    ours = EarlyStopping(*args)
    names = ("monitor", "min_delta", "patience", "verbose", "mode", "baseline")
    names += ("restore_best_weights", "start_from_epoch")
    assert {k: ours.get_config()[k] for k in names} == dict(
        zip(names, args, strict=True)
    )
    assert _feed(ours, VAL) == _feed(keras.callbacks.EarlyStopping(*args), VAL)


def _nan_to_none(values):
    return [None if math.isnan(v) else pytest.approx(v) for v in values]


def test_logs_the_quantities_prechelt_decides_on():
    k, start = 5, 2
    rows = []
    stopper = EarlyStopping(
        criterion="pq", alpha=1e9, strip_length=k, start_from_epoch=start
    )
    assert _feed(stopper, VAL, rows=rows) is None
    val, train = VAL[start:], TRAIN[start:]
    gl = [100 * (v / min(val[: t + 1]) - 1) for t, v in enumerate(val)]
    pk = [math.nan] * len(val)
    for t in range(k, len(val) + 1, k):
        strip = np.array(train[t - k : t])
        pk[t - 1] = 1000 * (strip.sum() / (k * strip.min()) - 1)
    pq = [g / p for g, p in zip(gl, pk, strict=True)]
    for key, expected in (("gl", gl), ("pk", pk), ("pq", pq)):
        logged = [row[key] for row in rows]
        assert _nan_to_none(logged) == [None] * start + _nan_to_none(expected), key


@pytest.mark.parametrize(("s", "k"), [(9, 2), (9, 3)])
def test_logs_the_up_strip_count(s, k):
    rows = []
    _feed(EarlyStopping(criterion="up", alpha=s, strip_length=k), VAL, rows=rows)
    expected, rises = [], 0
    for t in range(1, len(VAL) + 1):
        if t % k == 0 and t > k:
            rises = rises + 1 if VAL[t - 1] > VAL[t - 1 - k] else 0
        expected.append(rises)
    assert [row["up_strips"] for row in rows] == expected
    assert max(expected) >= 2


def test_start_from_epoch_shifts_strips():
    stopper = EarlyStopping(criterion="up", alpha=1, strip_length=2, start_from_epoch=3)
    expected = _reference_up(VAL[3:], 1, 2)
    assert _feed(stopper, VAL) == expected + 3


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_value_stops_and_restores_best(bad):
    model = _model()
    stopper = EarlyStopping(patience=10)
    stopper.set_model(model)
    stopper.on_train_begin()
    best = [w.copy() for w in model.get_weights()]
    stopper.on_epoch_end(0, {"val_loss": 0.5})
    model.layers[0].kernel.assign(np.ones((2, 1)))
    stopper.on_epoch_end(1, {"val_loss": 0.7})
    stopper.on_epoch_end(2, {"val_loss": bad})
    assert model.stop_training and stopper.stop_reason == "nan"
    assert stopper.stopped_epoch == 2
    stopper.on_train_end()
    for actual, expected in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_restores_best_at_epoch_limit_inside_a_jit_compiled_fit(digits):
    (x, y), (x_dev, y_dev) = digits
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(
        keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", jit_compile=True
    )

    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights())
    )
    stopper = EarlyStopping(criterion="gl", alpha=1e6)
    history = model.fit(
        x[:300],
        y[:300],
        validation_data=(x_dev, y_dev),
        epochs=6,
        batch_size=300,
        verbose=0,
        callbacks=[record, stopper],
    )
    assert len(history.history["loss"]) == 6 and stopper.stop_reason is None
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    expected_gl = [100 * (v / min(val[: t + 1]) - 1) for t, v in enumerate(val)]
    np.testing.assert_allclose(history.history["gl"], expected_gl, rtol=1e-6)
    assert stopper.best_epoch == best
    for actual, expected in zip(model.get_weights(), snapshots[best], strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_real_fit_stops_on_overfitting(digits):
    (x, y), (x_dev, y_dev) = digits
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    stopper = EarlyStopping(criterion="gl", alpha=5.0)
    history = model.fit(
        x[:60],
        y[:60],
        validation_data=(x_dev, y_dev),
        epochs=100,
        batch_size=60,
        verbose=0,
        callbacks=[stopper],
    )
    val = history.history["val_loss"]
    assert stopper.stop_reason == "gl"
    assert len(val) - 1 == _reference_gl(val, 5.0) < 99
    best_loss = model.evaluate(x_dev, y_dev, verbose=0)
    assert best_loss == pytest.approx(min(val), rel=1e-4)


def test_prechelt_needs_minimised_monitor():
    stopper = EarlyStopping("val_accuracy", criterion="gl", alpha=1.0)
    with pytest.raises(ValueError, match="defined on an error"):
        _feed(stopper, [0.5, 0.6], monitor="val_accuracy")


def test_missing_monitor_raises_with_available_keys():
    stopper = EarlyStopping("val_error")
    with pytest.raises(ValueError, match="Available metrics are: val_loss,loss"):
        _feed(stopper, [0.5, 0.6], monitor="val_loss")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"criterion": "best"}, ValueError, "Expected one of 'patience', 'gl'"),
        ({"criterion": "gl"}, ValueError, "a threshold > 0 for criterion='gl'"),
        ({"criterion": "pq", "alpha": 0}, ValueError, r"a number in \(0, inf\]"),
        ({"criterion": "gl", "alpha": -1.0}, ValueError, "Received: alpha=-1.0"),
        ({"criterion": "up", "alpha": 0}, ValueError, r"an integer in \[1, inf\]"),
        ({"criterion": "up", "alpha": 1.5}, TypeError, "Expected an integer"),
        ({"alpha": 2.0}, ValueError, "Expected None with criterion='patience'"),
        ({"patience": -1}, ValueError, "Received: patience=-1"),
        ({"strip_length": 0}, ValueError, "Received: strip_length=0"),
        ({"mode": "up"}, ValueError, "Received: mode='up'"),
        ({"monitor": 3}, TypeError, "Expected a metric name"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)
