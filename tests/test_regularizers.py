import copy
import json
import pickle
import weakref
import zipfile

import keras
import numpy as np
import pytest

from keras_tricks import _backend, regularizers
from keras_tricks.callbacks import PenaltyLogger, weight_penalty
from keras_tricks.regularizers import TiedRegularizer, tie_weights
from tests.helpers import assert_roundtrip


def _towers(units=4, inputs=8):
    x = keras.Input((inputs,))
    a = keras.layers.Dense(units, name="tower_a")
    b = keras.layers.Dense(units, name="tower_b")
    model = keras.Model(x, [a(x), b(x)])
    return model, a, b


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize(
    ("norm", "formula"),
    [
        ("l2", lambda d: np.sum(d**2)),
        ("l1", lambda d: np.sum(np.abs(d))),
    ],
)
def test_penalty_equals_numpy(norm, formula):
    model, a, b = _towers()
    tie_weights(a, b, strength=0.3, norm=norm)
    expected = 0.3 * formula(_np(a.kernel) - _np(b.kernel))
    assert float(sum(model.losses)) == pytest.approx(expected, abs=1e-6)


def test_gradient_flows_into_both_sides(rng):
    model, a, b = _towers()
    tie_weights(a, b, strength=0.7)
    model.compile("sgd", ["mse", "mse"], loss_weights=[0.0, 0.0])  # penalty only
    x, y = rng.normal(size=(4, 8)), [np.zeros((4, 4))] * 2
    grads = dict(
        zip(
            [v.path for v in model.trainable_variables],
            _backend.loss_gradients(model, x, y),
            strict=True,
        )
    )
    grad_a, grad_b = grads[a.kernel.path], grads[b.kernel.path]
    expected = 2 * 0.7 * (_np(a.kernel) - _np(b.kernel))
    np.testing.assert_allclose(grad_a, expected, atol=1e-6)
    np.testing.assert_allclose(grad_b, -expected, atol=1e-6)


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_frozen_reference_stays_fixed_and_pulls(rng):
    model, a, b = _towers()
    b.trainable = False
    tie_weights(a, b, strength=1.0)
    model.compile(
        keras.optimizers.SGD(0.05),
        ["mse", "mse"],
        loss_weights=[0.0, 0.0],
        jit_compile=True,
    )
    before_b = _np(b.kernel)
    gap = np.abs(_np(a.kernel) - before_b).sum()
    x = rng.normal(size=(32, 8))
    model.fit(x, [np.zeros((32, 4))] * 2, epochs=10, verbose=0)
    np.testing.assert_array_equal(_np(b.kernel), before_b)
    # Only the penalty acts: each SGD step shrinks the gap by (1 - 0.05 * 2).
    np.testing.assert_allclose(
        np.abs(_np(a.kernel) - before_b).sum(), 0.9**10 * gap, rtol=1e-4
    )


def test_reference_in_another_model_is_fixed(rng):
    pretrained = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    tie_weights(model.layers[0], pretrained.layers[0], strength=1.0)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    reference = _np(pretrained.layers[0].kernel)
    model.fit(rng.normal(size=(16, 8)), np.zeros((16, 4)), epochs=3, verbose=0)
    np.testing.assert_array_equal(_np(pretrained.layers[0].kernel), reference)


@pytest.mark.compat
@pytest.mark.parametrize("order", ["a_first", "b_first"])
def test_tie_survives_save_and_load(order, tmp_path, rng):
    model, a, b = _towers()
    first, second = (a, b) if order == "a_first" else (b, a)
    tie_weights(first, second, strength=0.5)
    model.compile("sgd", ["mse", "mse"])
    x, y = rng.normal(size=(16, 8)), [rng.normal(size=(16, 4))] * 2
    loaded = assert_roundtrip(model, x, tmp_path)
    tie = loaded.get_layer(first.name).kernel.regularizer
    assert tie.reference_layer is loaded.get_layer(second.name)
    assert loaded.evaluate(x, y, verbose=0)[0] == pytest.approx(
        model.evaluate(x, y, verbose=0)[0], rel=1e-6
    )
    loaded.fit(x, y, epochs=1, verbose=0)
    assert tie.reference_layer.kernel is loaded.get_layer(second.name).kernel


def test_fixed_reference_round_trip(tmp_path, rng):
    reference = rng.normal(size=(8, 4)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                4,
                kernel_regularizer=TiedRegularizer(reference, strength=0.2, norm="l1"),
            ),
        ]
    )
    model.compile("sgd", "mse")
    loaded = assert_roundtrip(model, rng.normal(size=(3, 8)), tmp_path)
    expected = 0.2 * np.abs(_np(model.layers[0].kernel) - reference).sum()
    assert float(sum(loaded.losses)) == pytest.approx(expected, rel=1e-6)


def test_reference_outside_the_saved_model_fails_clearly(tmp_path):
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    tie_weights(model.layers[0], other.layers[0], strength=1.0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="not restored with the model"):
        _ = loaded.losses


@pytest.mark.xla
def test_jit_compiled_fit_and_mirrored_strategy(strategy, rng):
    x, y = rng.normal(size=(64, 8)), [rng.normal(size=(64, 4))] * 2
    results = []
    for scope in (None, strategy):
        keras.utils.set_random_seed(1)
        if scope is None:
            model, a, b = _towers()
        else:
            with scope.scope():
                model, a, b = _towers()
        tie_weights(a, b, strength=0.1)
        model.compile(
            keras.optimizers.SGD(0.01), ["mse", "mse"], jit_compile=scope is None
        )
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        results.append((history.history["loss"], model.get_weights()))
    (loss_one, weights_one), (loss_two, weights_two) = results
    np.testing.assert_allclose(loss_two, loss_one, rtol=1e-4)
    for w1, w2 in zip(weights_one, weights_two, strict=True):
        np.testing.assert_allclose(w2, w1, rtol=1e-4, atol=1e-6)


def test_penalty_logger_splits_the_loss(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.05)),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = rng.normal(size=(32, 6)), rng.normal(size=(32, 2))
    xv, yv = rng.normal(size=(16, 6)), rng.normal(size=(16, 2))
    history = model.fit(
        x, y, validation_data=(xv, yv), epochs=2, verbose=0, callbacks=[PenaltyLogger()]
    )
    kernel, bias = (_np(w) for w in model.weights)
    penalty = 0.05 * np.sum(kernel**2)
    assert history.history["penalty"][-1] == pytest.approx(penalty, rel=1e-5)
    val_mse = np.mean((xv @ kernel + bias - yv) ** 2)
    assert history.history["val_data_loss"][-1] == pytest.approx(val_mse, rel=1e-4)
    assert history.history["data_loss"][-1] == pytest.approx(
        history.history["loss"][-1] - penalty, rel=1e-6
    )
    assert weight_penalty(model) == pytest.approx(penalty, rel=1e-5)


def test_penalty_logger_keeps_an_exact_data_loss_metric(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L1(0.05)),
        ]
    )
    model.compile(
        "sgd", "mse", metrics=[keras.metrics.MeanSquaredError(name="data_loss")]
    )
    history = model.fit(
        rng.normal(size=(8, 6)),
        rng.normal(size=(8, 2)),
        epochs=1,
        verbose=0,
        callbacks=[PenaltyLogger()],
    )
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["data_loss"] < logs["loss"]
    config = keras.saving.serialize_keras_object(PenaltyLogger())
    assert isinstance(keras.saving.deserialize_keras_object(config), PenaltyLogger)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strength": -0.1}, ValueError, "`strength`.*Received: strength=-0.1"),
        ({"strength": "big"}, TypeError, "`strength`"),
        ({"strength": 1.0, "norm": "l3"}, ValueError, "`norm`.*'l2', 'l1'"),
        ({"strength": 1.0, "weights": ("gamma",)}, ValueError, "`weights`"),
    ],
)
def test_bad_tie_arguments(kwargs, error, message):
    _, a, b = _towers()
    with pytest.raises(error, match=message):
        tie_weights(a, b, **kwargs)


def test_shape_mismatch_names_both_layers():
    x = keras.Input((8,))
    a, b = keras.layers.Dense(4, name="left"), keras.layers.Dense(5, name="right")
    keras.Model(x, [a(x), b(x)])
    with pytest.raises(
        ValueError,
        match=r"'left' \(shape \(8, 4\)\).*'right' "
        r"\(shape \(8, 5\)\)",
    ):
        tie_weights(a, b, strength=1.0)


def test_unbuilt_same_or_already_regularised_layers():
    with pytest.raises(ValueError, match="`layer_a`.*built"):
        tie_weights(keras.layers.Dense(2), keras.layers.Dense(2), strength=1.0)
    _, a, b = _towers()
    with pytest.raises(ValueError, match="`layer_b`"):
        tie_weights(a, a, strength=1.0)
    with pytest.raises(TypeError, match="`layer_b`"):
        tie_weights(a, np.zeros((8, 4)), strength=1.0)
    tie_weights(a, b, strength=1.0)
    with pytest.raises(ValueError, match="already has a regularizer"):
        tie_weights(a, b, strength=1.0)


def test_tied_regularizer_validation():
    with pytest.raises(ValueError, match="exactly one"):
        TiedRegularizer(strength=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        TiedRegularizer(
            np.zeros(2), strength=1.0, reference_layer=keras.layers.Dense(2)
        )
    with pytest.raises(ValueError, match="finite"):
        TiedRegularizer(np.array([np.nan]), strength=1.0)
    with pytest.raises(TypeError, match="`reference_layer`"):
        TiedRegularizer(strength=1.0, reference_layer="dense")


def _fixed_model(reference, **kwargs):
    return keras.Sequential(
        [
            keras.Input((reference.shape[0],)),
            keras.layers.Dense(
                reference.shape[1],
                kernel_regularizer=TiedRegularizer(reference, **kwargs),
            ),
        ]
    )


@pytest.mark.jax
def test_fixed_reference_is_saved_as_a_weight_not_as_config(tmp_path, rng, monkeypatch):
    """Before: the 256 x 256 reference (256 KB) was JSON text in config.json
    (about 1.3 MB, 5x its size). Now config.json holds its shape and the
    values are a weight, restored in a fresh process."""
    reference = rng.normal(size=(256, 256)).astype("float32")
    model = _fixed_model(reference, strength=0.1)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    assert sizes["config.json"] < 5_000
    # kernel, bias and reference, plus HDF5 overhead
    assert sizes["model.weights.h5"] < 2 * reference.nbytes + 30_000
    # A fresh process knows no values: they must come from the file.
    monkeypatch.setattr(regularizers, "_VALUES", weakref.WeakValueDictionary())
    loaded = keras.models.load_model(tmp_path / "m.keras")
    tie = loaded.layers[0].kernel_regularizer
    np.testing.assert_array_equal(tie.reference, reference)
    kernel = _np(loaded.layers[0].kernel)
    assert float(sum(loaded.losses)) == pytest.approx(
        0.1 * np.sum((kernel - reference) ** 2), rel=1e-5
    )


def test_files_with_the_values_in_config_still_load(tmp_path, rng):
    """A file written before the values became a weight: a config with
    `reference` as nested lists and no weight for it."""
    reference = rng.normal(size=(4, 3)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1)),
        ]
    )
    model.save(tmp_path / "new.keras")
    old = dict(
        keras.saving.serialize_keras_object(TiedRegularizer(reference, strength=0.2))
    )
    old["config"] = {**old["config"], "reference": reference.tolist()}
    with zipfile.ZipFile(tmp_path / "new.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][-1]["config"]["kernel_regularizer"] = old
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    loaded = keras.models.load_model(tmp_path / "old.keras")
    kernel = _np(loaded.layers[0].kernel)
    np.testing.assert_allclose(kernel, _np(model.layers[0].kernel))
    assert float(sum(loaded.losses)) == pytest.approx(
        0.2 * np.sum((kernel - reference) ** 2), rel=1e-5
    )


def test_copies_and_clones_keep_the_values(rng):
    reference = rng.normal(size=(5, 2)).astype("float32")
    model = _fixed_model(reference, strength=0.3, norm="l1")
    tie = model.layers[0].kernel_regularizer
    kernel = model.layers[0].kernel
    for other in (copy.deepcopy(tie), pickle.loads(pickle.dumps(tie))):
        assert float(other(kernel)) == pytest.approx(float(tie(kernel)))
    clone = keras.models.clone_model(model)
    np.testing.assert_array_equal(
        clone.layers[0].kernel_regularizer.reference, reference
    )
    # A config read where the values are unknown fails at first use, clearly.
    config = tie.get_config()
    orphan = TiedRegularizer.from_config(
        {**config, "reference": {**config["reference"], "key": "unknown"}}
    )
    with pytest.raises(ValueError, match="stored with the model's weights"):
        orphan(kernel)
