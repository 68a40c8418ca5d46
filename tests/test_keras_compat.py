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
        keras.layers.Layer: keras.layers.Dense(1),
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


def test_patched_restores_whatever_was_there():
    optimizer = keras.optimizers.SGD(0.1)
    with _keras_compat.patched(optimizer, "apply", "outer"):
        with _keras_compat.patched(optimizer, "apply", "inner"):
            assert optimizer.apply == "outer"  # reference counted: first wins
        assert optimizer.apply == "outer"
    assert "apply" not in vars(optimizer)
    optimizer.marker = "mine"
    with pytest.raises(RuntimeError), _keras_compat.patched(optimizer, "marker", 1):
        raise RuntimeError
    assert optimizer.marker == "mine"


def test_clipping_replaced_is_the_step_keras_clips_in():
    optimizer = keras.optimizers.SGD(1.0)
    variable = keras.Variable(np.zeros(2, "float32"))
    with _keras_compat.clipping_replaced(
        optimizer, lambda grads: [g * 0 for g in grads]
    ):
        optimizer.apply([np.ones(2, "float32")], [variable])
    np.testing.assert_array_equal(variable.numpy(), 0.0)
    assert "_clip_gradients" not in vars(optimizer)


def _resolve(name):
    import importlib

    parts = name.split(".")
    parts[0] = "tensorflow" if parts[0] == "tf" else parts[0]
    for cut in range(len(parts), 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            owner = getattr(owner, part)
        return owner
    raise ImportError(name)


def test_tensorflow_internals_exist():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow internals")
    import tensorflow as tf

    for name, feature in _keras_compat.TENSORFLOW_INTERNALS.items():
        try:
            _resolve(name)
        except (ImportError, AttributeError) as error:
            raise AssertionError(
                f"TensorFlow {tf.__version__} has no `{name}`; this breaks: "
                f"{feature}. Update keras_tricks/_keras_compat.py."
            ) from error
    assert isinstance(_keras_compat.strategy_supports_no_merge_call(), bool)


def test_forgotten_custom_gradients_leave_the_registry():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's gradient registry")
    import tensorflow as tf

    registry = _resolve("tensorflow.python.framework.ops._gradient_registry")
    names = []

    @tf.function
    def step(x):
        with _keras_compat.recording_custom_gradients(names):
            return tf.distribute.get_replica_context().all_reduce("sum", x)

    step(tf.ones(2))
    assert names and all(name in registry._registry for name in names)
    recorded = list(names)
    _keras_compat.forget_custom_gradients(names)
    assert names == [] and not set(recorded) & set(registry._registry)


@pytest.mark.xla
@pytest.mark.parametrize("jit", [False, True])
def test_masked_assignments_mask_every_assignment_method(jit):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow variables")

    import tensorflow as tf

    variable = tf.Variable([1.0, 2.0, 3.0])
    sparse = tf.IndexedSlices(tf.constant([5.0]), tf.constant([1]), tf.constant([3]))

    @tf.function(jit_compile=jit)
    def step(keep):
        with _keras_compat.masked_assignments(keep):
            variable.assign([4.0, 4.0, 4.0])
            variable.assign_add([1.0, 2.0, 3.0])
            variable.assign_sub([0.5, 0.5, 0.5])
            variable.scatter_add(sparse)
            variable.scatter_sub(tf.IndexedSlices(2 * sparse.values, sparse.indices))
            variable.scatter_update(tf.IndexedSlices([np.nan], [0]))

    methods = _keras_compat._assignment_methods()
    assert {name for _, name in methods} == set(_keras_compat._MASKING)
    before = {(cls, name): vars(cls)[name] for cls, name in methods}
    step(tf.constant(False))
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0, 3.0])
    step(tf.constant(True))
    # 4 + (1, 2, 3) - 0.5, then +5 -10 at index 1, then NaN at index 0.
    np.testing.assert_array_equal(variable.numpy(), [np.nan, 0.5, 6.5])
    assert {(cls, name): vars(cls)[name] for cls, name in methods} == before


@pytest.mark.xla
def test_in_xla_context_sees_jit_compile():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow functions")
    import tensorflow as tf

    seen = []

    def probe(x):
        seen.append(_keras_compat.in_xla_context())
        return x

    tf.function(probe, jit_compile=True)(tf.ones(1))
    tf.function(probe, jit_compile=False)(tf.ones(1))
    tf.function(lambda x: tf.function(probe, jit_compile=True)(x))(tf.ones(1))
    probe(tf.ones(1))
    assert seen == [True, False, True, False]


def test_masked_assignments_leave_other_threads_alone():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow variables")
    import threading

    import tensorflow as tf

    variable = tf.Variable(0.0)
    with _keras_compat.masked_assignments(tf.constant(False)):
        variable.assign_add(1.0)
        other = threading.Thread(target=variable.assign_add, args=(10.0,))
        other.start()
        other.join()
    assert float(variable.numpy()) == 10.0


def test_saveable_base_is_what_keras_saving_walks():
    assert isinstance(keras.layers.Dense(1), _keras_compat.SAVEABLE_BASE)
    assert isinstance(keras.optimizers.SGD(), _keras_compat.SAVEABLE_BASE)


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
