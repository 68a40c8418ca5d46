"""Datasets for demos, examples and the lab: digits, Fashion-MNIST, your `.npz`.

Nothing is downloaded: digits ships inside scikit-learn (the `lab` extra),
Fashion-MNIST is read from Debian's `dataset-fashion-mnist` package or from
Keras's dataset cache, and any other data comes as an `.npz` file.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_tricks._extras import require

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's `dataset-fashion-mnist` package installs the data."""

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
"""The four idx files of Fashion-MNIST (the same names in every copy)."""

BUILTIN = ("digits", "fashion-mnist")
"""The dataset names `load_dataset` knows; anything else is an `.npz` path."""


def load_digits(*, dev_size: float = 0.2, seed: int = 0) -> tuple:
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
    sklearn_datasets = require("sklearn.datasets", "lab", "load_digits()")
    model_selection = require("sklearn.model_selection", "lab", "load_digits()")
    digits = sklearn_datasets.load_digits()
    x = digits.data.astype("float32")
    y = digits.target.astype("int32")
    x_train, x_dev, y_train, y_dev = model_selection.train_test_split(
        x, y, test_size=dev_size, random_state=seed, stratify=y
    )
    x_train, x_dev = standardize(x_train, x_dev)
    return (x_train, y_train), (x_dev, y_dev)


def standardize(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Z-scores features with the training split's statistics only.

    Each feature is mapped to `(x - mean) / std` with the mean and standard
    deviation of `x_train` (over the first axis); a feature constant in
    `x_train` (std 0, e.g. a border pixel that is always blank) is only
    centred, so rare non-zero values in the other splits stay finite and
    small.

    Args:
        x_train: the training features; their statistics are used.
        *others: more arrays with the same feature shape (dev, test).

    Returns:
        The standardised `x_train`, then each of `others`, as float32.

    Example:

    >>> train, dev = standardize(np.array([[0.0, 1.0], [0.0, 3.0]]),
    ...                          np.array([[5.0, 2.0]]))
    >>> train.tolist(), dev.tolist()
    ([[0.0, -1.0], [0.0, 1.0]], [[5.0, 0.0]])
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype("float32") for x in (x_train, *others))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def keras_cache_dir() -> Path:
    """Where `keras.datasets.fashion_mnist.load_data()` keeps its download.

    `$KERAS_HOME/datasets/fashion-mnist`, by default
    `~/.keras/datasets/fashion-mnist`.
    """
    home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return Path(home).expanduser() / "datasets" / "fashion-mnist"


def _has_fashion_mnist(directory: Path) -> bool:
    return all((directory / name).exists() for name in FASHION_MNIST_FILES.values())


def load_fashion_mnist(path: str | os.PathLike[str] | None = None) -> tuple:
    """The real Fashion-MNIST (70,000 28x28 images) from a local directory.

    Reads the four idx files (`train-images-idx3-ubyte.gz`, ...); nothing is
    downloaded. Without `path`, looks in Debian's package directory
    (`/usr/share/datasets/fashion-mnist`), then in Keras's dataset cache
    (`~/.keras/datasets/fashion-mnist`, filled by an earlier
    `keras.datasets.fashion_mnist.load_data()`).

    Args:
        path: directory holding the idx files. Defaults to `None` (the two
            places above).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images of shape
        `(n, 28, 28)` and uint8 labels, 60,000 training and 10,000 test.

    Raises:
        FileNotFoundError: if the files are missing; the message gives the
            install command.
    """
    candidates = (
        [Path(FASHION_MNIST_DIR), keras_cache_dir()] if path is None else [Path(path)]
    )
    found = next((d for d in candidates if _has_fashion_mnist(d)), None)
    if found is None:
        where = " or ".join(str(d) for d in candidates)
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {where}. Install it with "
            "`sudo apt-get install dataset-fashion-mnist`, or pass a directory "
            "holding the four idx .gz files (--data-dir on the command line)."
        )
    arrays = {key: _read_idx(found / name) for key, name in FASHION_MNIST_FILES.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


@dataclass
class LabDataset:
    """A dataset as the lab uses it.

    Attributes:
        name: what the tables and plots call it.
        x: features, float32, one row per example, any shape after the first
            axis (images keep theirs).
        y: int32 class labels 0..k-1.
        test: `(x_test, y_test)` when the dataset comes with its own test
            split (Fashion-MNIST), else `None` (the lab carves one out).
        image_shape: `(height, width, channels)` for image data, else `None`.
        original_labels: when the file's labels were not `0..k-1`, the
            original label of each class id (`original_labels[c]` was
            remapped to `c`), else `None`.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    test: tuple[np.ndarray, np.ndarray] | None = None
    image_shape: tuple[int, int, int] | None = None
    original_labels: np.ndarray | None = None

    @property
    def classes(self) -> int:
        """The number of classes (largest label + 1)."""
        labels = self.y if self.test is None else np.concatenate([self.y, self.test[1]])
        return int(labels.max()) + 1

    def subsample(self, examples: int, seed: int = 0) -> LabDataset:
        """At most `examples` rows of `x` (random, seeded); the test split stays."""
        if examples >= len(self.x):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self.x))[:examples])
        return LabDataset(
            self.name,
            self.x[keep],
            self.y[keep],
            self.test,
            self.image_shape,
            self.original_labels,
        )


def load_dataset(
    name: str, *, data_dir: str | os.PathLike[str] | None = None
) -> LabDataset:
    """Loads and checks a dataset for the lab.

    Args:
        name: `"digits"` (scikit-learn's embedded 1797 8x8 images),
            `"fashion-mnist"` (60,000 training and 10,000 test images, read
            by `load_fashion_mnist`) or the path of an `.npz` file holding
            arrays `x` (n rows; images as `(n, h, w)` or `(n, h, w, c)`) and
            `y` (n integer class labels; labels other than `0..k-1`, such
            as `{0, 1, 100000}`, are remapped to `0..k-1` by
            `compact_labels`, the mapping kept in `original_labels`).
        data_dir: the Fashion-MNIST directory. Defaults to `None` (Debian's
            package, then Keras's cache).

    Returns:
        A `LabDataset`, pixels scaled to [0, 1] for the built-in image sets.

    Raises:
        FileNotFoundError: for a missing `.npz` file or Fashion-MNIST.
        ValueError: for an unknown name, an unreadable `.npz` file, or data
            the lab cannot use (see `check_data`).

    Example:

    >>> data = load_dataset("digits")
    >>> data.x.shape, data.image_shape, data.classes
    ((1797, 8, 8), (8, 8, 1), 10)
    """
    if name == "digits":
        sklearn_datasets = require("sklearn.datasets", "lab", "the digits dataset")
        digits = sklearn_datasets.load_digits()
        x = digits.images.astype("float32") / 16.0
        return LabDataset("digits", x, digits.target.astype("int32"), None, (8, 8, 1))
    if name == "fashion-mnist":
        (x, y), (x_test, y_test) = load_fashion_mnist(data_dir)
        scale = np.float32(1 / 255)
        return LabDataset(
            "fashion-mnist",
            x.astype("float32") * scale,
            y.astype("int32"),
            (x_test.astype("float32") * scale, y_test.astype("int32")),
            (28, 28, 1),
        )
    x, y = _read_npz(name)
    check_data(x, y)
    y, original = compact_labels(y)
    return LabDataset(str(name), x, y, None, _image_shape(x), original)


def compact_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Maps integer labels to consecutive class ids `0..k-1`, in sorted order.

    Labels `{0, 1, 100000}` would otherwise make a softmax of 100,001 units.

    Returns:
        `(ids, original)`: the int32 class ids, and the original label of
        each id (`None` when the labels already are `0..k-1`).

    Example:

    >>> ids, original = compact_labels(np.array([0, 100000, 1, 100000]))
    >>> ids.tolist(), original.tolist()
    ([0, 2, 1, 2], [0, 1, 100000])
    """
    values, ids = np.unique(y, return_inverse=True)
    if values[0] == 0 and values[-1] == len(values) - 1:
        return y, None
    return ids.reshape(-1).astype("int32"), values


def _read_npz(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(name)
    if path.suffix != ".npz":
        from keras_tricks._validation import invalid

        raise invalid(
            "dataset", name, "'digits', 'fashion-mnist' or a path ending in .npz"
        )
    if not path.exists():
        raise FileNotFoundError(f"No such .npz file: {path}")
    try:
        with np.load(path) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(
                    f"Invalid .npz file {path}: expected arrays named 'x' and "
                    f"'y'. Received arrays: {sorted(data.files)}"
                )
            x, y = data["x"], data["y"]
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        if str(error).startswith("Invalid .npz file"):
            raise
        raise ValueError(f"Cannot read the .npz file {path}: {error}") from error
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
        x.dtype, np.complexfloating
    ):
        raise ValueError(
            f"Invalid .npz file {path}: `x` must hold real numbers. Received "
            f"dtype {x.dtype}"
        )
    if (
        y.ndim != 1
        or not np.issubdtype(y.dtype, np.integer)
        or (len(y) and y.min() < 0)
    ):
        raise ValueError(
            f"Invalid .npz file {path}: `y` must be a 1-D array of non-negative "
            f"integer class labels. Received dtype {y.dtype}, shape {y.shape}"
        )
    return x.astype("float32"), y.astype("int32")


def _image_shape(x: np.ndarray) -> tuple[int, int, int] | None:
    if x.ndim == 3:
        return (x.shape[1], x.shape[2], 1)
    if x.ndim == 4:
        return (x.shape[1], x.shape[2], x.shape[3])
    return None


def check_data(x: np.ndarray, y: np.ndarray, *, min_per_class: int = 3) -> None:
    """Checks that the lab can split and train on `(x, y)`.

    Args:
        x: features, one row per example.
        y: integer class labels.
        min_per_class: fewest examples a class may have: the stratified
            train/dev/test split needs one of each class in each split.
            Defaults to `3`.

    Raises:
        ValueError: when `x` and `y` differ in length, `x` has no rows or no
            features, a feature is NaN or infinite (the message names the
            first such row and column), there are fewer than 2 classes, or a
            class has fewer than `min_per_class` examples.

    Example:

    >>> check_data(np.array([[0.0], [np.nan]]), np.array([0, 1]))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The features hold 1 NaN or infinite value(s), the first at row 1, ...
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"`x` and `y` must have the same, non-zero number of rows. "
            f"Received {len(x)} and {len(y)}"
        )
    flat = x.reshape(len(x), -1)
    if flat.shape[1] == 0:
        raise ValueError(
            f"`x` has no features (shape {x.shape}): each row needs at least one."
        )
    bad = ~np.isfinite(flat)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"The features hold {int(bad.sum())} NaN or infinite value(s), the "
            f"first at row {row}, column {column}. Remove or impute them first."
        )
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:
        raise ValueError(
            "Classification needs at least 2 classes; `y` holds only "
            f"{labels.tolist()}."
        )
    small = counts < min_per_class
    if small.any():
        listing = ", ".join(
            f"class {label} has {count}"
            for label, count in zip(labels[small], counts[small], strict=True)
        )
        raise ValueError(
            f"Each class needs at least {min_per_class} examples (one per "
            f"train/dev/test split): {listing}."
        )


def load_lab_dataset(
    name: str, *, fashion_mnist_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a dataset as flat float32 features and int labels (all rows).

    The flat form of `load_dataset`: Fashion-MNIST's training and test
    images are concatenated (70,000 rows), images are flattened.

    Args:
        name: `"digits"`, `"fashion-mnist"` or the path of an `.npz` file
            (see `load_dataset`).
        fashion_mnist_dir: where the Fashion-MNIST idx files are. Defaults
            to `None` (Debian's package, then Keras's cache).

    Returns:
        `(x, y)`: `x` float32 of shape `(n, features)`, `y` int32 labels.

    Example:

    >>> x, y = load_lab_dataset("digits")
    >>> x.shape, y.dtype
    ((1797, 64), dtype('int32'))
    """
    data = load_dataset(name, data_dir=fashion_mnist_dir)
    x, y = data.x, data.y
    if data.test is not None:
        x = np.concatenate([x, data.test[0]])
        y = np.concatenate([y, data.test[1]])
    return x.reshape(len(x), -1), y
