"""The datasets: digits, standardisation, Fashion-MNIST files, .npz, checks."""

import gzip

import numpy as np
import pytest

from keras_tricks import datasets
from keras_tricks.datasets import (
    check_data,
    load_dataset,
    load_fashion_mnist,
    load_lab_dataset,
    standardize,
)

pytestmark = pytest.mark.jax


def _write_fashion(directory, images, labels):
    directory.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(
                b"\x00\x00\x08\x03"
                + len(images).to_bytes(4, "big")
                + (28).to_bytes(4, "big") * 2
                + images.tobytes()
            )
        with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(
                b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big") + labels.tobytes()
            )


@pytest.fixture
def fashion(tmp_path):
    images = np.arange(6 * 28 * 28, dtype=np.uint8).reshape(6, 28, 28)
    labels = np.array([3, 7, 3, 7, 3, 7], np.uint8)
    _write_fashion(tmp_path / "fm", images, labels)
    return tmp_path / "fm", images, labels


def test_fashion_mnist_missing_gives_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_idx_reader(fashion):
    directory, images, labels = fashion
    (x, y), (xt, yt) = load_fashion_mnist(directory)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(yt, labels)


def test_fashion_mnist_falls_back_to_the_keras_cache(fashion, tmp_path, monkeypatch):
    directory, images, _ = fashion
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError, match="absent or .*keras/datasets"):
        load_fashion_mnist()
    _write_fashion(
        tmp_path / "keras" / "datasets" / "fashion-mnist", images, fashion[2]
    )
    (x, _), _ = load_fashion_mnist()
    np.testing.assert_array_equal(x, images)
    data = load_dataset("fashion-mnist", data_dir=directory)
    assert data.image_shape == (28, 28, 1) and data.test[0].shape == (6, 28, 28)
    assert data.x.max() == pytest.approx(images.max() / 255)


def test_standardize_uses_train_statistics_and_keeps_constant_features_finite():
    train = np.array([[0.0, 1.0], [0.0, 3.0]])
    dev = np.array([[5.0, 2.0]])
    train_z, dev_z = standardize(train, dev)
    np.testing.assert_allclose(train_z, [[0.0, -1.0], [0.0, 1.0]])
    np.testing.assert_allclose(dev_z, [[5.0, 0.0]])


def test_digits_as_images_and_flat():
    data = load_dataset("digits")
    assert data.x.shape == (1797, 8, 8) and data.classes == 10
    assert data.x.min() == 0.0 and data.x.max() == 1.0
    x, y = load_lab_dataset("digits")
    assert x.shape == (1797, 64) and y.dtype == np.int32
    np.testing.assert_array_equal(x, data.x.reshape(1797, 64))
    assert len(data.subsample(100).x) == 100


def test_npz_images_and_errors(tmp_path):
    y = np.repeat([0, 1], 5)
    np.savez(tmp_path / "img.npz", x=np.ones((10, 4, 4)), y=y)
    data = load_dataset(str(tmp_path / "img.npz"))
    assert data.image_shape == (4, 4, 1) and data.x.dtype == np.float32
    np.savez(tmp_path / "obj.npz", x=np.array(["a"] * 10), y=y)
    with pytest.raises(ValueError, match="real numbers"):
        load_dataset(str(tmp_path / "obj.npz"))
    np.savez(tmp_path / "float_y.npz", x=np.ones((10, 2)), y=y / 2)
    with pytest.raises(ValueError, match="integer class labels"):
        load_dataset(str(tmp_path / "float_y.npz"))
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="arrays named 'x' and 'y'"):
        load_dataset(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones((4, 2)), np.array([0, 1, 0]), "same, non-zero number of rows"),
        (np.ones((6, 0)), np.repeat([0, 1], 3), "no features"),
        (np.ones((6, 1)), np.zeros(6, int), "at least 2 classes"),
        (np.ones((6, 1)), np.array([0, 0, 0, 0, 1, 1]), "class 1 has 2"),
        (np.array([[1.0, np.inf]] * 6), np.repeat([0, 1], 3), "6 NaN or infinite"),
    ],
)
def test_check_data(x, y, message):
    with pytest.raises(ValueError, match=message):
        check_data(x, y)


def test_the_old_lab_module_still_serves_the_loader():
    from keras_tricks.lab import load_lab_dataset as from_lab
    from keras_tricks.lab.datasets import load_lab_dataset as from_module

    assert from_lab is from_module is load_lab_dataset
