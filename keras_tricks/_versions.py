"""The versions keras_tricks is tested with, checked once at import.

`make test-compat` runs the tests marked `compat` on the oldest versions
(`constraints-oldest.txt`, Python 3.10) and on the newest ones the registry
serves (Python 3.13), and `make test` runs the whole suite on the pinned ones
(`constraints.txt`). `TESTED` is that range. A Keras older than
`MINIMUM_KERAS` fails at import: Keras 3.9 and older lack what the optimizer
wrapper builds its variables with (`TypeError: Variable.__init__() got an
unexpected keyword argument 'synchronization'`). Any other version outside
`TESTED` may work, so it only warns, once.

The installed versions are read from the package metadata: checking the
TensorFlow or JAX version never imports them.
"""

import importlib.metadata
import re
import warnings

MINIMUM_KERAS = "3.10"
"""The oldest Keras that works: older ones fail at import."""

TESTED = {
    "keras": ("3.10", "3.15"),
    "tensorflow": ("2.18", "2.21"),
    "jax": ("0.6", "0.12"),
}
"""`{package: (oldest, newest)}` release series (`major.minor`) tested."""

# The distributions that provide each module, the official one first.
_DISTRIBUTIONS = {
    "keras": ("keras", "keras-nightly"),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "jax": ("jax",),
}


def series(version: str) -> tuple[int, int]:
    """`(major, minor)` of a version string: `"3.12.0rc1"` gives `(3, 12)`.

    Args:
        version: a version string such as `keras.__version__`.

    Returns:
        The release series as a tuple of two integers.

    Raises:
        ValueError: if `version` does not start with `major.minor`.
    """
    match = re.match(r"\s*v?(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(
            "Invalid value for argument `version`. Expected a version string "
            f"starting with major.minor, e.g. '3.12.0'. Received: version={version!r}"
        )
    return int(match[1]), int(match[2])


def installed(package: str) -> str | None:
    """The installed version of `package` (a key of `TESTED`), or None."""
    for distribution in _DISTRIBUTIONS[package]:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check(versions: dict[str, str | None] | None = None) -> list[str]:
    """Raises for a Keras that is too old; warns for an untested version.

    Args:
        versions: `{package: version or None}` for the packages of `TESTED`;
            defaults to the installed ones (`None`: not installed).

    Returns:
        The warning messages issued, one per package outside `TESTED`.

    Raises:
        ImportError: if Keras is older than `MINIMUM_KERAS`.
    """
    if versions is None:
        versions = {package: installed(package) for package in TESTED}
    keras_version = versions.get("keras")
    if keras_version is not None and series(keras_version) < series(MINIMUM_KERAS):
        raise ImportError(
            f"keras_tricks needs Keras {MINIMUM_KERAS} or newer; Keras "
            f"{keras_version} is installed. Upgrade it with "
            f'pip install --upgrade "keras>={MINIMUM_KERAS}"'
        )
    messages = []
    for package, (oldest, newest) in TESTED.items():
        version = versions.get(package)
        if version is None:
            continue
        try:
            inside = series(oldest) <= series(version) <= series(newest)
        except ValueError:
            inside = False
        if not inside:
            messages.append(
                f"keras_tricks {_own_version()} is tested with {package} "
                f"{oldest} to {newest}; {package} {version} is installed. "
                "It may work: please report what does not."
            )
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return messages


def _own_version() -> str:
    from keras_tricks import __version__

    return __version__
