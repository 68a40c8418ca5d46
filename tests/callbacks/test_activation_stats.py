"""ActivationStats: per-layer activation statistics recorded during fit."""

import copy

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import ActivationStats


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = _model()
    stats = ActivationStats(x[:32], every_n_steps=2, near_zero=0.05, bins=10)
    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[stats]
    )
    return model, stats, x


def test_records_every_n_steps_from_step_zero(fitted):
    _, stats, _ = fitted
    # 2 epochs of 6 batches: records before training and after steps 2, 4, ... 12.
    assert stats.steps == [0, 2, 4, 6, 8, 10, 12]
    # Layers with weights by default: Dropout has none.
    assert sorted(stats.stats) == ["hidden", "out"]
    for record in stats.stats.values():
        assert record["mean"].shape == (7,) and record["hist"].shape == (7, 10)


def test_last_record_equals_numpy_stats_of_the_layer_outputs(fitted):
    model, stats, x = fitted
    # The last record is after the last step: the final weights.
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.layers[0].weights)
    hidden = np.maximum(x[:32].astype("float64") @ kernel + bias, 0)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.layers[2].weights)
    out = hidden @ kernel + bias  # inference: Dropout is the identity
    for name, values in (("hidden", hidden), ("out", out)):
        record = stats.stats[name]
        np.testing.assert_allclose(record["mean"][-1], values.mean(), atol=1e-5)
        np.testing.assert_allclose(record["std"][-1], values.std(), atol=1e-5)
        np.testing.assert_allclose(
            record["near_zero"][-1], np.mean(np.abs(values) <= 0.05), atol=1e-9
        )
        hist, _ = np.histogram(np.clip(values, -5, 5), bins=10, range=(-5, 5))
        np.testing.assert_array_equal(record["hist"][-1], hist)
        assert record["hist"][-1].sum() == values.size


def test_statistics_change_as_the_weights_train(fitted):
    _, stats, _ = fitted
    assert stats.stats["out"]["std"][0] != stats.stats["out"]["std"][-1]


def test_config_round_trip_and_deepcopy():
    probe = np.zeros((4, 4), "float32")
    stats = ActivationStats(
        probe, every_n_steps=7, layers=["hidden"], near_zero=0.1, hist_range=(0, 10)
    )
    config = stats.get_config()
    assert config == {
        "every_n_steps": 7,
        "layers": ["hidden"],
        "near_zero": 0.1,
        "bins": 40,
        "hist_range": [0.0, 10.0],
    }
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(stats)
    )
    assert isinstance(again, ActivationStats) and again.get_config() == config
    clone = copy.deepcopy(stats)
    assert clone.get_config() == config and clone.x is probe


def test_plots_return_figures(fitted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure

    _, stats, _ = fitted
    assert isinstance(stats.plot_std(), matplotlib.figure.Figure)
    assert isinstance(stats.plot_color_dim("hidden"), matplotlib.figure.Figure)
    assert isinstance(stats.plot_color_dim(), matplotlib.figure.Figure)
    with pytest.raises(ValueError, match=r"`layer`.*Received: layer='nope'"):
        stats.plot_color_dim("nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"every_n_steps": 0}, ValueError, r"every_n_steps=0"),
        ({"every_n_steps": 1.5}, TypeError, r"every_n_steps=1.5"),
        ({"layers": "hidden"}, TypeError, r"`layers`.*Received: layers='hidden'"),
        ({"near_zero": -1}, ValueError, r"near_zero=-1"),
        ({"bins": 0}, ValueError, r"bins=0"),
        ({"hist_range": (1, 1)}, ValueError, r"hist_range=\(1, 1\)"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ActivationStats(np.zeros((2, 4)), **kwargs)


def test_unknown_layer_and_missing_probe_fail_at_fit_start():
    x = np.zeros((8, 4), "float32")
    model = _model()
    with pytest.raises(ValueError, match=r"`layers`.*'nope' is not one"):
        model.fit(
            x, x[:, :1], verbose=0, callbacks=[ActivationStats(x, layers=["nope"])]
        )
    with pytest.raises(ValueError, match=r"`x`.*probe batch"):
        model.fit(x, x[:, :1], verbose=0, callbacks=[ActivationStats()])
