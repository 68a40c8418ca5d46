"""The datasets the ablation lab runs on: digits, Fashion-MNIST, a user's .npz."""

from pathlib import Path

import numpy as np

from keras_tricks._validation import invalid
from keras_tricks.datasets import FASHION_MNIST_DIR, load_fashion_mnist

BUILTIN = ("digits", "fashion-mnist")


def load_lab_dataset(name, *, fashion_mnist_dir=FASHION_MNIST_DIR):
    """Loads a dataset for the lab as flat float32 features and int labels.

    Args:
        name: `"digits"` (scikit-learn's embedded 1797 images),
            `"fashion-mnist"` (the 70,000 real images from
            `fashion_mnist_dir`) or the path of an `.npz` file holding arrays
            `x` (n rows, any shape after the first axis) and `y` (n integer
            class labels).
        fashion_mnist_dir: where the Fashion-MNIST idx files are.

    Returns:
        `(x, y)`: `x` float32 of shape `(n, features)` scaled to [0, 1] for
        the image datasets (as stored for `.npz`), `y` int32 labels 0..k-1.

    Raises:
        FileNotFoundError: for a missing `.npz` file or Fashion-MNIST (the
            message gives the install command).
        ValueError: for an unknown name or an `.npz` without proper `x`/`y`.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data.astype("float32") / 16.0, digits.target.astype("int32")
    if name == "fashion-mnist":
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(fashion_mnist_dir)
        x = np.concatenate([x_train, x_test]).reshape(-1, 28 * 28)
        y = np.concatenate([y_train, y_test])
        return x.astype("float32") / 255.0, y.astype("int32")
    path = Path(name)
    if path.suffix != ".npz":
        raise invalid(
            "dataset", name, "'digits', 'fashion-mnist' or a path ending in .npz"
        )
    if not path.exists():
        raise FileNotFoundError(f"No such .npz file: {path}")
    with np.load(path) as data:
        if "x" not in data or "y" not in data:
            raise ValueError(
                f"Invalid .npz file {path}: expected arrays named 'x' and 'y'. "
                f"Received arrays: {sorted(data.files)}"
            )
        x, y = data["x"], data["y"]
    if len(x) != len(y) or len(x) == 0:
        raise invalid(
            "dataset",
            name,
            f"an .npz file whose `x` and `y` have the same, non-zero number of "
            f"rows ({path} has {len(x)} and {len(y)})",
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(
            f"Invalid .npz file {path}: `y` must be a 1-D array of non-negative "
            f"integer class labels. Received dtype {y.dtype}, shape {y.shape}"
        )
    return x.reshape(len(x), -1).astype("float32"), y.astype("int32")
