"""Optional dependencies: import one, or say which extra installs it."""

import importlib


def require(module, extra, feature):
    """Imports `module`, or raises an `ImportError` naming the extra to install.

    Args:
        module: the module to import, e.g. `"matplotlib.pyplot"`.
        extra: the keras-tricks extra that provides it, e.g. `"lab"`.
        feature: what needs it, for the message, e.g. `"LRFinderResult.plot()"`.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(
            f"{feature} needs {package}, which is not installed. Install it with "
            f'pip install "keras-tricks[{extra}]"'
        ) from error
