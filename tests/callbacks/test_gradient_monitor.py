"""GradientMonitor: logs, warnings and stopping, on real fits."""

import copy
import warnings

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import GradientMonitor
from keras_tricks.callbacks._base import TrainingCallback
from keras_tricks.optimizers import GradientClipping
from tests.optimizers import _linear


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


@pytest.mark.xla
def test_stop_on_nonfinite_keeps_last_finite_weights(digits):
    """Under XLA (the masked update; the other stop tests run without it)."""
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


@pytest.mark.compat
def test_config_round_trip():
    monitor = GradientMonitor(
        vanishing_threshold=1e-4,
        stop_on_nonfinite=True,
        per_layer=False,
        layers=["head"],
        ratio_every=3,
    )
    assert isinstance(monitor, TrainingCallback)
    clone = GradientMonitor.from_config(monitor.get_config())
    assert clone.get_config() == monitor.get_config()
    config = keras.saving.serialize_keras_object(monitor)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.get_config() == monitor.get_config()
    assert copy.deepcopy(monitor).get_config() == monitor.get_config()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vanishing_threshold": 0}, ValueError, "vanishing_threshold=0"),
        ({"vanishing_threshold": 1.5}, ValueError, "vanishing_threshold=1.5"),
        ({"exploding_threshold": -1.0}, ValueError, "exploding_threshold=-1.0"),
        ({"stop_on_nonfinite": "yes"}, TypeError, "stop_on_nonfinite='yes'"),
        ({"per_layer": 1}, TypeError, "per_layer=1"),
        ({"layers": "head"}, TypeError, "layers='head'"),
        ({"ratio_every": 0}, ValueError, "ratio_every=0"),
        ({"ratio_every": 2.5}, TypeError, "ratio_every=2.5"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GradientMonitor(**kwargs)


def _expected_figures(x, y, clip, ratio_every):
    """The monitor's figures for one epoch of SGD(0.1), in NumPy."""
    weights = _linear.weights()
    norms, layer_norms, ratios, nonfinite = [], [], [], 0
    for step, (xb, yb) in enumerate(_linear.batches(x, y)):
        grads = _linear.grads(weights, xb, yb)
        if not all(np.isfinite(g).all() for g in grads):
            nonfinite += 1  # skipped by GradientClipping
            continue
        layers = [
            np.sqrt((grads[i] ** 2).sum() + (grads[i + 1] ** 2).sum()) for i in (0, 2)
        ]
        total = np.sqrt(sum((g**2).sum() for g in grads))
        scale = min(1.0, clip / total) if clip else 1.0
        new = [w - 0.1 * scale * g for w, g in zip(weights, grads, strict=True)]
        if step % ratio_every == 0:
            ratios.append(
                [
                    np.sqrt(sum(((new[j] - weights[j]) ** 2).sum() for j in (i, i + 1)))
                    / np.sqrt(sum((weights[j] ** 2).sum() for j in (i, i + 1)))
                    for i in (0, 2)
                ]
            )
        norms.append(total)
        layer_norms.append(layers)
        weights = new
    return {
        "grad_norm_mean": np.mean(norms),
        "grad_norm_max": np.max(norms),
        "grad_nonfinite_steps": nonfinite,
        "grad_norm/hidden": np.mean(layer_norms, axis=0)[0],
        "grad_norm/head": np.mean(layer_norms, axis=0)[1],
        "update_ratio/hidden": np.mean(ratios, axis=0)[0],
        "update_ratio/head": np.mean(ratios, axis=0)[1],
    }


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize(
    ("clip", "ratio_every"), [(None, 1), (0.5, 2)], ids=["sgd", "clipped-sampled"]
)
def test_figures_match_numpy_on_every_backend(clip, ratio_every):
    """Issues 13 and 17: the same figures on TensorFlow and JAX (jit); the
    update ratio sampled every `ratio_every` steps equals the every-step
    ratio on the steps it is taken; GradientClipping's skipped NaN step is
    counted (issue 12 item 4)."""
    x, y = _linear.data(nan_batch=None if clip is None else 1, n_batches=4)
    optimizer = keras.optimizers.SGD(0.1)
    if clip is not None:
        optimizer = GradientClipping(optimizer, threshold=clip)
    net = _linear.model(optimizer)
    monitor = GradientMonitor(ratio_every=ratio_every)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = net.fit(
            x,
            y,
            batch_size=_linear.BATCH,
            shuffle=False,
            verbose=0,
            callbacks=[monitor],
        )
    expected = _expected_figures(x, y, clip, ratio_every)
    logs = {k: v[0] for k, v in history.history.items() if k != "loss"}
    assert sorted(logs) == sorted(expected)
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-5), key
    assert "stateless_apply" not in vars(net.optimizer)
    assert "apply" not in vars(net.optimizer)


@pytest.mark.jax
@pytest.mark.xla
@pytest.mark.parametrize("nan_batch", [None, 1])
def test_monitored_training_is_bit_for_bit_unmonitored(nan_batch):
    """The monitor observes: weights and optimizer slots after a monitored
    `fit` equal an unmonitored one exactly, a step with NaN gradients
    included (the NaN reaches the weights in both)."""
    x, y = _linear.data(nan_batch=nan_batch, n_batches=4)
    results = []
    for callbacks in ([GradientMonitor(ratio_every=2)], []):
        net = _linear.model(keras.optimizers.Adam(0.05))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net.fit(
                x,
                y,
                batch_size=_linear.BATCH,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        results.append(
            [keras.ops.convert_to_numpy(v) for v in net.weights]
            + [keras.ops.convert_to_numpy(v) for v in net.optimizer.variables]
        )
    assert np.isnan(results[0][0]).any() == (nan_batch is not None)
    for monitored, plain in zip(*results, strict=True):
        np.testing.assert_array_equal(monitored, plain)


class _RaiseAt(keras.callbacks.Callback):
    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            raise KeyboardInterrupt


@pytest.mark.jax
def test_fit_that_raises_leaves_the_model_uninstrumented():
    """Issue 12 item 3, issue 15: Keras skips `on_train_end` when `fit`
    raises; the next plain `fit` trains and removes the instrumentation."""
    x, y = _linear.data(nan_batch=0)
    net = _linear.model(keras.optimizers.SGD(0.1))
    plain = net.train_function
    monitor = GradientMonitor(stop_on_nonfinite=True)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(
            x,
            y,
            batch_size=_linear.BATCH,
            shuffle=False,
            verbose=0,
            callbacks=[monitor, _RaiseAt(1)],
        )
    for target in (net.optimizer, net):
        assert not {"apply", "stateless_apply", "train_step"} & set(vars(target))
    before = net.get_weights()
    np.testing.assert_array_equal(before[0], _linear.weights()[0])  # frozen
    x, y = _linear.data()
    net.fit(x, y, batch_size=_linear.BATCH, shuffle=False, verbose=0)
    for a, b in zip(net.get_weights(), before, strict=True):
        assert not np.array_equal(a, b)
    assert net.train_function is plain or plain is None


@pytest.mark.jax
def test_later_fits_reuse_the_instrumented_steps(monkeypatch):
    """Issue 17: the instrumented train functions are traced in the first
    `fit` only; a later `fit` with a new monitor and the same settings reuses
    them, with fresh figures and the stop flag cleared; `compile` makes new
    ones."""
    from keras_tricks.optimizers import _step_statistics

    traces = []
    original = _step_statistics.StepStatistics._train_step

    def counting(self, *args):
        traces.append(args[:2])
        return original(self, *args)

    monkeypatch.setattr(_step_statistics.StepStatistics, "_train_step", counting)
    x_bad, y = _linear.data(nan_batch=0)
    x, _ = _linear.data()
    fit = {"batch_size": _linear.BATCH, "shuffle": False, "verbose": 0}

    def monitored_fit(net, inputs):
        monitor = GradientMonitor(stop_on_nonfinite=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return net.fit(inputs, y, callbacks=[monitor], **fit).history

    net = _linear.model(keras.optimizers.SGD(0.1))
    assert monitored_fit(net, x_bad)["grad_nonfinite_steps"] == [1]
    assert traces
    frozen = net.get_weights()
    np.testing.assert_array_equal(frozen[0], _linear.weights()[0])
    history = monitored_fit(net, x)
    # Each (sampled, frozen) variant traced once at most, over both fits.
    assert len(traces) == len(set(traces))
    assert history["grad_nonfinite_steps"] == [0]
    assert not np.array_equal(net.get_weights()[0], frozen[0])
    fresh = _linear.model(keras.optimizers.SGD(0.1))
    expected = monitored_fit(fresh, x)
    for key, value in expected.items():
        assert history[key] == pytest.approx(value, rel=1e-6), key
    net.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=True)
    monitored_fit(net, x)
    assert len(traces) > len(set(traces))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's gradient registry"
)
def test_a_dropped_monitored_model_leaves_no_graph_in_the_registry(digits):
    """The instrumented steps kept with the model go with it."""
    import gc

    from tensorflow.python.framework import ops

    (x, y), _ = digits
    before = set(ops._gradient_registry._registry)
    model = _mlp("relu", "he_normal", 1, keras.optimizers.SGD(0.1))
    for _ in range(2):
        model.fit(x[:64], y[:64], verbose=0, callbacks=[GradientMonitor()])
    assert set(ops._gradient_registry._registry) - before
    del model
    gc.collect()
    assert not set(ops._gradient_registry._registry) - before


def test_keys_layers_filter_and_per_layer(digits):
    """Issue 16: stable keys (no model name), `layers` and `per_layer`."""
    (x, y), _ = digits
    keys = []
    for kwargs in ({}, {"layers": ["dense_a", "out"]}, {"per_layer": False}):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(8, name="dense_a"),
                keras.layers.Dense(8, name="dense_b"),
                keras.layers.Dense(10, name="out"),
            ]
        )
        model.compile(keras.optimizers.SGD(0.01), "mse")
        history = model.fit(
            x[:16],
            np.eye(10)[y[:16]],
            verbose=0,
            callbacks=[GradientMonitor(**kwargs)],
        )
        assert not any(model.name in key for key in history.history)
        keys.append(sorted(k for k in history.history if "/" in k))
    assert keys[0] == sorted(
        f"{kind}/{layer}"
        for kind in ("grad_norm", "update_ratio")
        for layer in ("dense_a", "dense_b", "out")
    )
    assert keys[1] == [
        "grad_norm/dense_a",
        "grad_norm/out",
        "update_ratio/dense_a",
        "update_ratio/out",
    ]
    assert keys[2] == []
    with pytest.raises(ValueError, match="'nope' matches none of"):
        model.fit(
            x[:16],
            np.eye(10)[y[:16]],
            verbose=0,
            callbacks=[GradientMonitor(layers=["nope"])],
        )


@pytest.mark.parametrize("monitor_first", [True, False])
def test_csv_logger_gets_the_figures_in_either_order(digits, tmp_path, monitor_first):
    """Issue 16: the figures are in the logs before any `on_epoch_end`."""
    (x, y), _ = digits
    model = _mlp("relu", "he_normal", 1, keras.optimizers.SGD(0.01))
    path = tmp_path / "log.csv"
    callbacks = [GradientMonitor(per_layer=False), keras.callbacks.CSVLogger(path)]
    if not monitor_first:
        callbacks.reverse()
    model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
    header, *rows = path.read_text().splitlines()
    assert {"grad_norm_mean", "grad_norm_max", "grad_nonfinite_steps"} <= set(
        header.split(",")
    )
    assert len(rows) == 2


@pytest.mark.jax
@pytest.mark.parametrize("clip", [False, True])
def test_mixed_precision_on_the_first_fit(clip):
    # Issue 23.4: the monitor read the loss scale before Keras built the
    # LossScaleOptimizer (in the first trace): AttributeError.
    x, y = _linear.data(n_batches=4)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.SGD(0.1)
        net = _linear.model(GradientClipping(optimizer) if clip else optimizer)
        history = net.fit(
            x,
            y,
            batch_size=_linear.BATCH,
            shuffle=False,
            verbose=0,
            callbacks=[GradientMonitor()],
        )
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(net.optimizer, keras.optimizers.LossScaleOptimizer)
    # The unscaled norm: of the order of the float32 run's (the loss scale
    # starts at 2**15; its first overflowing steps change the trajectory).
    plain = _linear.model(keras.optimizers.SGD(0.1))
    expected = plain.fit(
        x,
        y,
        batch_size=_linear.BATCH,
        shuffle=False,
        verbose=0,
        callbacks=[GradientMonitor()],
    ).history["grad_norm_mean"]
    ratio = history.history["grad_norm_mean"][0] / expected[0]
    assert 0.2 < ratio < 5
