"""`LearningRateFinder`: the range test on the first steps of `fit`."""

import copy

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import LearningRateFinder
from keras_tricks.lr_finder import LRFinderResult
from tests.callbacks.helpers import linear_model


def _data(n=256):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True) + 0.1 * rng.normal(size=(n, 1))


def _model(seed=0, jit_compile=False):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
         keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=jit_compile)
    return model


@pytest.mark.jax
@pytest.mark.xla
def test_the_fit_after_the_sweep_equals_a_fit_without_the_swept_batches():
    """Weights, BN statistics and Adam's slots and iterations are restored.

    A fit whose first 12 steps are the sweep ends exactly where a fit of a
    copy of the model, started at the suggested rate, on the batches after
    those 12 ends (same order, no shuffling).
    """
    x, y = _data()
    finder = LearningRateFinder(min_lr=1e-4, max_lr=1.0, num_training_steps=12,
                                early_stop_threshold=None)  # fmt: skip
    model = _model(jit_compile=True)
    start = [np.array(w) for w in model.get_weights()]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[finder])  # fmt: skip
    assert len(finder.result.lrs) == 12
    np.testing.assert_allclose(
        finder.result.lrs, 1e-4 * 1e4 ** (np.arange(12) / 11), rtol=1e-12
    )
    assert finder.suggestion == finder.result.suggestion
    assert float(model.optimizer.learning_rate) == pytest.approx(
        finder.suggestion, rel=1e-6
    )

    reference = _model(jit_compile=True)
    reference.set_weights(start)
    reference.optimizer.learning_rate = finder.suggestion
    reference.fit(x[12 * 8 :], y[12 * 8 :], batch_size=8, epochs=1,
                  shuffle=False, verbose=0)  # fmt: skip
    assert int(model.optimizer.iterations) == int(reference.optimizer.iterations)
    for actual, expected in zip(model.get_weights(), reference.get_weights(),
                                strict=True):  # fmt: skip
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    pairs = zip(model.optimizer.variables, reference.optimizer.variables, strict=True)
    for actual, expected in pairs:
        np.testing.assert_allclose(
            np.array(actual), np.array(expected), rtol=1e-5, atol=1e-6
        )


def test_hooks_restore_the_state_and_record_each_batchs_loss():
    """Driving the hooks by hand: the state after the sweep equals the state
    before it, and each recorded raw loss is that batch's loss."""
    x, y = _data(64)
    model = _model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # non-zero Adam slots
    # The first batch's training-mode loss (this updates the BN statistics,
    # so it comes before the state is recorded).
    prediction = model(x[:8], training=True)
    expected_first = float(model.compute_loss(x[:8], y[:8], prediction))
    weights = [np.array(w) for w in model.get_weights()]
    slots = [np.array(v) for v in model.optimizer.variables]
    finder = LearningRateFinder(
        min_lr=1e-3,
        max_lr=1e-1,
        num_training_steps=4,
        early_stop_threshold=None,
        rule="minimum/10",
    )
    finder.set_model(model)
    finder.on_train_begin()
    for step in range(4):
        finder.on_train_batch_begin(step)
        batch = slice(8 * step, 8 * step + 8)
        logs = model.train_on_batch(x[batch], y[batch], return_dict=True)
        finder.on_train_batch_end(step, logs)
    assert isinstance(finder.result, LRFinderResult)
    assert finder.result.raw_losses[0] == pytest.approx(expected_first, rel=1e-5)
    for actual, expected in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(actual, expected)
    # Every optimizer variable but the rate, which is now the suggestion.
    for variable, expected in zip(model.optimizer.variables, slots, strict=True):
        if variable.name != "learning_rate":
            np.testing.assert_array_equal(np.array(variable), expected)
    assert int(model.optimizer.iterations) == int(slots[0])
    lowest = finder.result.lrs[np.argmin(finder.result.losses)]
    assert finder.suggestion == pytest.approx(lowest / 10)
    assert float(model.optimizer.learning_rate) == pytest.approx(lowest / 10)


def test_update_attr_false_keeps_the_rate_and_no_suggestion_warns():
    x, y = _data(64)
    model = _model()
    finder = LearningRateFinder(num_training_steps=3, update_attr=False,
                                min_lr=1e-3)  # fmt: skip
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[finder])
    assert finder.suggestion is not None
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    finder = LearningRateFinder(num_training_steps=3, skip_end=2)
    with pytest.warns(UserWarning, match="no suggestion"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[finder])
    assert finder.suggestion is None
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_a_sweep_longer_than_an_epoch_is_refused():
    x, y = _data(64)
    with pytest.raises(ValueError, match="fewer steps than one epoch of this fit"):
        _model().fit(x, y, batch_size=8, epochs=1, verbose=0,
                     callbacks=[LearningRateFinder(num_training_steps=8)])  # fmt: skip


def test_a_schedule_is_refused():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = linear_model(keras.optimizers.SGD(schedule))
    x, y = _data(64)
    with pytest.raises(TypeError, match="LearningRateFinder sets the learning"):
        model.fit(x, y, batch_size=8, verbose=0,
                  callbacks=[LearningRateFinder(num_training_steps=3)])  # fmt: skip


def test_config_round_trip_and_deepcopy():
    finder = LearningRateFinder(1e-6, 0.5, 40, "linear", None, "valley", 2, 1,
                                False, 1)  # fmt: skip
    config = finder.get_config()
    assert LearningRateFinder.from_config(config).get_config() == config
    assert copy.deepcopy(finder).get_config() == config
    serialized = keras.saving.serialize_keras_object(finder)
    again = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(again, LearningRateFinder) and again.get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_lr": 0.0}, ValueError, "Received: min_lr=0.0"),
        ({"min_lr": 2.0}, ValueError, "a rate below max_lr=1.0"),
        ({"num_training_steps": 1}, ValueError, "Received: num_training_steps=1"),
        ({"mode": "cyclic"}, ValueError, "Received: mode='cyclic'"),
        ({"early_stop_threshold": 1}, ValueError, "early_stop_threshold=1"),
        ({"rule": "fastest"}, ValueError, "Received: rule='fastest'"),
        ({"skip_begin": -1}, ValueError, "Received: skip_begin=-1"),
        ({"update_attr": 1}, TypeError, "Received: update_attr=1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LearningRateFinder(**kwargs)
