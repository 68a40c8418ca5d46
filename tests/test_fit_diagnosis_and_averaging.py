import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tricks.callbacks import FitDiagnosis, WeightAveraging, average_models
from keras_tricks.callbacks.fit_diagnosis import DiagnosisLabel, diagnose
from tests.helpers import assert_roundtrip


@pytest.mark.parametrize(
    ("train", "dev", "target", "label"),
    [
        (0.01, 0.015, 0.0, "good fit"),
        (0.01, 0.11, 0.0, "high variance (overfitting)"),
        (0.15, 0.16, 0.0, "high bias (underfitting)"),
        (0.15, 0.30, 0.0, "both"),
        (0.15, 0.16, 0.14, "good fit"),
    ],
)
def test_diagnosis_rules(train, dev, target, label):
    result, bias, variance = diagnose(train, dev, target_error=target)
    assert result == label
    assert bias == pytest.approx(train - target)
    assert variance == pytest.approx(dev - train)


def test_label_in_logs_is_numeric_for_keras_and_reads_as_text():
    label = DiagnosisLabel("high variance (overfitting)")
    assert float(label) == 2.0 and np.mean([label, label]) == 2.0
    assert label == "high variance (overfitting)" and str(label) == label.label


def _classifier(hidden):
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers += [keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.Adam(0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_tiny_model_is_high_bias(digits, capsys):
    (x, y), (x_dev, y_dev) = digits
    diagnosis = FitDiagnosis(gap_tolerance=0.05)
    history = _classifier([1]).fit(
        x,
        y,
        validation_data=(x_dev, y_dev),
        epochs=3,
        batch_size=128,
        verbose=2,
        callbacks=[diagnosis],
    )
    assert diagnosis.diagnosis == "high bias (underfitting)"
    assert history.history["fit_diagnosis"][-1] == diagnosis.diagnosis
    train_error = 1 - history.history["accuracy"][-1]
    assert history.history["avoidable_bias"][-1] == pytest.approx(train_error)
    printed = capsys.readouterr().out
    assert "high bias (underfitting)" in printed and "bigger network" in printed


def test_oversized_model_on_few_samples_is_high_variance(digits, capsys):
    (x, y), (x_dev, y_dev) = digits
    diagnosis = FitDiagnosis()
    history = _classifier([128, 128]).fit(
        x[:40],
        y[:40],
        validation_data=(x_dev, y_dev),
        epochs=15,
        batch_size=40,
        verbose=0,
        callbacks=[diagnosis],
    )
    assert diagnosis.diagnosis == "high variance (overfitting)"
    last = diagnosis.report()[-1]
    assert last["variance"] == pytest.approx(
        history.history["accuracy"][-1] - history.history["val_accuracy"][-1]
    )
    assert "regularisation" in capsys.readouterr().out


def test_diagnosis_warns_on_missing_metric():
    diagnosis = FitDiagnosis()
    diagnosis.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.warns(UserWarning, match="`accuracy`.*Available metrics are: loss"):
        diagnosis.on_epoch_end(0, {"loss": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target_error": -0.1}, ValueError, "Received: target_error=-0.1"),
        ({"gap_tolerance": -1}, ValueError, "Received: gap_tolerance=-1"),
        ({"error_metric": ""}, TypeError, "Expected a metric name"),
    ],
)
def test_diagnosis_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FitDiagnosis(**kwargs)


# WeightAveraging --------------------------------------------------------------


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.optimizer = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.optimizer.append([np.array(v) for v in self.model.optimizer.variables])


def _fit(model, callbacks, epochs=5, rng=None):
    rng = rng or np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return model.fit(
        x, x[:, :1] * 2, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks
    )


def test_swa_is_the_mean_of_the_epochs_and_leaves_the_optimizer():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(0.05), "mse")
    record = Record()
    _fit(model, [record, WeightAveraging(2)])
    for i, actual in enumerate(model.get_weights()):
        expected = np.mean([w[i] for w in record.weights[2:]], axis=0)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
    for variable, expected in zip(
        model.optimizer.variables, record.optimizer[-1], strict=True
    ):
        np.testing.assert_array_equal(np.array(variable), expected)


def test_swa_with_batch_norm_warns_without_data():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mse")
    with pytest.warns(UserWarning, match="Pass `recalibrate_data`"):
        _fit(model, [WeightAveraging(1)], epochs=2)


def test_swa_before_start_epoch_warns():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    with pytest.warns(UserWarning, match="averaged no epoch"):
        _fit(model, [WeightAveraging(5)], epochs=2)


def _bn_model():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mse")
    return model


@pytest.mark.parametrize("as_dataset", [False, True])
def test_swa_recalibrates_batch_norm(as_dataset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32") * 3 + 1
    data = tf.data.Dataset.from_tensors((x, x[:, :1])) if as_dataset else x
    model = _bn_model()
    _fit(model, [WeightAveraging(1, recalibrate_data=data)], epochs=3)
    hidden = keras.ops.convert_to_numpy(model.layers[0](x))
    batch_norm = model.layers[1]
    np.testing.assert_allclose(batch_norm.moving_mean, hidden.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(
        batch_norm.moving_variance, hidden.var(axis=0), rtol=1e-3, atol=1e-4
    )
    assert batch_norm.momentum == 0.99


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_epoch": -1}, "Received: start_epoch=-1"),
        ({"start_epoch": 1, "mode": "ema"}, "Received: mode='ema'"),
    ],
)
def test_swa_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightAveraging(**kwargs)


# average_models -----------------------------------------------------------------


def _member(i, units=3):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(units, activation="softmax")],
        name=f"member_{i}",
    )


def test_average_models_is_the_mean_and_saves(tmp_path, rng):
    members = [_member(i) for i in range(3)]
    ensemble = average_models(members)
    x = rng.normal(size=(5, 4)).astype("float32")
    expected = np.mean([keras.ops.convert_to_numpy(m(x)) for m in members], axis=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ensemble(x)), expected, rtol=1e-6
    )
    assert_roundtrip(ensemble, x, tmp_path)


@pytest.mark.parametrize(
    ("models", "error", "match"),
    [
        (lambda: [_member(0)], ValueError, "at least two models"),
        (lambda: [_member(0), "model"], TypeError, "built functional or Sequential"),
        (
            lambda: [
                _member(0),
                keras.Sequential(
                    [keras.Input((5,)), keras.layers.Dense(3)], name="wide"
                ),
            ],
            ValueError,
            "same input signature",
        ),
        (lambda: [_member(0), _member(0)], ValueError, "unique names"),
    ],
)
def test_average_models_bad_input(models, error, match):
    with pytest.raises(error, match=match):
        average_models(models())
