"""GradientClipping: the step it takes, against NumPy and Keras's own optimizers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tricks.optimizers import GradientClipping, clip_by_global_norm
from tests.helpers import assert_roundtrip

SHAPES = [(4, 3), (3,)]


def _setup(rng, scale=5.0):
    values = [rng.standard_normal(s).astype("float32") for s in SHAPES]
    grads = [scale * rng.standard_normal(s).astype("float32") for s in SHAPES]
    return values, grads


def _step(optimizer, values, grads, steps=1):
    variables = [keras.Variable(v, name=f"w{i}") for i, v in enumerate(values)]
    for _ in range(steps):
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _expected_clip(mode, grads, values, t):
    if mode == "global_norm":
        n = np.sqrt(sum((g**2).sum() for g in grads))
        return [g * min(1.0, t / n) for g in grads]
    if mode == "norm":
        return [g * min(1.0, t / np.linalg.norm(g)) for g in grads]
    if mode == "value":
        return [np.clip(g, -t, t) for g in grads]
    if mode == "normalize":
        n = np.sqrt(sum((g**2).sum() for g in grads))
        return [t * g / n for g in grads]
    out = []
    for g, w in zip(grads, values, strict=True):
        axes = tuple(range(g.ndim - 1)) if g.ndim > 1 else None
        wn = np.maximum(np.sqrt((w**2).sum(axis=axes)), 1e-3)
        gn = np.sqrt((g**2).sum(axis=axes))
        out.append(g * np.where(gn > t * wn, t * wn / gn, 1.0))
    return out


@pytest.mark.parametrize(
    ("mode", "threshold"),
    [
        ("global_norm", 1.0),
        ("norm", 1.0),
        ("value", 0.5),
        ("adaptive", 0.05),
        ("normalize", 2.0),
    ],
)
def test_step_matches_numpy(rng, mode, threshold):
    values, grads = _setup(rng)
    opt = GradientClipping(keras.optimizers.SGD(1.0), mode=mode, threshold=threshold)
    new = _step(opt, values, grads)
    clipped = _expected_clip(mode, grads, values, threshold)
    for w, v, c in zip(new, values, clipped, strict=True):
        np.testing.assert_allclose(w, v - c, rtol=1e-5, atol=1e-6)
    norms = [np.linalg.norm(g) for g in grads]
    np.testing.assert_allclose(opt.variable_norms.numpy(), norms, rtol=1e-5)
    assert float(opt.global_norm.numpy()) == pytest.approx(
        np.linalg.norm(norms), rel=1e-5
    )
    assert int(opt.clipped_steps.numpy()) == 1


def test_below_threshold_is_untouched(rng):
    values, grads = _setup(rng, scale=0.01)
    opt = GradientClipping(keras.optimizers.SGD(1.0), threshold=100.0)
    ref = _step(keras.optimizers.SGD(1.0), values, grads)
    for a, b in zip(_step(opt, values, grads), ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(opt.clipped_steps.numpy()) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.Adam(0.01),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
        lambda: keras.optimizers.RMSprop(0.01),
        lambda: keras.optimizers.Lion(0.01),
        lambda: keras.optimizers.SGD(
            keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
        ),
    ],
    ids=["sgd-nesterov", "adam", "adamw", "rmsprop", "lion", "schedule"],
)
def test_wraps_any_optimizer(rng, make):
    """Three steps of the wrapper equal the inner optimizer fed clipped grads."""
    values, grads = _setup(rng)
    clipped = [keras.ops.convert_to_numpy(g) for g in clip_by_global_norm(grads, 1.0)]
    ours = _step(GradientClipping(make()), values, grads, steps=3)
    theirs = _step(make(), values, clipped, steps=3)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_learning_rate_reads_and_writes_through():
    inner = keras.optimizers.SGD(0.1)
    opt = GradientClipping(inner)
    opt.learning_rate = 0.02
    assert float(inner.learning_rate.numpy()) == pytest.approx(0.02)
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.02)


def test_weight_decay_is_not_clipped(rng):
    values, grads = _setup(rng)
    opt = GradientClipping(keras.optimizers.SGD(1.0, weight_decay=0.1))
    new = _step(opt, values, grads)
    clipped = _expected_clip("global_norm", grads, values, 1.0)
    for w, v, c in zip(new, values, clipped, strict=True):
        np.testing.assert_allclose(w, v - 0.1 * v - c, rtol=1e-5, atol=1e-6)


def test_clips_accumulated_gradient(rng):
    values, g1 = _setup(rng)
    _, g2 = _setup(rng)
    inner = keras.optimizers.SGD(1.0, gradient_accumulation_steps=2)
    opt = GradientClipping(inner)
    variables = [keras.Variable(v) for v in values]
    opt.apply(g1, variables)
    np.testing.assert_array_equal(variables[0].numpy(), values[0])  # accumulating
    opt.apply(g2, variables)
    mean = [(a + b) / 2 for a, b in zip(g1, g2, strict=True)]
    clipped = _expected_clip("global_norm", mean, values, 1.0)
    for var, v, c in zip(variables, values, clipped, strict=True):
        np.testing.assert_allclose(var.numpy(), v - c, rtol=1e-5, atol=1e-6)
    assert int(opt.clipped_steps.numpy()) == 1


@pytest.mark.parametrize("order", ["clip-outside", "clip-inside"])
def test_clips_unscaled_gradients_with_loss_scaling(rng, order):
    values, grads = _setup(rng)
    scale = 2.0**10
    if order == "clip-outside":
        opt = GradientClipping(
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0), scale)
        )
    else:
        opt = keras.optimizers.LossScaleOptimizer(
            GradientClipping(keras.optimizers.SGD(1.0)), scale
        )
    # A custom loop scales the loss with the optimizer it steps with.
    assert float(opt.scale_loss(1.0)) == scale
    new = _step(opt, values, [g * scale for g in grads])
    step = np.sqrt(sum(((w - v) ** 2).sum() for w, v in zip(new, values, strict=True)))
    assert step == pytest.approx(1.0, rel=1e-5)  # threshold, not threshold * scale


def test_skip_nonfinite_changes_nothing(rng):
    values, grads = _setup(rng)
    opt = GradientClipping(keras.optimizers.Adam(0.1))
    variables = [keras.Variable(v) for v in values]
    opt.apply(grads, variables)
    state = [v.numpy().copy() for v in opt.inner_optimizer.variables]
    weights = [v.numpy().copy() for v in variables]
    bad = [g.copy() for g in grads]
    bad[1][0] = np.nan
    opt.apply(bad, variables)
    for a, b in zip(variables, weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    for a, b in zip(opt.inner_optimizer.variables, state, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    assert int(opt.skipped_steps.numpy()) == 1


def _digits_mlp(optimizer, depth=6, jit=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10, activation="softmax", name="head")]
    )
    model.compile(
        optimizer,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
    )
    return model


def test_clipping_rescues_a_diverging_sgd_run(digits):
    (x, y), (x_dev, y_dev) = digits
    plain = _digits_mlp(keras.optimizers.SGD(1.0))
    history = plain.fit(x, y, epochs=2, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert not np.isfinite(losses[-1]) or losses[-1] > 2.0  # diverged
    clipped = _digits_mlp(
        GradientClipping(keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0)
    )
    clipped.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert clipped.evaluate(x_dev, y_dev, verbose=0)[1] >= 0.9
    assert int(clipped.optimizer.clipped_steps.numpy()) > 0


def test_nan_batch_is_skipped_in_fit(digits):
    (x, y), _ = digits
    x = x[:256].copy()
    x[40, 3] = np.nan  # the second batch of 32
    model = _digits_mlp(GradientClipping(keras.optimizers.SGD(0.1)), depth=2)
    model.fit(x, y[:256], epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert int(model.optimizer.skipped_steps.numpy()) == 1
    assert int(model.optimizer.iterations.numpy()) == 7


def test_adaptive_exclude_leaves_head_unclipped(rng):
    values, grads = _setup(rng)
    variables = [keras.Variable(values[0], name="kernel"), keras.Variable(values[1])]
    opt = GradientClipping(
        keras.optimizers.SGD(1.0), mode="adaptive", threshold=0.01, exclude=["kernel"]
    )
    opt.apply(grads, variables)
    np.testing.assert_allclose(variables[0].numpy(), values[0] - grads[0], rtol=1e-6)
    clipped = _expected_clip("adaptive", grads, values, 0.01)
    np.testing.assert_allclose(variables[1].numpy(), values[1] - clipped[1], rtol=1e-5)


def test_save_load_resumes_exactly(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:128], y[:128]
    model = _digits_mlp(
        GradientClipping(keras.optimizers.Adam(0.01), mode="norm", threshold=0.5),
        depth=2,
    )
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    loaded = assert_roundtrip(model, x, tmp_path)
    opt = loaded.optimizer
    assert isinstance(opt, GradientClipping)
    assert (opt.mode, opt.threshold) == ("norm", 0.5)
    assert isinstance(opt.inner_optimizer, keras.optimizers.Adam)
    assert int(opt.iterations.numpy()) == 4
    assert int(opt.clipped_steps.numpy()) == int(model.optimizer.clipped_steps.numpy())
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _distributed_step(strategy, optimizer_fn, x, y):
    keras.utils.set_random_seed(0)
    scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
    with scope:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        model.compile(optimizer_fn(), "mse")
    model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    return model.get_weights()


def test_mirrored_clips_the_all_reduced_gradient(strategy, rng):
    x = rng.standard_normal((8, 64)).astype("float32")
    y = rng.standard_normal((8, 10)).astype("float32")
    x[:4] *= 10.0  # replicas get very different gradients

    def ours():
        return GradientClipping(keras.optimizers.SGD(1.0), threshold=0.5)

    def theirs():
        return keras.optimizers.SGD(1.0, global_clipnorm=0.5)

    single = _distributed_step(None, ours, x, y)
    mirrored = _distributed_step(strategy, ours, x, y)
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    keras_single = _distributed_step(None, theirs, x, y)
    keras_mirrored = _distributed_step(strategy, theirs, x, y)
    np.testing.assert_allclose(keras_single[0], single[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(keras_mirrored[0], keras_single[0], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threshold": 0.0}, ValueError, "threshold=0.0"),
        ({"threshold": -1}, ValueError, "threshold=-1"),
        ({"mode": "l2"}, ValueError, "mode='l2'"),
        ({"skip_nonfinite": 1}, TypeError, "skip_nonfinite=1"),
        ({"exclude": ["head"]}, ValueError, "None unless mode='adaptive'"),
        ({"mode": "adaptive", "exclude": "head"}, TypeError, "a list of strings"),
        ({"eps": -1.0}, ValueError, "eps=-1.0"),
        ({"clipnorm": 1.0}, ValueError, "clipnorm=1.0. Choose the clipping"),
        ({"clipvalue": 1.0}, ValueError, "clipvalue=1.0"),
        ({"global_clipnorm": 1.0}, ValueError, "global_clipnorm=1.0"),
        ({"weight_decay": 0.1}, ValueError, "set it on the inner optimizer"),
        ({"momentum": 0.9}, ValueError, r"argument\(s\) \['momentum'\]"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GradientClipping(keras.optimizers.SGD(0.1), **kwargs)


@pytest.mark.parametrize("argument", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_clipping_on_inner_optimizer_is_an_error(argument):
    with pytest.raises(ValueError, match=f"SGD has {argument}=1.0.*clip twice"):
        GradientClipping(keras.optimizers.SGD(0.1, **{argument: 1.0}))


def test_inner_must_be_a_keras_optimizer():
    with pytest.raises(TypeError, match="a keras.optimizers.Optimizer instance"):
        GradientClipping("sgd")
    with pytest.raises(ValueError, match="not already a GradientClipping"):
        GradientClipping(GradientClipping(keras.optimizers.SGD(0.1)))
