"""The Keras internals keras_tricks relies on still exist (fails first on upgrade)."""

import keras
import numpy as np
import pytest

from keras_tricks import _keras_compat

pytestmark = pytest.mark.jax


def _instances():
    optimizer = keras.optimizers.SGD(0.1, use_ema=True)
    optimizer.build([keras.Variable(np.zeros(2))])
    return {
        keras.optimizers.Optimizer: optimizer,
        keras.metrics.Metric: keras.metrics.Accuracy(),
    }


@pytest.mark.parametrize(
    ("owner", "attribute"),
    sorted(_keras_compat.PRIVATE_ATTRIBUTES, key=lambda k: (k[0].__name__, k[1])),
    ids=lambda value: getattr(value, "__name__", value),
)
def test_private_attribute_exists(owner, attribute):
    feature = _keras_compat.PRIVATE_ATTRIBUTES[(owner, attribute)]
    instance = _instances()[owner]
    assert hasattr(instance, attribute), (
        f"Keras {keras.__version__} has no `{owner.__name__}.{attribute}` "
        f"(checked with {_keras_compat.CHECKED_WITH}); this breaks: {feature}. "
        "Update keras_tricks/_keras_compat.py."
    )


def test_accessors_read_the_internals():
    optimizer = keras.optimizers.SGD(0.1, use_ema=True)
    variable = keras.Variable(np.zeros(2))
    optimizer.build([variable])
    pairs = _keras_compat.moving_average_pairs(optimizer)
    assert [v for v, _ in pairs] == [variable]
    assert _keras_compat.moving_average_pairs(keras.optimizers.SGD()) == []
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert _keras_compat.learning_rate_object(keras.optimizers.SGD(schedule)) is (
        schedule
    )
    assert _keras_compat.metric_direction(keras.metrics.Accuracy()) == "up"
    assert _keras_compat.metric_direction(keras.metrics.MeanSquaredError()) == "down"


def test_replaced_call_is_undone_when_the_block_raises():
    layer = keras.layers.Dense(2)
    with pytest.raises(RuntimeError), _keras_compat.replaced_call(layer, lambda x: x):
        assert layer(np.ones((1, 3), "float32")).shape == (1, 3)
        raise RuntimeError
    assert "call" not in vars(layer)
    assert layer(np.ones((1, 3), "float32")).shape == (1, 2)


class _Probe(keras.callbacks.Callback):
    """Records what `calling_instance` sees from its hooks and saves."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def set_model(self, model):
        super().set_model(model)
        self.seen.append(_keras_compat.calling_instance(keras.callbacks.CallbackList))


class _Saved(keras.Operation):
    """A model attribute that records who saves and loads the weights file."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def save_own_variables(self, store):
        self.seen.append(
            _keras_compat.calling_instance(keras.callbacks.BackupAndRestore)
        )

    def load_own_variables(self, store):
        self.save_own_variables(store)


def test_calling_instance_sees_the_callback_list_and_the_backup(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model._saved = _Saved()
    probe = _Probe()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0, callbacks=[probe, backup])
    assert probe in probe.seen[0].callbacks
    assert model._saved.seen == [backup]
    model.save_weights(tmp_path / "own.weights.h5")
    model.load_weights(tmp_path / "own.weights.h5")
    assert model._saved.seen == [backup, None, None]
