import keras
import numpy as np
import pytest

from keras_tricks.callbacks import PenaltyLogger, weight_penalty


def _model(jit_compile=False):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                3,
                kernel_regularizer=keras.regularizers.L2(0.01),
                bias_regularizer=keras.regularizers.L1(0.02),
            ),
            keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L1(0.03)),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05), "mse", jit_compile=jit_compile)
    return model


def _numpy_penalty(model):
    first, second = model.layers
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in first.weights)
    head = keras.ops.convert_to_numpy(second.kernel)
    return (
        0.01 * np.sum(kernel**2)
        + 0.02 * np.sum(np.abs(bias))
        + 0.03 * np.abs(head).sum()
    )


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_penalty_and_data_losses_inside_a_jit_compiled_fit(rng):
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = _model(jit_compile=True)
    history = model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[PenaltyLogger()],
    )
    logs = {key: values[-1] for key, values in history.history.items()}
    assert logs["penalty"] == pytest.approx(_numpy_penalty(model), rel=1e-5)
    assert logs["penalty"] == pytest.approx(weight_penalty(model), rel=1e-6)
    assert logs["data_loss"] == pytest.approx(logs["loss"] - logs["penalty"])
    assert logs["val_data_loss"] == pytest.approx(logs["val_loss"] - logs["penalty"])
    x_val, y_val = x[24:], y[24:]
    prediction = keras.ops.convert_to_numpy(model(x_val))
    assert logs["val_data_loss"] == pytest.approx(
        np.mean((prediction - y_val) ** 2), rel=1e-4
    )
