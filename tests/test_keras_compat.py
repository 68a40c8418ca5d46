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


def test_no_foreign_class_is_patched_and_no_frame_is_read():
    """keras_tricks replaces no method of a class it does not own and reads
    no Python stack frame: checked over its source."""
    import ast
    import pathlib

    import keras_tricks

    root = pathlib.Path(keras_tricks.__file__).parent
    offences = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in (
                "_getframe",
                "f_back",
                "f_locals",
                "currentframe",
            ):
                offences.append(f"{path.name}:{node.lineno} reads {node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == (
                "__subclasses__"
            ):
                offences.append(f"{path.name}:{node.lineno} walks subclasses")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", ""))
                == "patched"
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id[:1].isupper()
            ):
                offences.append(f"{path.name}:{node.lineno} patches a class")
    assert offences == []
