"""Rules every keras_tricks callback follows: family, config, order, backups."""

import copy
import csv
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras_tricks.callbacks
from keras_tricks.callbacks import (
    ActivationStats,
    EarlyStopping,
    EpochDecay,
    FitDiagnosis,
    GradientMonitor,
    LearningRateFinder,
    OneCycleMomentum,
    PenaltyLogger,
    ReduceLROnPlateau,
    SkipNonFinite,
    WeightAveraging,
)
from keras_tricks.callbacks._base import MonitoringCallback, TrainingCallback

EXAMPLES = {
    "ActivationStats": lambda: ActivationStats(
        np.zeros((2, 4), "float32"), every_n_steps=5, near_zero=0.1
    ),
    "EarlyStopping": lambda: EarlyStopping(
        "val_error", 0.01, 3, 1, "min", 0.9, False, 2, criterion="pq", alpha=0.5
    ),
    "EpochDecay": lambda: EpochDecay(0.9, min_lr=1e-4, start_epoch=2, verbose=1),
    "FitDiagnosis": lambda: FitDiagnosis(
        target_error=0.05, gap_tolerance=0.1, error_metric="val_accuracy"
    ),
    "GradientMonitor": lambda: GradientMonitor(vanishing_threshold=1e-4),
    "LearningRateFinder": lambda: LearningRateFinder(
        1e-5, 1.0, 20, rule="valley", verbose=1
    ),
    "OneCycleMomentum": OneCycleMomentum,
    "PenaltyLogger": PenaltyLogger,
    "ReduceLROnPlateau": lambda: ReduceLROnPlateau(
        "val_error", 0.5, 2, 0, "min", 1e-3, 1, 1e-5
    ),
    "SkipNonFinite": SkipNonFinite,
    "WeightAveraging": lambda: WeightAveraging(3, mode="swa"),
}
NOT_CALLBACKS = {
    "LRFinderResult",
    "ScaledSchedule",
    "average_models",
    "find_learning_rate",
    "weight_penalty",
}
FAMILY = sorted(EXAMPLES)

CURVE = [1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1]


def test_every_export_is_classified():
    exported = set(keras_tricks.callbacks.__all__)
    assert exported == set(EXAMPLES) | NOT_CALLBACKS
    for name in NOT_CALLBACKS:
        value = getattr(keras_tricks.callbacks, name)
        assert not (
            isinstance(value, type) and issubclass(value, keras.callbacks.Callback)
        )


@pytest.mark.jax
@pytest.mark.parametrize("name", FAMILY)
def test_in_the_family_and_survives_serialise_deserialise_deepcopy(name):
    callback = EXAMPLES[name]()
    assert isinstance(callback, TrainingCallback)
    assert type(callback) is getattr(keras_tricks.callbacks, name)
    config = keras.saving.serialize_keras_object(callback)
    assert config["registered_name"] == f"keras_tricks>{name}"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(callback)
    assert restored.get_config() == callback.get_config()
    restored.last_epoch = 7
    clone = copy.deepcopy(restored)
    assert clone is not restored and type(clone) is type(callback)
    assert clone.get_config() == callback.get_config()
    assert clone.last_epoch == -1


def test_monitoring_callbacks_share_the_base():
    for callback in (EXAMPLES["EarlyStopping"](), EXAMPLES["ReduceLROnPlateau"]()):
        assert isinstance(callback, MonitoringCallback)
        assert (callback.monitor, callback.mode) == ("val_error", "min")
    with pytest.raises(ValueError, match="cannot tell whether `val_thing`"):
        MonitoringCallback("val_thing").direction  # noqa: B018
    assert MonitoringCallback("val_top_acc").direction == "max"
    assert MonitoringCallback("val_mean_error").direction == "min"


def test_training_callback_base_takes_no_arguments():
    base = TrainingCallback()
    assert base.get_config() == {}
    assert isinstance(TrainingCallback.from_config({}), TrainingCallback)


def test_deepcopy_shares_recalibration_data():
    data = np.zeros((4, 2))
    clone = copy.deepcopy(WeightAveraging(1, recalibrate_data=data))
    assert clone.recalibrate_data is data


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


def _model(lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(1, name="head")], name="net"
    )
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _fit(model, callbacks, epochs=12):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    return model.fit(
        x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
    )


def _h5_keys(path):
    keys = []
    with h5py.File(path, "r") as f:
        f.visit(keys.append)
    return keys


# Order: our logs reach Keras's loggers listed after ours -------------------------


def _logged(tmp_path, name, ours):
    path = tmp_path / name
    logger = keras.callbacks.CSVLogger(str(path))
    _fit(_model(0.01), [Curve(), *ours, logger], epochs=4)
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.jax
def test_csv_logger_listed_after_ours_gets_our_columns(tmp_path):
    ours = [EarlyStopping("val_error", criterion="gl", alpha=1e9), EpochDecay(0.5)]
    first = _logged(tmp_path, "log.csv", [*ours, PenaltyLogger()])
    assert {"gl", "learning_rate", "penalty", "data_loss", "val_error"} <= set(first[0])
    gl = [100 * (v / min(CURVE[: t + 1]) - 1) for t, v in enumerate(CURVE[:4])]
    np.testing.assert_allclose([float(row["gl"]) for row in first], gl)
    np.testing.assert_allclose(
        [float(row["learning_rate"]) for row in first], [0.01, 0.005, 0.0025, 0.00125]
    )


def test_callbacks_keep_their_order():
    backup = keras.callbacks.BackupAndRestore("unused")
    listed = [keras.callbacks.History(), backup, EarlyStopping(), EpochDecay()]
    callbacks = keras.callbacks.CallbackList(list(listed), model=_model(0.01))
    assert [id(c) for c in callbacks.callbacks] == [id(c) for c in listed]


# Backups: state in BackupAndRestore's files, and only there ----------------------


def _trio():
    return [
        EarlyStopping("val_error", patience=3, mode="min", restore_best_weights=False),
        EpochDecay(0.7),
        ReduceLROnPlateau("val_error", factor=0.5, patience=1, mode="min"),
        WeightAveraging(2),
    ]


@pytest.mark.parametrize(
    "lr",
    [
        pytest.param("float", marks=pytest.mark.jax),
        "schedule",
    ],
)
def test_backup_and_restore_resumes_bit_identically(lr, tmp_path):
    def make_lr():
        if lr == "float":
            return 0.01
        return keras.optimizers.schedules.ExponentialDecay(0.01, 4, 0.9)

    def callbacks():
        found = _trio()
        return found if lr == "float" else [found[0], found[2], found[3]]

    def listed(ours, backup, *rest):
        return [Curve(), *ours, backup, *rest]

    reference = _model(make_lr())
    ours = callbacks()
    _fit(reference, [Curve(), *ours])
    stopped = ours[0].stopped_epoch
    # Best 0.7 at epoch 4, then 3 epochs without improvement.
    assert stopped == 7

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = _model(make_lr())
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(interrupted, listed(callbacks(), backup, Interrupt(6)))
    assert any("meta" in key for key in _h5_keys(backup._weights_path))

    resumed = _model(make_lr())  # a new process: fresh model and callbacks
    again = callbacks()
    history = _fit(resumed, listed(again, backup))
    assert len(history.history["loss"]) == stopped + 1 - 6
    assert again[0].stopped_epoch == stopped
    assert float(resumed.optimizer.learning_rate) == float(
        reference.optimizer.learning_rate
    )
    for actual, expected in zip(
        resumed.get_weights(), reference.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(actual, expected)


def test_a_backup_listed_before_ours_is_refused_on_resume(tmp_path):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model(0.01), [Curve(), backup, *_trio(), Interrupt(6)])
    with pytest.raises(ValueError, match="BackupAndRestore` after the keras_tricks"):
        _fit(_model(0.01), [Curve(), backup, *_trio()])


def test_model_files_hold_no_callback_state_without_backup(tmp_path):
    # Issue 12.18: the state went into every save (1.29x the size).
    trained = _model(0.01)
    _fit(trained, [Curve(), *_trio(), EarlyStopping("val_error", mode="min")])
    fresh = _model(0.01)
    for model, name in ((trained, "trained"), (fresh, "fresh")):
        model.save(tmp_path / f"{name}.keras")
        model.save_weights(tmp_path / f"{name}.weights.h5")
    for name in ("trained", "fresh"):
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as archive:
            archive.extract("model.weights.h5", tmp_path / name)
    for path in ("{}.weights.h5", "{}/model.weights.h5"):
        trained, fresh = (tmp_path / path.format(n) for n in ("trained", "fresh"))
        assert _h5_keys(trained) == _h5_keys(fresh)
        assert trained.stat().st_size == fresh.stat().st_size
    loaded = keras.models.load_model(tmp_path / "trained.keras")
    assert len(loaded.weights) == 2


def test_load_weights_leaves_live_callbacks_alone(tmp_path):
    # Issue 12.18: load_weights pushed the previous run's state into the live
    # callbacks, which then stopped on the old run's best.
    model = _model(0.01)
    stopper = EarlyStopping("val_error", patience=3, mode="min")
    _fit(model, [Curve(), stopper])
    assert (stopper.best, stopper.stopped_epoch) == (0.7, 7)
    model.save_weights(tmp_path / "run.weights.h5")
    stopper.on_train_begin()
    model.load_weights(tmp_path / "run.weights.h5")
    assert (stopper.best, stopper.stopped_epoch) == (None, 0)


def test_reusable_across_fits():
    stopper = EarlyStopping("val_error", patience=3, mode="min")
    decay = EpochDecay(0.5)
    for _ in range(2):
        model = _model(0.01)
        history = _fit(model, [Curve(), stopper, decay])
        assert stopper.stopped_epoch == 7 and len(history.history["loss"]) == 8
        assert history.history["learning_rate"][0] == pytest.approx(0.01)


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


@pytest.mark.parametrize(
    "name",
    sorted(
        set(EXAMPLES)
        - {"ActivationStats", "GradientMonitor", "LearningRateFinder", "SkipNonFinite"}
    ),
)
def test_no_batch_hooks(name):
    callback = EXAMPLES[name]()
    for hook in ("on_train_batch_begin", "on_train_batch_end"):
        assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook)
