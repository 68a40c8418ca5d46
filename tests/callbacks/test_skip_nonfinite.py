"""SkipNonFinite: a batch with a NaN leaves the run as if it were not in the data.

Each setting is tested the same way: a fit on data with one bad batch against
a fit on the same data with that batch removed. Every variable of model and
optimizer must be equal, and the epoch logs too. The bad row has a NaN
feature, which poisons the forward pass (batch-norm statistics), and a NaN
sample weight, which makes the loss NaN on every CPU (a NaN feature can vanish
inside oneDNN's fused kernels on some).
"""

import contextlib

import keras
import numpy as np
import pytest

from keras_tricks import _keras_compat
from keras_tricks.callbacks import GradientMonitor, SkipNonFinite
from keras_tricks.layers import GhostBatchNormalization
from keras_tricks.optimizers import GradientClipping

BATCH = 16
BAD_ROW = 21  # in the second batch
KEPT = np.r_[0:BATCH, 2 * BATCH : 8 * BATCH]
RECORDS = {"global_norm", "variable_norms", "clipped_steps", "skipped_steps"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8 * BATCH, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 0.5).astype("int32")
    weights = np.ones(len(x), "float32")
    bad = weights.copy()
    bad[BAD_ROW] = np.nan
    x_bad = x.copy()
    x_bad[BAD_ROW, 3] = np.nan
    return x, y, weights, bad, x_bad


def _model(optimizer, jit=True, ghost=False):
    keras.utils.set_random_seed(1)
    norm = GhostBatchNormalization(4) if ghost else keras.layers.BatchNormalization()
    model = keras.Sequential(
        [
            keras.Input((6,)),
            # No bias before the normalisation: its gradient is rounding noise,
            # which Adam would amplify into visible (chaotic) differences.
            keras.layers.Dense(12, use_bias=False),
            norm,
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit,
    )
    return model


def _fit(model, x, y, weights, callbacks=(), epochs=2, **kwargs):
    return model.fit(
        x,
        y,
        sample_weight=weights,
        batch_size=BATCH,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
        **kwargs,
    )


def _assert_same_run(bad_model, bad_history, clean_model, clean_history):
    # atol: XLA fuses the guarded and the plain update differently (last bits).
    tolerance = {"rtol": 1e-6, "atol": 1e-7}
    for a, b in zip(bad_model.variables, clean_model.variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), **tolerance, err_msg=a.path)
    pairs = zip(
        bad_model.optimizer.variables, clean_model.optimizer.variables, strict=True
    )
    for a, b in pairs:
        if a.name not in RECORDS:
            np.testing.assert_allclose(
                np.asarray(a.numpy()),
                np.asarray(b.numpy()),
                **tolerance,
                err_msg=a.path,
            )
    logs = dict(bad_history.history)
    assert logs.pop("skipped_steps") == [1] * len(logs["loss"])
    assert logs.keys() == clean_history.history.keys()
    for key, values in logs.items():
        np.testing.assert_allclose(values, clean_history.history[key], **tolerance)


def _adam():
    return keras.optimizers.Adam(0.01)


def _clipped():
    return GradientClipping(keras.optimizers.Adam(0.01), threshold=0.5)


OPTIMIZERS = {"adam": _adam, "clipped": _clipped}


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_skipped_batch_leaves_no_trace(data, jit, optimizer):
    x, y, weights, bad, x_bad = data
    make = OPTIMIZERS[optimizer]
    bad_model = _model(make, jit)
    bad_history = _fit(bad_model, x_bad, y, bad, [SkipNonFinite()])
    clean_model = _model(make, jit)
    clean_history = _fit(clean_model, x[KEPT], y[KEPT], weights[KEPT])
    _assert_same_run(bad_model, bad_history, clean_model, clean_history)


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_skipped_batch_leaves_no_trace_jax_and_ghost_batch_norm(data, optimizer):
    x, y, weights, bad, x_bad = data
    make = OPTIMIZERS[optimizer]
    bad_model = _model(make, ghost=True)
    bad_history = _fit(bad_model, x_bad, y, bad, [SkipNonFinite()])
    clean_model = _model(make, ghost=True)
    clean_history = _fit(clean_model, x[KEPT], y[KEPT], weights[KEPT])
    _assert_same_run(bad_model, bad_history, clean_model, clean_history)
    if optimizer == "clipped":
        assert int(bad_model.optimizer.skipped_steps.numpy()) == 2


@pytest.mark.jax
def test_without_the_callback_the_loss_takes_the_nan_and_a_warning_says_so(data):
    # The tests above fail with the mechanism off: this is what it prevents.
    x, y, _, bad, x_bad = data
    model = _model(_clipped)
    with pytest.warns(UserWarning, match="SkipNonFinite"):
        history = _fit(model, x_bad, y, bad)
    assert np.isnan(history.history["loss"]).all()
    assert np.isfinite(model.layers[0].kernel.numpy()).all()  # the wrapper's part


@pytest.mark.jax
def test_keras_nan_callbacks_see_finite_logs(data):
    x, y, _, bad, x_bad = data
    stopper = keras.callbacks.EarlyStopping("loss", patience=5)
    history = _fit(
        _model(_adam),
        x_bad,
        y,
        bad,
        [SkipNonFinite(), keras.callbacks.TerminateOnNaN(), stopper],
        epochs=3,
    )
    assert len(history.history["loss"]) == 3
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(stopper.best)


def test_mirrored_strategy_two_replicas(data, strategy):
    # One strategy per process (the session's): collective keys are per strategy.
    x, y, weights, bad, x_bad = data
    runs = []
    for inputs, targets, sw, callbacks in (
        (x_bad, y, bad, [SkipNonFinite()]),
        (x[KEPT], y[KEPT], weights[KEPT], []),
    ):
        with strategy.scope():
            model = _model(_clipped, jit=False)
        runs += [model, _fit(model, inputs, targets, sw, callbacks)]
    _assert_same_run(*runs)


def test_mixed_precision_loss_scale_is_not_touched_by_a_skipped_batch(data):
    x, y, weights, bad, x_bad = data
    keras.config.set_dtype_policy("mixed_float16")
    try:
        bad_model = _model(_adam, jit=False)
        bad_history = _fit(bad_model, x_bad, y, bad, [SkipNonFinite()])
        clean_model = _model(_adam, jit=False)
        clean_history = _fit(clean_model, x[KEPT], y[KEPT], weights[KEPT])
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(bad_model.optimizer, keras.optimizers.LossScaleOptimizer)
    _assert_same_run(bad_model, bad_history, clean_model, clean_history)


@pytest.mark.jax
def test_refused_with_gradient_monitor(data):
    x, y, weights, _, _ = data
    with pytest.raises(ValueError, match="cannot share a `fit`"):
        _fit(_model(_adam), x, y, weights, [SkipNonFinite(), GradientMonitor()])


@pytest.mark.jax
def test_the_model_is_left_as_it_was(data):
    x, y, weights, bad, x_bad = data
    model = _model(_adam)
    plain = model.train_function
    step = model.train_step
    _fit(model, x_bad, y, bad, [SkipNonFinite()], epochs=1)
    assert "train_step" not in vars(model) and model.train_step == step
    assert model.train_function is plain or plain is None
    # A later fit without the callback trains on the NaN as plain Keras does.
    history = _fit(model, x, y, bad, epochs=1)
    assert np.isnan(history.history["loss"][0])


class _RaiseAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise KeyboardInterrupt


@pytest.mark.jax
@pytest.mark.parametrize("same_callback", [True, False])
def test_a_fit_that_raised_leaves_nothing_in_the_way(data, same_callback):
    x, y, weights, bad, x_bad = data
    model, skipper = _model(_adam), SkipNonFinite()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, x_bad, y, bad, [skipper, _RaiseAt()], epochs=1)
    again = skipper if same_callback else SkipNonFinite()
    history = _fit(model, x_bad, y, bad, [again], epochs=1)
    assert history.history["skipped_steps"] == [1]
    assert np.isfinite(history.history["loss"]).all()
    # And a plain fit afterwards is plain Keras again.
    assert np.isnan(_fit(model, x_bad, y, bad, epochs=1).history["loss"][0])


# Nothing leaks into unrelated code -------------------------------------------------


@pytest.mark.xla
@pytest.mark.parametrize("first", ["guarded", "plain"])
def test_a_nested_tf_function_in_the_update_is_not_masked_elsewhere(data, first):
    # A @tf.function helper that assigns a variable, called from an
    # optimizer's update_step, traced first by a guarded or a plain model.
    import tensorflow as tf

    @tf.function
    def descend(variable, gradient, lr):
        variable.assign_sub(lr * gradient)

    class HelperSGD(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            descend(variable, gradient, tf.cast(learning_rate, variable.dtype))

    x, y, weights, bad, x_bad = data

    def guarded():
        model = _model(lambda: GradientClipping(HelperSGD(0.05)))
        history = _fit(model, x_bad, y, bad, [SkipNonFinite()], epochs=1)
        assert history.history["skipped_steps"] == [1]
        assert all(np.isfinite(v.numpy()).all() for v in model.variables)

    def plain():
        model = _model(lambda: HelperSGD(0.05))
        before = [v.numpy() for v in model.trainable_variables]
        _fit(model, x, y, weights, epochs=1)
        after = [v.numpy() for v in model.trainable_variables]
        assert all((a != b).any() for a, b in zip(after, before, strict=True))

    for run in (guarded, plain) if first == "guarded" else (plain, guarded):
        run()


# The clipping hook is guarded -------------------------------------------------------


@pytest.mark.jax
def test_clipping_that_keras_never_calls_raises(data, monkeypatch):
    x, y, weights, _, _ = data
    monkeypatch.setattr(
        _keras_compat, "clipping_replaced", lambda *a: contextlib.nullcontext()
    )
    with pytest.raises(RuntimeError, match=f"Keras {keras.__version__} did not call"):
        _fit(_model(_clipped), x, y, weights, epochs=1)
