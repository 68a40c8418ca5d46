import keras
import numpy as np
import pytest

from keras_tricks.layers import (
    ClassicDropout,
    DropConnectDense,
    DropPath,
    MCDropout,
    drop_connect,
    mc_predict,
)


def _np(value):
    return np.asarray(keras.ops.convert_to_numpy(value), "float64")


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_classic_dropout_masks_without_rescaling(rate, rng):
    x = rng.normal(size=(200, 50)).astype("float32")
    layer = ClassicDropout(rate, seed=0)
    out = _np(layer(x, training=True))
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x[kept])  # no 1 / (1 - rate)
    assert kept.mean() == pytest.approx(1 - rate, abs=0.01)
    np.testing.assert_allclose(_np(layer(x, training=False)), (1 - rate) * x, rtol=1e-6)


def test_classic_dropout_expected_training_output_is_the_inference_output():
    x = np.linspace(-2, 2, 20, dtype="float32")[None]
    layer = ClassicDropout(0.3, seed=1)
    samples = _np(layer(np.repeat(x, 20000, axis=0), training=True))  # 20000 masks
    # Mean of 20000 Bernoulli(0.7) draws: standard error sqrt(.21 / 2e4) * |x|.
    np.testing.assert_allclose(
        samples.mean(0), _np(layer(x, training=False))[0], atol=4 * 0.0033 * 2
    )


def test_classic_dropout_noise_shape_shares_the_mask(rng):
    x = rng.normal(size=(4, 6, 3)).astype("float32") + 5
    out = _np(ClassicDropout(0.5, noise_shape=(None, 1, 3), seed=0)(x, training=True))
    dropped = out == 0
    assert np.all(dropped == dropped[:, :1, :])


def _digits_accuracy(dropout, digits, seed):
    (x, y), (x_dev, y_dev) = digits
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            dropout(0.4, seed=seed),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10, verbose=0)
    return model.evaluate(x_dev, y_dev, verbose=0)[1]


def test_classic_dropout_trains_like_inverted_dropout(digits):
    classic = [_digits_accuracy(ClassicDropout, digits, s) for s in (0, 1)]
    inverted = [_digits_accuracy(keras.layers.Dropout, digits, s) for s in (0, 1)]
    # Dev set of 360 digits: one standard error of a ~0.95 accuracy is 0.011.
    assert np.mean(classic) == pytest.approx(np.mean(inverted), abs=0.025)
    assert min(classic) > 0.92


def test_mc_dropout_stays_on_at_inference():
    x = np.ones((8, 100), "float32")
    layer = MCDropout(0.5, seed=0)
    first, second = _np(layer(x)), _np(layer(x, training=False))
    assert set(np.unique(first)) == {0.0, 2.0}
    assert not np.array_equal(first, second)


def _mc_model():
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(16, activation="relu"),
            MCDropout(0.5, seed=2),
            keras.layers.Dense(2),
        ]
    )


@pytest.mark.jax
def test_mc_predict_is_the_mean_and_std_of_the_passes(rng):
    model = _mc_model()
    x = rng.normal(size=(40, 3)).astype("float32")
    mean, std = mc_predict(model, x, samples=7, seed=11, batch_size=64)
    assert mean.shape == std.shape == (40, 2)
    # The same passes by hand: seed the layer the way mc_predict does.
    layer = model.layers[1]
    state = layer.seed_generator.state
    state.assign(np.array([11, 0], keras.backend.standardize_dtype(state.dtype)))
    passes = np.stack([_np(model(x)) for _ in range(7)])
    np.testing.assert_allclose(mean, passes.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, passes.std(0), rtol=1e-5, atol=1e-6)
    assert np.all(std > 0)


def test_mc_predict_seed_repeats_and_restores_the_layer_state(rng):
    model = _mc_model()
    x = rng.normal(size=(10, 3)).astype("float32")
    state = _np(model.layers[1].seed_generator.state)
    first = mc_predict(model, x, samples=4, seed=3)
    np.testing.assert_array_equal(_np(model.layers[1].seed_generator.state), state)
    again = mc_predict(model, x, samples=4, seed=3)
    other = mc_predict(model, x, samples=4, seed=4)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])


def test_mc_predict_errors(rng):
    x = rng.normal(size=(4, 3))
    deterministic = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dropout(0.5)]
    )
    with pytest.raises(ValueError, match="`model`.*at least one MCDropout.*zero"):
        mc_predict(deterministic, x)
    with pytest.raises(ValueError, match="Received: samples=0"):
        mc_predict(_mc_model(), x, samples=0)


@pytest.mark.jax
def test_drop_connect_drops_weights_not_units(rng):
    # 0.375 is a multiple of 2**-15: the drop probability is exactly the rate.
    layer = DropConnectDense(6, 0.375, seed=0, bias_initializer="random_normal")
    x = np.eye(5, dtype="float32")  # row i of the output reads row i of W
    layer.build((None, 5))
    kernel, bias = (_np(w) for w in layer.get_weights())
    masked = _np(layer(x, training=True)) - bias
    kept = ~np.isclose(masked, 0, atol=1e-6)
    np.testing.assert_allclose(masked[kept], kernel[kept] / 0.625, rtol=1e-5, atol=1e-6)
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(_np(layer(x)), x @ kernel + bias, rtol=1e-5)


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.9])
def test_drop_connect_drop_probability_and_unbiased_scale(rate):
    """One mask of 512 x 512 weights: the dropped fraction is the rate within
    4 standard errors (plus the 2**-16 rounding); kept weights are scaled by
    1 / (1 - p) for the rounded p, so that E[y] is the Dense output."""
    layer = DropConnectDense(512, rate, seed=1, kernel_initializer="ones")
    scaled = _np(layer(np.eye(512, dtype="float32"), training=True))
    dropped = np.mean(scaled == 0)
    error = 4 * np.sqrt(rate * (1 - rate) / scaled.size) + 2**-16
    assert dropped == pytest.approx(rate, abs=error)
    p = round(rate * 2**15) / 2**15
    np.testing.assert_allclose(scaled[scaled != 0], 1 / (1 - p), rtol=1e-6)


@pytest.mark.jax
@pytest.mark.parametrize(
    ("rate", "bits", "threshold"),
    [(0.5, 1, 1), (0.25, 2, 1), (0.75, 2, 3), (0.375, 3, 3), (0.3, 14, 4915)],
)
def test_drop_connect_draws_the_fewest_bits_that_represent_the_rate(
    rate, bits, threshold
):
    assert drop_connect._mask_bits(rate) == (bits, threshold)
    assert threshold / 2**bits == round(rate * 2**15) / 2**15


@pytest.mark.jax
def test_drop_connect_packed_masks_are_independent_bernoulli():
    """Rate 0.5 packs 30 one-bit masks per random word. On 601 x 601 weights
    (not a multiple of 30): the dropped fraction is 0.5 within 4 standard
    errors, and the weights that share a word (the fields are concatenated,
    so weight i and weight i + size/30 share one) agree half the time."""
    layer = DropConnectDense(601, 0.5, seed=3, kernel_initializer="ones")
    kept = _np(layer(np.eye(601, dtype="float32"), training=True)).ravel() != 0
    error = 4 * np.sqrt(0.25 / kept.size)
    assert kept.mean() == pytest.approx(0.5, abs=error)
    stride = -(-kept.size // 30)
    agree = np.mean(kept[:-stride] == kept[stride:])
    assert agree == pytest.approx(0.5, abs=4 * np.sqrt(0.25 / (kept.size - stride)))


def test_drop_connect_rate_next_to_one_drops_almost_everything():
    layer = DropConnectDense(64, 0.99999, seed=0, kernel_initializer="ones")
    out = _np(layer(np.eye(64, dtype="float32"), training=True))
    assert np.all(np.isfinite(out))
    assert set(np.unique(out)) <= {0.0, 2.0**15}


def test_drop_connect_accepts_every_dense_argument(rng):
    layer = DropConnectDense(
        3,
        0.2,
        activation="relu",
        use_bias=False,
        kernel_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(0.1),
        kernel_constraint=keras.constraints.NonNeg(),
        name="dc",
    )
    out = layer(np.ones((2, 4), "float32"))
    np.testing.assert_allclose(_np(out), 4.0)
    assert float(sum(layer.losses)) == pytest.approx(0.1 * 12)
    config = layer.get_config()
    assert config["use_bias"] is False and config["rate"] == 0.2


def test_drop_path_drops_whole_samples(rng):
    x = rng.normal(size=(400, 3, 4)).astype("float32")
    layer = DropPath(0.25, seed=0)
    out = _np(layer(x, training=True))
    dropped = np.all(out == 0, axis=(1, 2))
    kept = ~dropped
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-6)
    assert dropped.mean() == pytest.approx(0.25, abs=0.05)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)
