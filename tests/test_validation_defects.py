"""Bad input named clearly (issue 25, defect 5): one test per case.

Each raised a raw error (IndexError, ZeroDivisionError, a backend error) or
none before; each now raises ValueError/TypeError naming the argument and the
value it received.
"""

import keras
import numpy as np
import pytest

from keras_tricks.callbacks import FitDiagnosis
from keras_tricks.ensembles import average_models
from keras_tricks.initializers import expected_std
from keras_tricks.layers import ClassicDropout, GhostBatchNormalization, MCDropout
from keras_tricks.lr_finder import find_learning_rate
from keras_tricks.optimizers import GradientClipping, clip_by_global_norm
from keras_tricks.regularizers import TiedRegularizer


@pytest.mark.parametrize("shape", [(), (0, 3)])
def test_expected_std_empty_or_zero_shape(shape):
    with pytest.raises(
        ValueError,
        match=rf"`shape`.*at least one dimension, every dimension >= 1\. "
        rf"Received: shape={shape!r}".replace("(", r"\(").replace(")", r"\)"),
    ):
        expected_std("he", shape)


def test_expected_std_shape_of_floats():
    with pytest.raises(TypeError, match=r"`shape`.*Received: shape=\(2\.0, 3\)"):
        expected_std("he", (2.0, 3))


def test_tied_regularizer_reference_of_strings():
    with pytest.raises(
        TypeError, match=r"`reference`.*numbers.*Received: reference=\['a', 'b'\]"
    ):
        TiedRegularizer(reference=["a", "b"], strength=0.1)


def test_tied_regularizer_reference_of_the_wrong_shape_at_build():
    regularizer = TiedRegularizer(np.ones((3, 3)), strength=0.1)
    layer = keras.layers.Dense(3, kernel_regularizer=regularizer)
    layer.build((None, 4))
    with pytest.raises(
        ValueError,
        match=r"`reference`.*weight's shape \(4, 3\) \(they have shape \(3, 3\)\)"
        r".*Received: reference=array",
    ):
        _ = layer.losses


def test_tied_regularizer_reference_layer_of_the_wrong_shape():
    source = keras.layers.Dense(2)
    source.build((None, 4))
    regularizer = TiedRegularizer(reference_layer=source, strength=0.1)
    layer = keras.layers.Dense(3, kernel_regularizer=regularizer)
    layer.build((None, 4))
    with pytest.raises(ValueError, match=r"`reference_layer`.*has shape \(4, 2\)"):
        _ = layer.losses


def test_ghost_batch_norm_size_not_dividing_a_static_batch_at_build():
    with pytest.raises(
        ValueError,
        match=r"`virtual_batch_size`.*divisor of the per-replica training batch "
        r"\(10 rows.*Received: virtual_batch_size=4",
    ):
        keras.Sequential([keras.Input((4,), batch_size=10), GhostBatchNormalization(4)])


def test_ghost_batch_norm_size_exceeding_the_batch():
    layer = GhostBatchNormalization(16)
    x = np.ones((10, 4), "float32")
    with pytest.raises(
        ValueError,
        match=r"`virtual_batch_size`.*at most the per-replica training batch "
        r"\(10 rows.*Received: virtual_batch_size=16",
    ):
        layer(x, training=True)


def test_ghost_batch_norm_size_one_at_construction():
    with pytest.raises(
        ValueError, match=r"`virtual_batch_size`.*>= 2.*Received: virtual_batch_size=1"
    ):
        GhostBatchNormalization(1)


@pytest.mark.parametrize("layer_class", [ClassicDropout, MCDropout])
def test_dropout_noise_shape_of_the_wrong_rank(layer_class):
    layer = layer_class(0.5, noise_shape=(None, 1))
    with pytest.raises(
        ValueError,
        match=r"`noise_shape`.*rank 3 for the input shape \(2, 3, 4\).*"
        r"Received: noise_shape=\(None, 1\)",
    ):
        layer(np.ones((2, 3, 4), "float32"), training=True)


def test_dropout_noise_shape_not_broadcastable():
    layer = ClassicDropout(0.5, noise_shape=(None, 2, 4))
    with pytest.raises(ValueError, match=r"`noise_shape`.*None, 1 or the input's"):
        layer(np.ones((2, 3, 4), "float32"), training=True)


def test_gradient_clipping_exclude_invalid_regex():
    with pytest.raises(
        ValueError,
        match=r"`exclude`.*regular expressions.*'\(' is not one.*"
        r"Received: exclude=\['\('\]",
    ):
        GradientClipping(keras.optimizers.SGD(), mode="adaptive", exclude=["("])


def test_clip_by_global_norm_given_one_tensor():
    with pytest.raises(
        TypeError, match=r"`grads`.*a list of gradient tensors.*\[grad\]"
    ):
        clip_by_global_norm(np.ones((3, 2), "float32"), 1.0)


def test_fit_diagnosis_target_error_above_one():
    with pytest.raises(
        ValueError,
        match=r"`target_error`.*\[0, 1\) with the accuracy metric.*"
        r"Received: target_error=1\.5",
    ):
        FitDiagnosis(target_error=1.5)
    FitDiagnosis(target_error=1.5, error_metric="mae")  # not a rate: fine


def test_find_learning_rate_targets_of_another_length():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((64, 4), "float32"), np.ones((63, 1), "float32")
    with pytest.raises(
        ValueError,
        match=r"`x`, `y`.*as many targets as inputs \(64 rows in `x`, 63 in `y`\)",
    ):
        find_learning_rate(model, x, y, steps=2)


def test_average_models_with_different_output_widths():
    members = [
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)], name=f"m{i}")
        for i, units in enumerate((3, 5))
    ]
    with pytest.raises(
        ValueError,
        match=r"`models`.*same output shapes; 'm0' gives \[\(3,\)\] but 'm1' "
        r"gives \[\(5,\)\]",
    ):
        average_models(members)


def test_stratify_mixing_numbers_and_strings():
    from keras_tricks.data import train_dev_test_split

    with pytest.raises(
        TypeError,
        match=r"`stratify`.*all strings or all numbers \(element 0 is 1, "
        r"element 1 is '1'\)",
    ):
        train_dev_test_split(np.arange(20), stratify=[1, "1"] * 10)


def test_tricks_hypermodel_log_range_from_zero():
    pytest.importorskip("keras_tuner")
    from keras_tricks.tuning import TricksHyperModel

    with pytest.raises(
        ValueError,
        match=r"`ranges\['lr'\]`.*min > 0.*log scale.*Received: "
        r"ranges\['lr'\]=\(0, 0\.1\)\. Start the range above 0, e\.g\. "
        r"\(0\.0001, 0\.1\)",
    ):
        TricksHyperModel(lambda hp: None, ranges={"lr": (0, 0.1)})


def test_ablate_remaps_sparse_labels_and_says_so(tmp_path, capsys, monkeypatch):
    import keras_tricks.lab.ablation
    from keras_tricks import cli

    rng = np.random.default_rng(0)
    y = np.repeat(np.array([0, 1, 100_000]), 20)
    path = tmp_path / "sparse.npz"
    np.savez(path, x=rng.normal(size=(60, 5)).astype("float32"), y=y)
    seen = {}

    class Stop(Exception):
        pass

    def stop(data, **kwargs):
        seen["data"] = data
        raise Stop

    monkeypatch.setattr(keras_tricks.lab.ablation, "run_ablation", stop)
    argv = ["ablate", "--dataset", str(path), "--out", str(tmp_path / "o")]
    with pytest.raises(Stop):
        cli.main([*argv, "--debug"])
    out = capsys.readouterr().out
    assert "remapped in sorted order (label -> class id): 0 -> 0, 1 -> 1, " in out
    assert "100000 -> 2" in out and "3 classes" in out
    data = seen["data"]
    assert data.classes == 3
    np.testing.assert_array_equal(data.y, np.repeat([0, 1, 2], 20))
    np.testing.assert_array_equal(data.original_labels, [0, 1, 100_000])
