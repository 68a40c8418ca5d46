"""GradientClipping: the step it takes, against NumPy and Keras's own optimizers."""

import keras
import numpy as np
import pytest

from keras_tricks.optimizers import GradientClipping, clip_by_global_norm
from tests.helpers import assert_roundtrip
from tests.optimizers import _linear

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


@pytest.mark.compat
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


@pytest.mark.compat
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


@pytest.mark.compat
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
    import tensorflow as tf

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


def test_wrapping_leaves_the_inner_optimizer_as_it_was(rng):
    """Issue 12 item 13: a wrapped optimizer keeps working on its own."""
    values, grads = _setup(rng)
    inner = keras.optimizers.SGD(1.0)
    tight = GradientClipping(inner, threshold=0.5)
    loose = GradientClipping(inner, threshold=2.0)
    assert "_clip_gradients" not in vars(inner)
    variables = [keras.Variable(v) for v in values]
    tight.apply(grads, variables)
    assert "_clip_gradients" not in vars(inner)
    after_tight = [v.numpy().copy() for v in variables]
    loose.apply(grads, variables)
    inner.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    # The second wrapper clips to its own threshold, the inner alone not at all.
    expected = [
        v - c1 - c2 - g
        for v, c1, c2, g in zip(
            values,
            _expected_clip("global_norm", grads, values, 0.5),
            _expected_clip("global_norm", grads, values, 2.0),
            grads,
            strict=True,
        )
    ]
    np.testing.assert_allclose(
        after_tight[0],
        values[0] - _expected_clip("global_norm", grads, values, 0.5)[0],
        rtol=1e-5,
        atol=1e-6,
    )
    for var, e in zip(variables, expected, strict=True):
        np.testing.assert_allclose(var.numpy(), e, rtol=1e-5, atol=1e-5)
    assert int(tight.clipped_steps.numpy()) == int(loose.clipped_steps.numpy()) == 1


def test_inner_optimizer_used_alone_in_fit_after_wrapping(digits):
    (x, y), _ = digits
    inner = keras.optimizers.SGD(0.1)
    GradientClipping(inner, threshold=1e-6)
    model = _digits_mlp(inner, depth=1, jit=False)
    before = model.get_weights()
    model.fit(x[:64], y[:64], batch_size=64, verbose=0)
    reference = _digits_mlp(keras.optimizers.SGD(0.1), depth=1, jit=False)
    reference.fit(x[:64], y[:64], batch_size=64, verbose=0)
    for a, b, c in zip(
        model.get_weights(), reference.get_weights(), before, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # unclipped
        assert not np.array_equal(a, c)


@pytest.fixture
def mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def _policy_run(x, y, make_optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model.compile(make_optimizer(), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, shuffle=False, verbose=0)
    clipper = model.optimizer
    while not isinstance(clipper, GradientClipping):
        clipper = clipper.inner_optimizer
    return model, float(clipper.global_norm.numpy())


def _clip_sgd():
    return GradientClipping(keras.optimizers.SGD(0.5), threshold=0.5)


@pytest.mark.parametrize(
    "make",
    [_clip_sgd, lambda: keras.optimizers.LossScaleOptimizer(_clip_sgd())],
    ids=["compile-adds-loss-scaling", "loss-scaling-outside"],
)
def test_mixed_precision_trains_like_float32(digits, make):
    """Issue 12 item 1: both orders give float32's norms and steps."""
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    reference, norm = _policy_run(x, y, _clip_sgd)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model, mixed_norm = _policy_run(x, y, make)
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed_norm == pytest.approx(norm, rel=1e-2)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a.astype("float32"), b, rtol=0, atol=2e-3)


def test_loss_scaling_inside_under_mixed_precision_is_refused(digits, mixed_precision):
    """Issue 12 item 1: the order that would unscale twice names the fix."""
    (x, y), _ = digits

    def make():
        return GradientClipping(
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5))
        )

    with pytest.raises(ValueError, match="auto_scale_loss=False"):
        _policy_run(x[:32], y[:32], make)


@pytest.mark.xla
@pytest.mark.parametrize("jit", [False, True], ids=["eager-graph", "jit"])
def test_adaptive_with_exclude_trains_in_fit(digits, jit):
    """Issue 12 item 2: the excluded head takes the plain SGD step."""
    (x, y), _ = digits
    x, y = x[:32], y[:32]

    def optimizer():
        return GradientClipping(
            keras.optimizers.SGD(0.1), mode="adaptive", threshold=1e-4, exclude=["head"]
        )

    model = _digits_mlp(optimizer(), depth=1, jit=jit)
    plain = _digits_mlp(keras.optimizers.SGD(0.1), depth=1, jit=jit)
    before = model.get_weights()
    model.fit(x, y, batch_size=32, verbose=0)
    plain.fit(x, y, batch_size=32, verbose=0)
    ours, theirs = model.get_weights(), plain.get_weights()
    for a, b in zip(ours[2:], theirs[2:], strict=True):  # the head: unclipped
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The hidden kernel: plain SGD's gradient, clipped unit by unit.
    grad = (before[0] - theirs[0]) / 0.1
    limit = 1e-4 * np.linalg.norm(before[0], axis=0)
    norm = np.linalg.norm(grad, axis=0)
    expected = before[0] - 0.1 * grad * np.where(norm > limit, limit / norm, 1.0)
    np.testing.assert_allclose(ours[0], expected, rtol=0, atol=1e-7)
    assert int(model.optimizer.clipped_steps.numpy()) == 1


def test_overwrite_with_gradient_variables_are_left_to_keras(rng):
    """Issue 12 item 9: float8 scale variables take their "gradient" as value."""
    values, grads = _setup(rng)
    scale = keras.Variable(np.ones(3, "float32"), trainable=True)
    scale.overwrite_with_gradient = True
    new_scale = np.full(3, 7.0, "float32")
    variables = [keras.Variable(v) for v in values] + [scale]
    opt = GradientClipping(keras.optimizers.SGD(1.0), threshold=1.0)
    opt.apply([*grads, new_scale], variables)
    np.testing.assert_array_equal(scale.numpy(), new_scale)
    clipped = _expected_clip("global_norm", grads, values, 1.0)
    for var, v, c in zip(variables, values, clipped, strict=False):
        np.testing.assert_allclose(var.numpy(), v - c, rtol=1e-5, atol=1e-6)
    norms = [np.linalg.norm(g) for g in grads]
    np.testing.assert_allclose(opt.variable_norms.numpy(), [*norms, 0.0], rtol=1e-5)


def test_float8_model_trains_like_keras_global_clipnorm(rng):
    """Issue 12 item 9: `model.quantize("float8")` then `fit`."""
    x = rng.standard_normal((32, 8)).astype("float32")
    y = rng.standard_normal((32, 4)).astype("float32")

    def fitted(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        model.quantize("float8")
        model.compile(optimizer, "mse")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    ours = fitted(GradientClipping(keras.optimizers.SGD(0.1), threshold=0.1))
    theirs = fitted(keras.optimizers.SGD(0.1, global_clipnorm=0.1))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_set_weights_covers_the_inner_state(rng):
    """Issue 12 item 12."""
    values, grads = _setup(rng)
    source = GradientClipping(keras.optimizers.Adam(0.1))
    _step(source, values, grads, steps=2)
    target = GradientClipping(keras.optimizers.Adam(0.1))
    target.build([keras.Variable(v) for v in values])
    target.set_weights([v.numpy() for v in source.variables])
    assert len(target.variables) == len(source.variables) > 6
    for a, b in zip(target.variables, source.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="one array per optimizer variable"):
        target.set_weights([v.numpy() for v in source.variables][:-1])


def test_skipped_step_shows_as_nan_in_the_epoch_loss(digits):
    """Issue 12 item 7 (documented interaction): the skipped batch's loss is
    in Keras's epoch mean, so loss-monitoring callbacks see NaN.

    The NaN comes from a sample weight (row 40, in the second batch of 32),
    which reaches the loss and the gradients on any CPU: a NaN feature may
    not reach the loss where fused oneDNN kernels turn it into a number (seen
    on AMD EPYC), though the gradient stays NaN and the step is skipped."""
    (x, y), _ = digits
    x = x[:96]
    weights = np.ones(96, "float32")
    weights[40] = np.nan
    model = _digits_mlp(GradientClipping(keras.optimizers.SGD(0.1)), depth=1, jit=False)
    stopper = keras.callbacks.EarlyStopping("loss", patience=0)
    plateau = keras.callbacks.ReduceLROnPlateau("loss", patience=0, factor=0.5)
    history = model.fit(
        x,
        y[:96],
        sample_weight=weights,
        epochs=2,
        batch_size=32,
        shuffle=False,
        verbose=0,
        callbacks=[stopper, plateau],
    )
    assert np.isnan(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert int(model.optimizer.skipped_steps.numpy()) == 2
    # The first epoch's NaN becomes the best value, and NaN never improves
    # on it: the second epoch counts as a plateau.
    assert stopper.stopped_epoch == 1
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.05)
    # TerminateOnNaN stops at the skipped batch itself.
    model = _digits_mlp(GradientClipping(keras.optimizers.SGD(0.1)), depth=1, jit=False)
    model.fit(
        x,
        y[:96],
        sample_weight=weights,
        epochs=2,
        batch_size=32,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert int(model.optimizer.iterations.numpy()) == 1
    assert int(model.optimizer.skipped_steps.numpy()) == 1


_INNER = {
    "AdamW": lambda: keras.optimizers.AdamW(0.05, weight_decay=0.1),
    "EMA": lambda: keras.optimizers.Adam(0.05, use_ema=True, ema_overwrite_frequency=2),
    "accumulation": lambda: keras.optimizers.SGD(
        0.1, momentum=0.9, gradient_accumulation_steps=2
    ),
}


def _constrained_net(optimizer, jit):
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, kernel_constraint=keras.constraints.MaxNorm(0.5)),
            keras.layers.Dense(2, name="head"),
        ]
    )
    net.compile(optimizer, "mse", jit_compile=jit)
    return net


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.xla
@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("inner", sorted(_INNER))
def test_a_skipped_step_is_as_if_its_batch_were_not_there(inner, jit):
    """A skipped step changes no weight, slot, moving average, accumulator or
    counter, whatever path the inner optimizer's update takes (decoupled
    weight decay, EMA, gradient accumulation, a kernel constraint): training
    on data with a NaN batch equals training on the data without it."""
    x, y = _linear.data(n_batches=6)
    weights = np.ones(len(x), "float32")
    weights[2 * _linear.BATCH + 1] = np.nan  # batch 2 of 6
    rest = np.r_[: 2 * _linear.BATCH, 3 * _linear.BATCH : len(x)]
    nets = []
    for rows in (slice(None), rest):
        net = _constrained_net(GradientClipping(_INNER[inner](), threshold=0.5), jit)
        assert net.jit_compile == jit
        net.fit(
            x[rows],
            y[rows],
            sample_weight=weights[rows] if rows is rest else weights,
            batch_size=_linear.BATCH,
            shuffle=False,
            verbose=0,
        )
        nets.append(net)
    skipped, absent = nets
    assert int(skipped.optimizer.skipped_steps.numpy()) == 1
    assert int(absent.optimizer.skipped_steps.numpy()) == 0
    pairs = [
        *zip(skipped.weights, absent.weights, strict=True),
        *zip(skipped.optimizer.variables, absent.optimizer.variables, strict=True),
    ]
    for a, b in pairs:
        if a.name == "skipped_steps":
            continue
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a),
            keras.ops.convert_to_numpy(b),
            rtol=1e-6,
            atol=1e-7,
            err_msg=a.path,
        )


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
@pytest.mark.parametrize(
    ("mode", "threshold"),
    [
        ("global_norm", 1.0),
        ("norm", 0.5),
        ("value", 0.1),
        ("adaptive", 0.05),
        ("normalize", 0.5),
    ],
)
def test_fit_matches_numpy_on_every_backend(mode, threshold):
    """Issue 13: inside a jit-compiled `fit`, every mode, the skipped NaN
    step, the records and `exclude` give the NumPy numbers, on TensorFlow
    and on JAX."""
    x, y = _linear.data(nan_batch=1)
    exclude = ["head"] if mode == "adaptive" else None
    net = _linear.model(
        GradientClipping(
            keras.optimizers.SGD(0.1), mode=mode, threshold=threshold, exclude=exclude
        )
    )
    assert net.jit_compile
    net.fit(x, y, batch_size=_linear.BATCH, shuffle=False, verbose=0)
    weights, clipped_steps, skipped_steps = _linear.weights(), 0, 0
    for xb, yb in _linear.batches(x, y):
        grads = _linear.grads(weights, xb, yb)
        if not all(np.isfinite(g).all() for g in grads):
            skipped_steps += 1
            continue
        clipped = _expected_clip(mode, grads, weights, threshold)
        if exclude:  # the head's kernel and bias
            clipped[2:] = grads[2:]
        clipped_steps += any(
            not np.array_equal(c, g) for c, g in zip(clipped, grads, strict=True)
        )
        weights = [w - 0.1 * c for w, c in zip(weights, clipped, strict=True)]
        norms = [np.linalg.norm(g) for g in grads]
    for a, b in zip(net.get_weights(), weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    opt = net.optimizer
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(opt.variable_norms), norms, rtol=1e-5
    )
    assert float(opt.global_norm.numpy()) == pytest.approx(
        np.linalg.norm(norms), rel=1e-5
    )
    assert int(opt.clipped_steps.numpy()) == clipped_steps
    assert int(opt.skipped_steps.numpy()) == skipped_steps == 1


def test_a_dropped_model_leaves_no_graph_in_the_gradient_registry(digits):
    """Issue 12 item 16: TensorFlow's custom-gradient registry would keep
    every traced train graph (the benchmark measures the memory)."""
    import gc

    from tensorflow.python.framework import ops

    (x, y), _ = digits
    before = set(ops._gradient_registry._registry)
    model = _digits_mlp(GradientClipping(keras.optimizers.SGD(0.1)), depth=1)
    model.fit(x[:32], y[:32], batch_size=32, verbose=0)
    added = set(ops._gradient_registry._registry) - before
    assert any(name.startswith("CustomGradient-") for name in added)
    del model
    keras.backend.clear_session()
    gc.collect()
    left = set(ops._gradient_registry._registry) - before
    assert not any(name.startswith("CustomGradient-") for name in left)
