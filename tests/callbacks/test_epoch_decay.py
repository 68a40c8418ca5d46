import keras
import numpy as np
import pytest

from keras_tricks.callbacks import EpochDecay
from tests.callbacks.helpers import TraceCounter, linear_data, linear_model


@pytest.mark.parametrize(
    ("factor", "min_lr", "start_epoch"),
    [(0.5, 0.0, 0), (0.98, 0.0, 0), (0.5, 0.02, 0), (0.5, 0.0, 2), (1.0, 0.0, 0)],
)
def test_formula(factor, min_lr, start_epoch, rng):
    model = linear_model(keras.optimizers.SGD(0.1))
    history = model.fit(
        *linear_data(rng),
        epochs=5,
        verbose=0,
        callbacks=[EpochDecay(factor, min_lr=min_lr, start_epoch=start_epoch)],
    )
    expected = [max(0.1 * factor ** max(0, t - start_epoch), min_lr) for t in range(5)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    final = max(0.1 * factor ** max(0, 5 - start_epoch), min_lr)
    assert float(model.optimizer.learning_rate) == pytest.approx(final, rel=1e-6)


@pytest.mark.xla
@pytest.mark.parametrize("jit_compile", [False, True])
def test_never_retraces(jit_compile, rng):
    x, y = linear_data(rng)
    counts = []
    for callbacks, epochs in [([], 1), ([EpochDecay(0.5)], 4)]:
        model = linear_model(keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        before = TraceCounter.traces
        model.fit(x, y, epochs=epochs, verbose=0, callbacks=callbacks)
        counts.append(TraceCounter.traces - before)
    assert counts[0] == counts[1]


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_changes_the_sgd_step_inside_a_jit_compiled_fit():
    # One weight, mse of Dense(1, no bias) on x = 1, y = 0: grad = 2 w, so each
    # epoch (one step) multiplies w by (1 - 2 lr_t), lr_t = 0.1 * 0.5 ** t.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign([[1.0]])
    model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=True)
    history = model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=3,
        verbose=0,
        callbacks=[EpochDecay(0.5)],
    )
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])
    expected = (1 - 0.2) * (1 - 0.1) * (1 - 0.05)
    assert float(model.layers[0].kernel[0, 0]) == pytest.approx(expected, rel=1e-6)


def test_through_a_wrapper_optimizer(rng):
    inner = keras.optimizers.SGD(0.1)
    model = linear_model(keras.optimizers.LossScaleOptimizer(inner))
    history = model.fit(
        *linear_data(rng), epochs=3, verbose=0, callbacks=[EpochDecay(0.5)]
    )
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])
    assert float(inner.learning_rate) == pytest.approx(0.0125)


def test_decays_every_sub_optimizer_of_a_multi_optimizer():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, name="body"), keras.layers.Dense(1)]
    )
    mapping = keras.optimizers.OptimizerMap(
        default_optimizer=keras.optimizers.SGD(0.1, name="head_sgd")
    )
    mapping["^body/.*"] = keras.optimizers.Adam(0.01, name="body_adam")
    model.compile(keras.optimizers.MultiOptimizer(mapping), "mse")
    decay = EpochDecay(0.5)
    decay.set_model(model)
    decay.on_train_begin()
    logs = {}
    for epoch in range(2):
        logs = {}
        decay.on_epoch_end(epoch, logs)
    assert logs == pytest.approx(
        {"learning_rate_body_adam": 0.005, "learning_rate_head_sgd": 0.05}
    )
    rates = [float(opt.learning_rate) for opt in model.optimizer.optimizers]
    assert rates == pytest.approx([0.0025, 0.025])


def test_under_mirrored_strategy(strategy, rng):
    with strategy.scope():
        model = linear_model(keras.optimizers.SGD(0.1))
    history = model.fit(
        *linear_data(rng), epochs=3, verbose=0, callbacks=[EpochDecay(0.5)]
    )
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])


def test_rejects_a_schedule(rng):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = linear_model(keras.optimizers.SGD(schedule))
    with pytest.raises(TypeError, match="LearningRateSchedule.*ExponentialDecay"):
        model.fit(*linear_data(rng), epochs=1, verbose=0, callbacks=[EpochDecay()])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"factor": 0.0},
            ValueError,
            r"Expected a number in \(0, 1\]. Received: factor=0.0",
        ),
        ({"factor": 1.5}, ValueError, "Received: factor=1.5"),
        ({"factor": -0.5}, ValueError, "Received: factor=-0.5"),
        ({"factor": "0.9"}, TypeError, "Expected a number"),
        ({"min_lr": -1}, ValueError, "Received: min_lr=-1"),
        ({"start_epoch": 0.5}, TypeError, "Received: start_epoch=0.5"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EpochDecay(**kwargs)
