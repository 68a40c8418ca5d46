"""OneCycleMomentum: the momentum of torch's OneCycleLR, inside a compiled fit."""

import json

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import OneCycleMomentum
from keras_tricks.schedules import OneCycle

pytestmark = pytest.mark.jax

STEPS = 10


def _torch_momentum(step, total, pct_start=0.3, base=0.85, peak=0.95):
    """torch.optim.lr_scheduler.OneCycleLR's momentum (cos, two phases)."""
    end_up = float(pct_start * total) - 1
    if step <= end_up:
        start, end, pct = peak, base, step / end_up
    else:
        start, end = base, peak
        pct = (step - end_up) / (total - 1 - end_up)
    return end + (start - end) / 2 * (1 + np.cos(np.pi * pct))


def _torch_lr(step, total, peak=0.1, pct_start=0.3, div=25.0, final=1e4):
    end_up = float(pct_start * total) - 1
    initial = peak / div
    if step <= end_up:
        start, end, pct = initial, peak, step / end_up
    else:
        start, end = peak, initial / final
        pct = (step - end_up) / (total - 1 - end_up)
    return end + (start - end) / 2 * (1 + np.cos(np.pi * pct))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * STEPS, 2)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def _model(momentum=0.9):
    keras.utils.set_random_seed(0)
    schedule = OneCycle(0.1, total_steps=STEPS)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum)
    model.compile(optimizer, "mse", jit_compile=True)
    return model


def _numpy_sgd(weights, x, y, momentum):
    """SGD with Keras's velocity rule, rate and momentum from torch's formulas."""
    w, b = (v.astype("float64") for v in weights)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for step in range(STEPS):
        xb, yb = x[4 * step : 4 * step + 4], y[4 * step : 4 * step + 4]
        grad = 2 * (xb @ w + b - yb) / len(xb)
        lr, mom = _torch_lr(step, STEPS), momentum(step)
        vw = mom * vw - lr * (xb.T @ grad)
        vb = mom * vb - lr * grad.sum(axis=0)
        w, b = w + vw, b + vb
    return w, b


@pytest.mark.xla
def test_momentum_follows_torchs_one_cycle_every_step(data):
    x, y = data
    model = _model()
    start = [v.numpy() for v in model.trainable_variables]
    model.fit(
        x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[OneCycleMomentum()]
    )
    cycled = _numpy_sgd(start, x, y, lambda s: _torch_momentum(s, STEPS))
    constant = _numpy_sgd(start, x, y, lambda s: 0.9)
    actual = [v.numpy() for v in model.trainable_variables]
    for a, expected in zip(actual, cycled, strict=True):
        np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(actual[0], constant[0], rtol=1e-3)


def test_the_optimizer_is_left_as_it_was(data, tmp_path):
    x, y = data
    model = _model()
    model.fit(
        x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[OneCycleMomentum()]
    )
    assert type(model.optimizer.momentum) is float
    assert model.optimizer.momentum == 0.9
    assert json.dumps(model.optimizer.get_config()["momentum"]) == "0.9"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.momentum == 0.9


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (lambda: keras.optimizers.SGD(OneCycle(0.1, STEPS)), "no momentum"),
        (lambda: keras.optimizers.SGD(0.1, momentum=0.9), "OneCycle"),
    ],
)
def test_refused_without_a_cycle_or_a_momentum(data, optimizer, match):
    x, y = data
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer(), "mse")
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, verbose=0, callbacks=[OneCycleMomentum()])


def test_adam_beta_1_is_cycled(data):
    x, y = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(OneCycle(0.1, STEPS)), "mse")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(
                float(
                    keras.ops.convert_to_numpy(
                        keras.ops.cast(self.model.optimizer.beta_1, "float32")
                    )
                )
            )

    model.fit(
        x,
        y,
        batch_size=4,
        shuffle=False,
        verbose=0,
        callbacks=[OneCycleMomentum(), Probe()],
    )
    expected = [_torch_momentum(s, STEPS) for s in range(STEPS)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5)
    assert model.optimizer.beta_1 == 0.9
