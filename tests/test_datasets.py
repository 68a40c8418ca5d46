"""The embedded and local datasets: digits, standardisation, Fashion-MNIST."""

import pytest


def test_fashion_mnist_missing_gives_the_install_command(tmp_path):
    from keras_tricks.datasets import load_fashion_mnist

    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_idx_reader(tmp_path):
    import gzip

    import numpy as np

    from keras_tricks.datasets import load_fashion_mnist

    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], np.uint8)
    for prefix in ("train", "t10k"):
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(
                b"\x00\x00\x08\x03"
                + (2).to_bytes(4, "big")
                + (28).to_bytes(4, "big") * 2
                + images.tobytes()
            )
        with gzip.open(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + labels.tobytes())
    (x, y), (xt, yt) = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(yt, labels)


def test_standardize_uses_train_statistics_and_keeps_constant_features_finite():
    import numpy as np

    from keras_tricks.datasets import standardize

    train = np.array([[0.0, 1.0], [0.0, 3.0]])
    dev = np.array([[5.0, 2.0]])
    train_z, dev_z = standardize(train, dev)
    np.testing.assert_allclose(train_z, [[0.0, -1.0], [0.0, 1.0]])
    np.testing.assert_allclose(dev_z, [[5.0, 0.0]])
