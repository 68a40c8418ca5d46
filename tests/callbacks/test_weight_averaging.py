import warnings

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import WeightAveraging


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.optimizer = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.optimizer.append(
            [keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables]
        )


def _fit(model, callbacks, epochs=5):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    return model.fit(
        x, x[:, :1] * 2, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks
    )


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_swa_is_the_mean_of_the_epochs_and_leaves_the_optimizer():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(0.05), "mse", jit_compile=True)
    record = Record()
    _fit(model, [record, WeightAveraging(start_from_epoch=2)])
    for i, actual in enumerate(model.get_weights()):
        expected = np.mean([w[i] for w in record.weights[2:]], axis=0)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
    for variable, expected in zip(
        model.optimizer.variables, record.optimizer[-1], strict=True
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), expected)


def test_start_epoch_is_the_deprecated_name_of_start_from_epoch():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        positional = WeightAveraging(3)
    with pytest.warns(DeprecationWarning, match="use start_from_epoch"):
        keyword = WeightAveraging(start_epoch=3)
    assert positional.get_config() == keyword.get_config()
    assert keyword.get_config() == {
        "start_from_epoch": 3,
        "mode": "swa",
        "swa_learning_rate": None,
        "annealing_epochs": 10,
        "annealing_strategy": "cos",
        "recalibrate_batch_norm": None,
    }
    with pytest.warns(DeprecationWarning, match="use start_from_epoch"):
        assert keyword.start_epoch == 3
    with pytest.warns(DeprecationWarning):  # a config saved before the rename
        old = WeightAveraging.from_config({"start_epoch": 3, "mode": "swa"})
    assert old.start_from_epoch == 3


def test_swa_with_batch_norm_warns_without_data():
    with pytest.warns(UserWarning, match="Pass `recalibrate_data`"):
        _fit(_bn_model(), [WeightAveraging(1)], epochs=2)


def test_swa_before_start_from_epoch_warns():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    with pytest.warns(UserWarning, match="averaged no epoch.*start_from_epoch=5"):
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
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32") * 3 + 1
    if as_dataset:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensors((x, x[:, :1]))
    else:
        data = x
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
    ("kwargs", "error", "match"),
    [
        ({"start_from_epoch": -1}, ValueError, "Received: start_from_epoch=-1"),
        ({"start_from_epoch": 1, "mode": "ema"}, ValueError, "Received: mode='ema'"),
        ({}, TypeError, "missing required argument: 'start_from_epoch'"),
        (
            {"start_from_epoch": 1, "start_epoch": 1},
            ValueError,
            "Received: start_from_epoch=1, start_epoch=1",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WeightAveraging(**kwargs)
