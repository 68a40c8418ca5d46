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
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0) + np.float32(1e-7)
    return ((x_train - mean) / std, y_train), ((x_dev - mean) / std, y_dev)
