"""Small datasets that ship inside installed packages (no network needed)."""

import numpy as np


def load_digits(*, dev_size=0.2, seed=0):
    """scikit-learn's 1797 8x8 digit images, split and standardised.

    The 64 pixel features are z-scored with the mean and standard deviation of
    the training split only, then applied to both splits.

    Args:
        dev_size: fraction of the examples held out as the dev split,
            stratified by class. Defaults to `0.2`.
        seed: seed of the split. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_dev, y_dev)`: float32 arrays of shape
        `(n, 64)` and int32 labels in 0..9.

    Example:

    >>> (x_train, y_train), (x_dev, y_dev) = load_digits()
    >>> x_train.shape, x_dev.shape
    ((1437, 64), (360, 64))
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = digits.data.astype("float32")
    y = digits.target.astype("int32")
    x_train, x_dev, y_train, y_dev = train_test_split(
        x, y, test_size=dev_size, random_state=seed, stratify=y
    )
    x_train, x_dev = standardize(x_train, x_dev)
    return (x_train, y_train), (x_dev, y_dev)


def standardize(x_train, *others):
    """Z-scores features with the training split's statistics only.

    Each feature is mapped to `(x - mean) / std` with the mean and standard
    deviation of `x_train`; a feature constant in `x_train` (std 0, e.g. a
    border pixel that is always blank) is only centred, so rare non-zero
    values in the other splits stay finite and small.

    Returns:
        The standardised `x_train`, then each of `others`, as float32.
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype("float32") for x in (x_train, *others))


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's `dataset-fashion-mnist` package installs the data."""


def _read_idx(path):
    import gzip

    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(path=FASHION_MNIST_DIR):
    """The real Fashion-MNIST (70,000 28x28 images) from a local directory.

    Reads the four idx files (`train-images-idx3-ubyte.gz`, ...) that Debian's
    `dataset-fashion-mnist` package installs; nothing is downloaded.

    Args:
        path: directory holding the idx files. Defaults to
            `/usr/share/datasets/fashion-mnist`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images of shape
        `(n, 28, 28)` and uint8 labels, 60,000 training and 10,000 test.

    Raises:
        FileNotFoundError: if the files are missing; the message gives the
            install command.
    """
    from pathlib import Path

    files = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [name for name in files.values() if not (Path(path) / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {path} (missing {', '.join(missing)}). "
            "Install it with `sudo apt-get install dataset-fashion-mnist`, or "
            "pass `path=` to a directory holding the four idx .gz files."
        )
    arrays = {key: _read_idx(Path(path) / name) for key, name in files.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
