"""Rules every training-control callback follows: config, deepcopy, backups, EMA."""

import copy

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tricks.callbacks import (
    EarlyStopping,
    EpochDecay,
    FitDiagnosis,
    ReduceLROnPlateau,
    WeightAveraging,
)

CALLBACKS = [
    EpochDecay(0.9, min_lr=1e-4, start_epoch=2, verbose=1),
    EarlyStopping("val_error", criterion="pq", alpha=0.5, strip_length=3, mode="min"),
    ReduceLROnPlateau("val_error", factor=0.5, patience=2, cooldown=1, min_lr=1e-5),
    FitDiagnosis(target_error=0.05, gap_tolerance=0.1, error_metric="val_accuracy"),
    WeightAveraging(3),
]
IDS = [type(c).__name__ for c in CALLBACKS]

CURVE = [1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1]


class Curve(keras.callbacks.Callback):
    """Writes a made-up validation error into the logs (deterministic)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_error"] = CURVE[epoch]


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("callback", CALLBACKS, ids=IDS)
def test_config_round_trip(callback):
    config = keras.saving.serialize_keras_object(callback)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(callback)
    assert restored.get_config() == callback.get_config()


@pytest.mark.parametrize("callback", CALLBACKS, ids=IDS)
def test_deepcopy_gives_a_fresh_equal_callback(callback):
    callback.last_epoch = 7
    clone = copy.deepcopy(callback)
    assert clone is not callback and type(clone) is type(callback)
    assert clone.get_config() == callback.get_config()
    assert clone.last_epoch == -1
    callback.last_epoch = -1


def test_deepcopy_shares_recalibration_data():
    data = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2))).batch(2)
    clone = copy.deepcopy(WeightAveraging(1, recalibrate_data=data))
    assert clone.recalibrate_data is data


def _model(lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _fit(model, callbacks, epochs=12):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    return model.fit(
        x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
    )


def _trio():
    return [
        EarlyStopping("val_error", patience=3, mode="min", restore_best_weights=False),
        EpochDecay(0.7),
        ReduceLROnPlateau("val_error", factor=0.5, patience=1, mode="min"),
        WeightAveraging(2),
    ]


@pytest.mark.parametrize(
    "lr",
    ["float", "schedule"],
)
def test_backup_and_restore_resumes_the_callbacks_state(lr, tmp_path):
    def make_lr():
        if lr == "float":
            return 0.01
        return keras.optimizers.schedules.ExponentialDecay(0.01, 4, 0.9)

    def callbacks():
        found = _trio()
        return found if lr == "float" else [found[0], found[2], found[3]]

    reference = _model(make_lr())
    ours = callbacks()
    _fit(reference, [Curve(), *ours])
    stopped = ours[0].stopped_epoch
    # Best 0.7 at epoch 4, then 3 epochs without improvement.
    assert stopped == 7

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = _model(make_lr())
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(interrupted, [Curve(), *callbacks(), backup, Interrupt(6)])
    resumed = _model(make_lr())  # a new process: fresh model and callbacks
    again = callbacks()
    history = _fit(resumed, [Curve(), *again, backup])
    assert len(history.history["loss"]) == stopped + 1 - 6
    assert again[0].stopped_epoch == stopped
    assert float(resumed.optimizer.learning_rate) == pytest.approx(
        float(reference.optimizer.learning_rate), rel=1e-6
    )
    for actual, expected in zip(
        resumed.get_weights(), reference.get_weights(), strict=True
    ):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_backup_listed_first_is_detected(tmp_path):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model(0.01), [Curve(), backup, EpochDecay(0.5), Interrupt(3)])
    with pytest.warns(UserWarning, match="List keras.callbacks.BackupAndRestore after"):
        _fit(_model(0.01), [Curve(), backup, EpochDecay(0.5)], epochs=4)


def test_reusable_across_fits():
    stopper = EarlyStopping("val_error", patience=3, mode="min")
    decay = EpochDecay(0.5)
    for _ in range(2):
        model = _model(0.01)
        history = _fit(model, [Curve(), stopper, decay])
        assert stopper.stopped_epoch == 7 and len(history.history["loss"]) == 8
        assert history.history["learning_rate"][0] == pytest.approx(0.01)


def test_state_holder_leaves_weights_and_saving_alone(tmp_path):
    model = _model(0.01)
    _fit(model, [Curve(), EarlyStopping("val_error", patience=3, mode="min")])
    assert len(model.weights) == 2
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert len(loaded.weights) == 2
    model.save_weights(tmp_path / "m.weights.h5")
    loaded.load_weights(tmp_path / "m.weights.h5")
    fresh = _model(0.01)
    fresh.save_weights(tmp_path / "fresh.weights.h5")
    model.load_weights(tmp_path / "fresh.weights.h5")


# Optimizer EMA ----------------------------------------------------------------


def _ema_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05, use_ema=True, ema_momentum=0.5), "mse")
    return model


class RecordEMA(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ema = []

    def on_epoch_end(self, epoch, logs=None):
        averages = self.model.optimizer._model_variables_moving_average
        self.ema.append([np.array(v) for v in averages])


def test_best_weights_with_ema_are_the_ema_weights_of_the_best_epoch():
    model, record = _ema_model(), RecordEMA()
    stopper = EarlyStopping("val_error", patience=3, mode="min")
    _fit(model, [Curve(), record, stopper])
    assert stopper.best_epoch == 4
    for actual, expected in zip(model.get_weights(), record.ema[4], strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_swa_with_ema_averages_the_ema_weights():
    model, record = _ema_model(), RecordEMA()
    _fit(model, [record, WeightAveraging(2)], epochs=5)
    expected = [np.mean([e[i] for e in record.ema[2:]], axis=0) for i in range(2)]
    for actual, wanted in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-7)
    # The last epoch alone is exactly what plain EMA training returns.
    plain, last = _ema_model(), _ema_model()
    _fit(plain, [], epochs=5)
    _fit(last, [WeightAveraging(4)], epochs=5)
    for actual, wanted in zip(last.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-6)


@pytest.mark.parametrize("swa_first", [True, False])
def test_swa_and_restoring_early_stopping_warn(swa_first):
    stopper = EarlyStopping("val_error", patience=3, mode="min")
    swa = WeightAveraging(1)
    callbacks = [swa, stopper] if swa_first else [stopper, swa]
    with pytest.warns(UserWarning, match="the one listed last in `callbacks` wins"):
        _fit(_model(0.01), [Curve(), *callbacks], epochs=4)


@pytest.mark.parametrize("callback", CALLBACKS, ids=IDS)
def test_no_batch_hooks(callback):
    for hook in ("on_train_batch_begin", "on_train_batch_end"):
        assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook)
