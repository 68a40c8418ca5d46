"""What every layer of keras_tricks.layers must do: save, jit, replicas, fp16, seeds."""

import keras
import numpy as np
import pytest

from keras_tricks.layers import (
    ClassicDropout,
    DropConnectDense,
    DropPath,
    GhostBatchNormalization,
    MCDropout,
    mc_predict,
)
from tests.helpers import assert_roundtrip

FACTORIES = {
    "ghost_bn": lambda seed=1: GhostBatchNormalization(8, momentum=0.9),
    "classic_dropout": lambda seed=1: ClassicDropout(0.3, seed=seed),
    "mc_dropout": lambda seed=1: MCDropout(0.3, seed=seed),
    "drop_connect": lambda seed=1: DropConnectDense(
        8, 0.3, seed=seed, activation="relu", kernel_initializer="ones"
    ),
    "drop_path": lambda seed=1: DropPath(0.3, seed=seed),
}
STOCHASTIC = ["classic_dropout", "mc_dropout", "drop_connect", "drop_path"]


def _model():
    """One small model holding every layer, so each check compiles once."""
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh")]
        + [factory() for factory in FACTORIES.values()]
        + [keras.layers.Dense(3, activation="softmax")]
    )


def _data(rng, rows=64):
    return rng.normal(size=(rows, 6)).astype("float32"), rng.integers(0, 3, rows)


@pytest.fixture
def mixed_precision():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(policy)


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize("name", list(FACTORIES))
def test_config_is_complete(name):
    layer = FACTORIES[name]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    registered = keras.saving.get_registered_name(type(layer))
    assert registered == f"keras_tricks>{type(layer).__name__}"


@pytest.mark.compat
def test_save_load_round_trip_after_training(tmp_path, rng):
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(rng)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers
    ]
    # MCDropout is random at inference too: compare seeded Monte-Carlo passes.
    for ours, theirs in zip(
        mc_predict(model, x, samples=3, seed=5),
        mc_predict(loaded, x, samples=3, seed=5),
        strict=True,
    ):
        np.testing.assert_array_equal(theirs, ours)


@pytest.mark.parametrize(
    "name", ["ghost_bn", "classic_dropout", "drop_connect", "drop_path"]
)
def test_deterministic_layers_round_trip(name, tmp_path, rng):
    model = keras.Sequential([keras.Input((6,)), FACTORIES[name]()])
    model(rng.normal(size=(16, 6)), training=True)
    assert_roundtrip(model, rng.normal(size=(8, 6)), tmp_path)


@pytest.mark.compat
@pytest.mark.xla
def test_jit_compiled_fit(rng):
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile  # the `xla` marker keeps Keras from turning it off
    x, y = _data(rng, rows=40)  # the last batch (8 rows) is a partial one
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.all(np.isfinite(model.predict(x, batch_size=len(x), verbose=0)))


def test_mirrored_strategy_fit(strategy, rng):
    with strategy.scope():
        model = _model()
        model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(rng)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_mixed_float16(mixed_precision, rng):
    model = _model()
    x = rng.normal(size=(16, 6)).astype("float32")
    h = model.layers[0](x)
    for layer in model.layers[1:-1]:
        assert layer.compute_dtype == "float16"
        assert all(w.dtype == "float32" for w in layer.weights if w.trainable)
        for training in (True, False):
            out = layer(h, training=training)
            assert keras.backend.standardize_dtype(out.dtype) == "float16"
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
        h = out
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, rng.integers(0, 3, 16), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name", STOCHASTIC)
def test_seeded_masks_repeat_and_differ_between_seeds(name):
    x = np.ones((16, 8), "float32")

    def output(seed):
        layer = FACTORIES[name](seed)
        return keras.ops.convert_to_numpy(layer(x, training=True))

    np.testing.assert_array_equal(output(3), output(3))
    assert not np.array_equal(output(3), output(4))


@pytest.mark.parametrize("name", STOCHASTIC)
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_outside_unit_interval(name, rate):
    cls = type(FACTORIES[name]())
    args = (8, rate) if cls is DropConnectDense else (rate,)
    with pytest.raises(ValueError, match=rf"`rate`.*\[0, 1\).*Received: rate={rate}"):
        cls(*args)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("ghost_bn", (4,)),
        ("classic_dropout", ()),
        ("mc_dropout", ()),
        ("drop_connect", (4,)),
        ("drop_path", (4,)),
    ],
)
def test_wrong_input_rank(name, shape):
    with pytest.raises(ValueError, match="`inputs`.*Expected rank >= "):
        FACTORIES[name]().build(shape)


def _fraction_in(allowed):
    def metric(y_true, y_pred):
        distance = [keras.ops.abs(y_pred - value) for value in allowed]
        hit = keras.ops.min(keras.ops.stack(distance), axis=0) < 1e-5
        return keras.ops.mean(keras.ops.cast(hit, "float32"), axis=-1)

    metric.__name__ = "in_set"
    return metric


def _zeros(y_true, y_pred):
    return keras.ops.mean(keras.ops.cast(y_pred == 0, "float32"), axis=-1)


def _rows_differ(y_true, y_pred):
    spread = keras.ops.max(y_pred, axis=0) - keras.ops.min(y_pred, axis=0)
    return keras.ops.broadcast_to(keras.ops.max(spread), keras.ops.shape(y_pred)[:1])


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_training_masks_inside_a_jit_compiled_fit():
    """The metrics see the training outputs of each layer on inputs of ones,
    inside `fit(jit_compile=True)`: only the values the formula allows."""
    inputs = keras.Input((16,))
    layers = {
        "classic": ClassicDropout(0.5, seed=1, name="classic"),  # m * x: 0 or 1
        "mc": MCDropout(0.5, seed=2, name="mc"),  # m * x / 0.5: 0 or 2
        "path": DropPath(0.5, seed=3, name="path"),  # per sample: all 0 or all 2
        "connect": DropConnectDense(  # 2 * (kept weights of the column)
            16,
            0.5,
            seed=4,
            kernel_initializer="ones",
            bias_initializer="zeros",
            name="connect",
        ),
    }
    # Each layer is named after its output key: Keras before 3.12 matches the
    # dict of metrics to the outputs by layer name, not by key.
    model = keras.Model(inputs, {name: layer(inputs) for name, layer in layers.items()})
    metrics = {
        "classic": [_fraction_in([0, 1]), _zeros],
        "mc": [_fraction_in([0, 2]), _zeros],
        "path": [_fraction_in([0, 2]), _zeros],
        "connect": [_fraction_in(range(0, 34, 2)), _rows_differ],
    }
    model.compile(keras.optimizers.SGD(0.0), "mse", metrics=metrics, jit_compile=True)
    ones = np.ones((256, 16), "float32")
    logs = model.fit(
        ones, {name: ones for name in layers}, batch_size=64, epochs=1, verbose=0
    ).history
    logs = {key: value[-1] for key, value in logs.items()}
    for name in layers:
        assert logs[f"{name}_in_set"] == 1.0
    # 4096 Bernoulli(0.5) draws: standard error 0.008; drop-path: 256 samples.
    assert logs["classic__zeros"] == pytest.approx(0.5, abs=0.04)
    assert logs["mc__zeros"] == pytest.approx(0.5, abs=0.04)
    assert logs["path__zeros"] == pytest.approx(0.5, abs=0.12)
    assert logs["connect__rows_differ"] == 0.0  # one mask per step, all rows
