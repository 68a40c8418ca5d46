"""WeightAveraging's SWA learning rate (torch's SWALR) and BN recalibration.

Expected rates are PyTorch's `torch.optim.swa_utils.SWALR` formula written
out in numpy: with `k = epoch - start`, `t = min(1, k / annealing_epochs)`
(1 when `annealing_epochs = 0`), `alpha = (1 - cos(pi t)) / 2` or `t`, and
`lr = alpha * swa_lr + (1 - alpha) * lr_start`.
"""

import math
import warnings

import keras
import numpy as np
import pytest

from keras_tricks._keras_compat import learning_rate_object
from keras_tricks.callbacks import ReduceLROnPlateau, WeightAveraging
from keras_tricks.callbacks._swa_lr import SWASchedule

from .helpers import TraceCounter, linear_data, linear_model


def _swalr(epochs, lr0, swa_lr, start, annealing_epochs, strategy):
    """Each epoch's rate under SWALR started at `start` (closed form)."""
    k = np.arange(epochs) - start
    if annealing_epochs == 0:
        t = np.ones(epochs)
    else:
        t = np.clip(k / annealing_epochs, 0.0, 1.0)
    alpha = (1 - np.cos(np.pi * t)) / 2 if strategy == "cos" else t
    return np.where(k < 0, lr0, swa_lr * alpha + lr0 * (1 - alpha))


def _run_hooks(callback, model, epochs, between=None):
    """Calls the epoch hooks; returns the rate each epoch trained with."""
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        logs = {}
        callback.on_epoch_end(epoch, logs)
        assert logs["learning_rate"] == pytest.approx(rates[-1])
        if between is not None:
            between(epoch, model)
    return np.array(rates)


@pytest.mark.jax
@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("annealing_epochs", [0, 1, 4, 10])
def test_rates_follow_swalr(strategy, annealing_epochs):
    model = linear_model(keras.optimizers.SGD(0.1))
    swa = WeightAveraging(
        start_from_epoch=2,
        swa_learning_rate=0.02,
        annealing_epochs=annealing_epochs,
        annealing_strategy=strategy,
    )
    rates = _run_hooks(swa, model, 16)
    expected = _swalr(16, 0.1, 0.02, 2, annealing_epochs, strategy)
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    assert rates[2] == pytest.approx(0.1 if annealing_epochs else 0.02)
    assert rates[-1] == pytest.approx(0.02)


def test_an_outside_change_carries_through_as_in_swalr():
    """A rate halved by someone else between epochs: SWALR's recovery of lr_start."""
    lr0, swa_lr, start, span = 0.1, 0.01, 1, 4

    def halve(epoch, model):
        if epoch == 2:
            model.optimizer.learning_rate = float(model.optimizer.learning_rate) / 2

    swa = WeightAveraging(start, swa_learning_rate=swa_lr, annealing_epochs=span)
    rates = _run_hooks(swa, linear_model(keras.optimizers.SGD(lr0)), 8, halve)
    # SWALR's recurrence, from PyTorch's `get_lr`, in plain Python.
    expected, lr = [], lr0
    for epoch in range(8):
        k = epoch - start
        if k >= 0:
            prev = (1 - math.cos(math.pi * min(1, max(0, (k - 1) / span)))) / 2
            alpha = (1 - math.cos(math.pi * min(1, k / span))) / 2
            lr_start = swa_lr if prev == 1 else (lr - prev * swa_lr) / (1 - prev)
            lr = swa_lr * alpha + lr_start * (1 - alpha)
        expected.append(lr)
        if epoch == 2:
            lr /= 2
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    # The halving carried through: epoch 3 is below the undisturbed value.
    assert rates[3] < _swalr(8, lr0, swa_lr, start, span, "cos")[3]


class _BatchRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates, self.steps = [], []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        self.steps.append(int(keras.ops.convert_to_numpy(optimizer.iterations)))


def _traces_of_two_fits(x, y, callbacks):
    """Trace counts after a 5-epoch fit and after one more epoch."""
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)
    model = linear_model(keras.optimizers.SGD(schedule))
    TraceCounter.traces = 0
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks)
    first = TraceCounter.traces
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "WeightAveraging averaged no epoch")
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=callbacks[:1])
    return model, schedule, history, (first, TraceCounter.traces)


@pytest.mark.jax
def test_composes_with_a_schedule_without_retracing(rng):
    x, y = linear_data(rng, n=16)
    record = _BatchRates()
    swa = WeightAveraging(
        start_from_epoch=1,
        swa_learning_rate=0.05,
        annealing_epochs=2,
        annealing_strategy="linear",
    )
    model, schedule, history, traces = _traces_of_two_fits(x, y, [swa, record])
    steps = np.array(record.steps[:10])
    epoch = steps // 2  # two batches per epoch
    alpha = np.clip((epoch - 1) / 2, 0.0, 1.0)
    expected = 0.05 * alpha + (1 - alpha) * 0.1 * 0.9**steps
    np.testing.assert_allclose(record.rates[:10], expected, rtol=1e-5)
    assert len(history.history["learning_rate"]) == 5
    wrapper = learning_rate_object(model.optimizer)
    assert isinstance(wrapper, SWASchedule) and wrapper.schedule is schedule
    # The second fit reused the wrapper, alpha back at 0 before start_from_epoch.
    assert float(keras.ops.convert_to_numpy(wrapper.alpha)) == 0.0
    # As many traces as without the callback: alpha lives in a variable.
    assert traces == _traces_of_two_fits(x, y, [keras.callbacks.Callback()])[3]


def test_composes_with_reduce_lr_on_plateau_on_a_schedule(rng):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)
    model = linear_model(keras.optimizers.SGD(schedule))
    x, y = linear_data(rng, n=8)
    swa = WeightAveraging(start_from_epoch=1, swa_learning_rate=0.05)
    reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e9)
    record = _BatchRates()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[swa, reduce, record])
    steps = np.array(record.steps)
    alpha = (1 - np.cos(np.pi * np.clip((steps - 1) / 10, 0, 1))) / 2
    scale = np.array([1.0, 1.0, 0.5])  # the first reduction ends epoch 1
    expected = (0.05 * alpha + (1 - alpha) * 0.1 * 0.9**steps) * scale
    np.testing.assert_allclose(record.rates, expected, rtol=1e-5)


def test_without_swa_learning_rate_the_rate_is_untouched():
    model = linear_model(keras.optimizers.SGD(0.1))
    swa = WeightAveraging(start_from_epoch=0)
    swa.set_model(model)
    swa.on_train_begin()
    for epoch in range(3):
        swa.on_epoch_begin(epoch)
        logs = {}
        swa.on_epoch_end(epoch, logs)
        assert "learning_rate" not in logs
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


def test_schedule_and_model_survive_save_and_load(tmp_path, rng):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)
    model = linear_model(keras.optimizers.SGD(schedule))
    x, y = linear_data(rng, n=8)
    swa = WeightAveraging(0, swa_learning_rate=0.05, annealing_epochs=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[swa])
    path = tmp_path / "swa.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(learning_rate_object(loaded.optimizer), SWASchedule)
    assert learning_rate_object(loaded.optimizer).get_config() == (
        learning_rate_object(model.optimizer).get_config()
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.optimizer.learning_rate),
        keras.ops.convert_to_numpy(model.optimizer.learning_rate),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_config_round_trip():
    swa = WeightAveraging(
        3,
        swa_learning_rate=0.05,
        annealing_epochs=4,
        annealing_strategy="linear",
        recalibrate_batch_norm=False,
    )
    config = swa.get_config()
    assert config == {
        "start_from_epoch": 3,
        "mode": "swa",
        "swa_learning_rate": 0.05,
        "annealing_epochs": 4,
        "annealing_strategy": "linear",
        "recalibrate_batch_norm": False,
    }
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(swa)
    )
    assert restored.get_config() == config
    assert WeightAveraging.from_config(config).get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"swa_learning_rate": 0.0}, ValueError, "Received: swa_learning_rate=0.0"),
        ({"swa_learning_rate": "1"}, TypeError, "swa_learning_rate='1'"),
        ({"annealing_epochs": -1}, ValueError, "Received: annealing_epochs=-1"),
        ({"annealing_epochs": 1.5}, TypeError, "Received: annealing_epochs=1.5"),
        ({"annealing_strategy": "exp"}, ValueError, "one of 'cos', 'linear'"),
        ({"recalibrate_batch_norm": 1}, TypeError, "recalibrate_batch_norm=1"),
        (
            {"recalibrate_batch_norm": True},
            ValueError,
            "`recalibrate_batch_norm`, `recalibrate_data`.*with "
            "recalibrate_batch_norm=True",
        ),
        (
            {"recalibrate_batch_norm": False, "recalibrate_data": np.ones((2, 4))},
            ValueError,
            "none with False",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WeightAveraging(0, **kwargs)


def test_callable_learning_rate_is_refused():
    model = linear_model(keras.optimizers.SGD(lambda: 0.1))
    swa = WeightAveraging(0, swa_learning_rate=0.01)
    swa.set_model(model)
    with pytest.raises(TypeError, match="a float or a LearningRateSchedule"):
        swa.on_train_begin()


# Batch-norm statistics of the averaged weights.


def _bn_model():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(momentum=0.5),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


@pytest.mark.parametrize("recalibrate_batch_norm", [None, True])
def test_recalibration_gives_the_population_statistics_of_the_average(
    rng, recalibrate_batch_norm
):
    x, y = linear_data(rng, n=64)
    x = x * 2 + 1  # statistics far from BatchNormalization's initial ones
    model = _bn_model()
    swa = WeightAveraging(
        1,
        swa_learning_rate=0.01,
        annealing_epochs=1,
        recalibrate_data=x,
        recalibrate_batch_norm=recalibrate_batch_norm,
    )
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[swa])
    dense, bn = model.layers[0], model.layers[1]
    hidden = x @ keras.ops.convert_to_numpy(dense.kernel)
    hidden = hidden + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), hidden.mean(axis=0), atol=1e-4
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        hidden.var(axis=0),
        rtol=1e-3,
        atol=1e-4,
    )


def test_without_data_warns_and_false_keeps_the_last_statistics(rng):
    x, y = linear_data(rng, n=32)
    model = _bn_model()
    with pytest.warns(UserWarning, match="Pass `recalibrate_data`"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[WeightAveraging(0)])
    model = _bn_model()
    swa = WeightAveraging(0, recalibrate_batch_norm=False)
    record = []

    class Last(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            record[:] = [keras.ops.convert_to_numpy(model.layers[1].moving_mean)]

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x, y, epochs=2, verbose=0, callbacks=[Last(), swa])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.layers[1].moving_mean), record[0]
    )
