import keras
import numpy as np
import pytest

from keras_tricks.callbacks import FitDiagnosis
from keras_tricks.callbacks.fit_diagnosis import DiagnosisLabel, diagnose


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


def _classifier(hidden, jit_compile=False):
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers += [keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.Adam(0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_tiny_model_is_high_bias(digits, capsys):
    (x, y), (x_dev, y_dev) = digits
    diagnosis = FitDiagnosis(gap_tolerance=0.05)
    history = _classifier([1], jit_compile=True).fit(
        x[:512],
        y[:512],
        validation_data=(x_dev, y_dev),
        epochs=3,
        batch_size=128,
        verbose=2,
        callbacks=[diagnosis],
    )
    assert diagnosis.diagnosis == "high bias (underfitting)"
    assert history.history["fit_diagnosis"][-1] == diagnosis.diagnosis
    train_error = 1 - np.array(history.history["accuracy"])
    dev_error = 1 - np.array(history.history["val_accuracy"])
    np.testing.assert_allclose(history.history["avoidable_bias"], train_error)
    np.testing.assert_allclose(history.history["variance"], dev_error - train_error)
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


def test_an_error_metric_is_taken_as_it_is():
    diagnosis = FitDiagnosis(error_metric="val_mae", target_error=0.1, verbose=0)
    logs = {"mae": 0.15, "val_mae": 0.4}
    diagnosis.on_epoch_end(0, logs)
    assert logs["avoidable_bias"] == pytest.approx(0.05)
    assert logs["variance"] == pytest.approx(0.25)
    assert logs["fit_diagnosis"] == "both"


def test_warns_on_missing_metric():
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
        ({"verbose": -1}, ValueError, "Received: verbose=-1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FitDiagnosis(**kwargs)
