"""EarlyStopping's Lightning options; one-element and missing monitored values.

Expected stopping epochs come from PyTorch Lightning's definition
(`EarlyStopping._evaluate_stopping_criteria`): a non-finite value stops
first, then a value strictly better than `stopping_threshold`, then one
strictly worse than `divergence_threshold`, then the patience rule.
"""

import copy
import math
import warnings

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import EarlyStopping, ReduceLROnPlateau

from .helpers import feed, linear_model

VAL = [1.0, 0.8, 0.6, 0.5, 0.45, 0.3, 0.35, 0.5, 0.9, 1.4, 2.5, 3.0]


def _feed(callback, values, monitor="val_loss", extra=None):
    """Calls the hooks with made-up logs; returns the epoch training stopped."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value, "loss": 1.0, **(extra or {})})
        if model.stop_training:
            return epoch
    return None


def _lightning(values, mode, stop=None, diverge=None, patience=100):
    """`(epoch, reason)` of Lightning's rule (min_delta 0, check_finite on)."""
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    best, wait = (math.inf if mode == "min" else -math.inf), 0
    for epoch, value in enumerate(values):
        if not math.isfinite(value):
            return epoch, "nan"
        if stop is not None and better(value, stop):
            return epoch, "stopping_threshold"
        if diverge is not None and better(-value, -diverge):
            return epoch, "divergence_threshold"
        if better(value, best):
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, "patience"
    return None, None


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize(
    ("stop", "diverge"), [(0.4, None), (None, 2.0), (0.4, 2.0), (0.1, 0.95)]
)
def test_thresholds_stop_where_lightning_stops(mode, stop, diverge):
    sign = 1.0 if mode == "min" else -1.0
    values = [sign * v for v in VAL]
    if mode == "max":
        stop = None if stop is None else -stop
        diverge = None if diverge is None else -diverge
    expected_epoch, expected_reason = _lightning(values, mode, stop, diverge)
    assert expected_epoch is not None
    stopper = EarlyStopping(
        "val_score",
        mode=mode,
        patience=100,
        stopping_threshold=stop,
        divergence_threshold=diverge,
    )
    assert _feed(stopper, values, monitor="val_score") == expected_epoch
    assert stopper.stop_reason == expected_reason
    assert stopper.stopped_epoch == expected_epoch


def test_threshold_takes_precedence_over_patience():
    values = [1.0, 1.2, 0.3]
    assert _lightning(values, "min", stop=0.5, patience=2) == (2, "stopping_threshold")
    stopper = EarlyStopping(patience=2, stopping_threshold=0.5)
    assert _feed(stopper, values) == 2
    assert stopper.stop_reason == "stopping_threshold"
    assert stopper.best == 0.3 and stopper.best_epoch == 2


def test_thresholds_wait_for_start_from_epoch():
    stopper = EarlyStopping(stopping_threshold=0.5, start_from_epoch=2)
    assert _feed(stopper, [0.1, 0.2, 0.3]) == 2


def test_thresholds_with_a_prechelt_criterion():
    stopper = EarlyStopping(criterion="gl", alpha=1000.0, divergence_threshold=2.0)
    assert _feed(stopper, VAL) == 10
    assert stopper.stop_reason == "divergence_threshold"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_check_finite(bad):
    values = [1.0, 0.9, bad, 0.8, 0.85, 0.9]
    assert _lightning(values, "min")[0] == 2
    stopper = EarlyStopping(patience=2)
    assert _feed(stopper, values) == 2 and stopper.stop_reason == "nan"
    # Off: the value is no improvement, the patience rule decides.
    stopper = EarlyStopping(patience=2, check_finite=False)
    assert _feed(stopper, values) == 5
    assert stopper.stop_reason == "patience"
    assert (stopper.best, stopper.best_epoch) == (0.8, 3)


def test_check_finite_off_never_takes_a_non_finite_value_as_the_best():
    stopper = EarlyStopping(patience=1, check_finite=False, mode="min")
    assert _feed(stopper, [math.nan, 0.5, 0.6]) == 2
    assert (stopper.best, stopper.best_epoch) == (0.5, 1)


@pytest.mark.parametrize(
    ("kwargs", "values", "line"),
    [
        (
            {"stopping_threshold": 0.5},
            [0.9, 0.4],
            "Epoch 2: early stopping (stopping_threshold). Stopping threshold "
            "reached: val_loss = 0.4 < 0.5.",
        ),
        (
            {"divergence_threshold": 2.0},
            [0.9, 2.5],
            "Epoch 2: early stopping (divergence_threshold). Divergence threshold "
            "reached: val_loss = 2.5 > 2.0.",
        ),
        (
            {},
            [0.9, math.nan],
            "Epoch 2: early stopping (nan). Monitored metric val_loss = nan is not "
            "finite. Previous best value was 0.900.",
        ),
        ({"patience": 1}, [0.9, 1.0], "Epoch 2: early stopping (patience)."),
    ],
)
def test_verbose_message(capsys, kwargs, values, line):
    stopper = EarlyStopping(verbose=1, restore_best_weights=False, **kwargs)
    _feed(stopper, values)
    stopper.on_train_end()
    assert capsys.readouterr().out.strip() == line


def test_stop_reason_survives_a_backup():
    stopper = EarlyStopping(stopping_threshold=0.5)
    _feed(stopper, [0.9, 0.4])
    state, arrays = stopper.get_state()
    other = EarlyStopping(stopping_threshold=0.5)
    other.set_state(state, arrays)
    assert (other.stop_reason, other.stop_message) == (
        "stopping_threshold",
        stopper.stop_message,
    )


def test_config_and_serialisation_round_trip():
    stopper = EarlyStopping(
        "val_accuracy",
        mode="max",
        stopping_threshold=0.99,
        divergence_threshold=0.2,
        check_finite=False,
    )
    config = stopper.get_config()
    assert config["stopping_threshold"] == 0.99
    assert config["divergence_threshold"] == 0.2
    assert config["check_finite"] is False
    assert EarlyStopping.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(stopper)
    )
    assert restored.get_config() == config
    assert copy.deepcopy(stopper).get_config() == config
    assert EarlyStopping().get_config()["check_finite"] is True


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stopping_threshold": "0.1"}, TypeError, "stopping_threshold='0.1'"),
        ({"divergence_threshold": math.nan}, ValueError, "divergence_threshold=nan"),
        ({"check_finite": 1}, TypeError, "Received: check_finite=1"),
        (
            {"mode": "min", "stopping_threshold": 2.0, "divergence_threshold": 1.0},
            ValueError,
            r"stopping threshold better.*minimised.*stopping_threshold=2.0",
        ),
        (
            {"mode": "max", "stopping_threshold": 1.0, "divergence_threshold": 2.0},
            ValueError,
            "maximised",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)


def test_inconsistent_thresholds_with_mode_auto_fail_at_the_first_epoch():
    stopper = EarlyStopping(stopping_threshold=2.0, divergence_threshold=1.0)
    with pytest.raises(ValueError, match="`val_loss` is minimised"):
        _feed(stopper, [1.5])


# One-element monitored values (defect: NumPy 2 refuses float() of them).


@pytest.mark.jax
@pytest.mark.parametrize("wrap", [np.array, keras.ops.convert_to_tensor])
def test_one_element_values_are_squeezed(wrap):
    values = [wrap(np.array([v], "float32")) for v in (0.5, 0.4, 0.45, 0.46)]
    stopper = EarlyStopping(patience=2, restore_best_weights=False)
    assert _feed(stopper, values) == 3
    assert stopper.best == pytest.approx(0.4)
    reduce = ReduceLROnPlateau(factor=0.5, patience=1)
    lrs = feed(reduce, linear_model(keras.optimizers.SGD(0.1)), values)
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.025], rtol=1e-6)


@pytest.mark.parametrize("callback", [EarlyStopping, ReduceLROnPlateau])
def test_several_values_are_an_error_naming_the_monitor(callback):
    with pytest.raises(ValueError, match=r"monitors `val_loss`, which was logged as 2"):
        _feed(callback(), [np.array([0.5, 0.6])])


def _binary_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    return x, (x[:, :1] + 0.3 * rng.normal(size=(64, 1)) > 0).astype("float32")


@pytest.mark.jax
def test_f1_per_class_on_one_unit_in_fit():
    """The issue's case: ours stops where Keras's own EarlyStopping stops."""
    lengths = []
    for stopper_class in (keras.callbacks.EarlyStopping, EarlyStopping):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")]
        )
        model.compile(
            keras.optimizers.SGD(0.0),  # a constant F1: stops after `patience`
            "binary_crossentropy",
            metrics=[keras.metrics.F1Score(average=None, threshold=0.5)],
        )
        stopper = stopper_class(monitor="f1_score", mode="max", patience=1)
        x, y = _binary_data()
        history = model.fit(
            x, y, epochs=5, batch_size=32, verbose=0, callbacks=[stopper]
        )
        assert np.asarray(history.history["f1_score"][0]).shape == (1,)
        lengths.append(len(history.history["loss"]))
    assert lengths == [2, 2]


# A monitor that is not in the logs (defect: silently ignored).


def test_unknown_monitor_is_an_error_in_fit():
    model = linear_model(keras.optimizers.SGD(0.01))
    x = np.ones((8, 4), "float32")
    with pytest.raises(ValueError, match=r"`unknown`.*Available metrics are: loss"):
        model.fit(
            x, x[:, :1], epochs=3, verbose=0, callbacks=[EarlyStopping("unknown")]
        )


@pytest.mark.parametrize("mode", ["auto", "min"])
def test_misspelt_monitor_is_an_error_at_the_first_epoch(mode):
    stopper = EarlyStopping("val_los", mode=mode, start_from_epoch=3)
    with pytest.raises(ValueError, match=r"`val_los`.*val_loss,loss"):
        _feed(stopper, [0.5])


def test_val_monitor_on_an_epoch_without_validation_is_skipped():
    """`validation_freq=2`: `val_loss` is logged on epochs 1, 3, ... only."""
    stopper = EarlyStopping(patience=1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, value in enumerate([None, 0.5, None, 0.6]):
        logs = {"loss": 1.0} if value is None else {"loss": 1.0, "val_loss": value}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stopper.on_epoch_end(epoch, logs)
        mine = [
            w for w in caught if "conditioned on metric `val_loss`" in str(w.message)
        ]
        assert len(mine) == (value is None)
    assert model.stop_training and stopper.stopped_epoch == 3


def test_reduce_lr_warns_once_with_the_available_keys():
    model = linear_model(keras.optimizers.SGD(0.01))
    x = np.ones((8, 4), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            x,
            x[:, :1],
            epochs=3,
            verbose=0,
            callbacks=[ReduceLROnPlateau("val_foo", patience=0)],
        )
    messages = [str(w.message) for w in caught if "val_foo" in str(w.message)]
    assert len(messages) == 1
    assert "Available metrics are: loss" in messages[0]


def test_reduce_lr_warns_once_at_the_end_when_validation_never_came():
    reduce = ReduceLROnPlateau("val_loss")
    model = linear_model(keras.optimizers.SGD(0.1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feed(reduce, model, [1.0, 1.0], monitor="loss")
        assert not [w for w in caught if "`val_loss`" in str(w.message)]
        reduce.on_train_end({"loss": 1.0})
    messages = [str(w.message) for w in caught if "`val_loss`" in str(w.message)]
    assert len(messages) == 1 and "Available metrics are: loss" in messages[0]
