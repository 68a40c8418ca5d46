"""GradientMonitor: logs, warnings and stopping, on real fits."""

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import GradientMonitor
from keras_tricks.optimizers import GradientClipping


def _mlp(activation, initializer, depth, optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(
                32, activation=activation, kernel_initializer=initializer
            )
            for _ in range(depth)
        ]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    return model


@pytest.mark.parametrize("wrapped", [False, True])
def test_logs_match_numpy_for_one_step(digits, wrapped):
    (x, y), _ = digits
    optimizer = keras.optimizers.SGD(0.1)
    if wrapped:
        optimizer = GradientClipping(optimizer, threshold=100.0)
    model = _mlp("relu", "he_normal", 2, optimizer)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(
        x[:64], y[:64], batch_size=64, verbose=0, callbacks=[GradientMonitor()]
    )
    after = model.get_weights()
    logs = {k: v[0] for k, v in history.history.items()}
    for i, layer in enumerate(model.layers):
        delta = np.sqrt(
            sum(
                ((a - b) ** 2).sum()
                for a, b in zip(
                    after[2 * i : 2 * i + 2], before[2 * i : 2 * i + 2], strict=True
                )
            )
        )
        weight = np.sqrt(sum((b**2).sum() for b in before[2 * i : 2 * i + 2]))
        key = layer.name
        # SGD: the update is lr * g, so ||g_layer|| = ||delta|| / lr.
        assert logs[f"grad_norm/{key}"] == pytest.approx(delta / 0.1, rel=1e-4)
        assert logs[f"update_ratio/{key}"] == pytest.approx(delta / weight, rel=1e-4)
    total = (
        np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
        / 0.1
    )
    assert logs["grad_norm_mean"] == pytest.approx(total, rel=1e-4)
    assert logs["grad_norm_max"] == pytest.approx(total, rel=1e-4)
    assert logs["grad_nonfinite_steps"] == 0


def test_vanishing_in_deep_sigmoid_not_in_relu_he(digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    sigmoid = _mlp("sigmoid", "glorot_uniform", 20, keras.optimizers.SGD(0.01))
    monitor = GradientMonitor()
    with pytest.warns(UserWarning, match="epoch 1: vanishing gradients in layer"):
        sigmoid.fit(x, y, batch_size=64, verbose=0, callbacks=[monitor])
    flagged = monitor.vanishing[0]
    assert sigmoid.layers[0].name in flagged
    assert sigmoid.layers[-1].name not in flagged
    relu = _mlp("relu", "he_normal", 20, keras.optimizers.SGD(0.01))
    monitor = GradientMonitor()
    relu.fit(x, y, batch_size=64, verbose=0, callbacks=[monitor])
    assert monitor.vanishing == {} and monitor.exploding == {}


def test_stop_on_nonfinite_keeps_last_finite_weights(digits):
    (x, y), _ = digits
    x = x[:128].copy()
    x[70, 0] = np.nan  # third batch of 32
    model = _mlp("relu", "he_normal", 2, keras.optimizers.SGD(0.1))
    reference = _mlp("relu", "he_normal", 2, keras.optimizers.SGD(0.1))
    reference.fit(x[:64], y[:64], batch_size=32, shuffle=False, verbose=0)
    monitor = GradientMonitor(stop_on_nonfinite=True)
    with pytest.warns(UserWarning, match="training stops"):
        history = model.fit(
            x,
            y[:128],
            epochs=3,
            batch_size=32,
            shuffle=False,
            verbose=0,
            callbacks=[monitor],
        )
    assert len(history.history["loss"]) == 1
    assert monitor.exploding[0]
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_plain_fit_afterwards_is_not_instrumented(digits):
    (x, y), _ = digits
    model = _mlp("relu", "he_normal", 1, keras.optimizers.SGD(0.1))
    model.fit(x[:32], y[:32], verbose=0, callbacks=[GradientMonitor()])
    assert "apply" not in vars(model.optimizer)
    history = model.fit(x[:32], y[:32], verbose=0)
    assert "grad_norm_mean" not in history.history


def test_config_round_trip():
    monitor = GradientMonitor(vanishing_threshold=1e-4, stop_on_nonfinite=True)
    clone = GradientMonitor.from_config(monitor.get_config())
    assert clone.get_config() == monitor.get_config()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vanishing_threshold": 0}, ValueError, "vanishing_threshold=0"),
        ({"vanishing_threshold": 1.5}, ValueError, "vanishing_threshold=1.5"),
        ({"exploding_threshold": -1.0}, ValueError, "exploding_threshold=-1.0"),
        ({"stop_on_nonfinite": "yes"}, TypeError, "stop_on_nonfinite='yes'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GradientMonitor(**kwargs)
