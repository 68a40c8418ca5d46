"""Gradient clipping as pure functions of a list of gradients.

Each function takes a list of gradient tensors (entries may be `None`, for
variables without a gradient, and come back `None`) and returns the clipped
list, in `keras.ops`, so it runs inside a compiled train step on any backend.
Below its threshold a gradient is returned unchanged, bit for bit. Norms are
computed in float32 whatever the gradients' dtype.

References:
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013 (norm clipping).
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image
    Recognition Without Normalization", ICML 2021 (adaptive clipping).
"""

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_tricks._validation import check_number, invalid, invalid_together

Tensor = Any
"""A backend tensor, NumPy array or Keras variable."""

Gradients = Sequence[Tensor | None]
"""A list of gradients; `None` for a variable without one."""


def check_gradients(grads: Any) -> list[Tensor | None]:
    """Checks that `grads` is a list or tuple of gradients; returns a list.

    A single tensor would be iterated over its rows, each taken for one
    gradient: the global norm would then be per row, silently wrong.
    """
    if not isinstance(grads, list | tuple):
        raise invalid(
            "grads",
            grads,
            "a list of gradient tensors (None entries allowed)",
            TypeError,
            fix="Wrap a single tensor in a list: [grad]",
        )
    return list(grads)


def sum_squares(g: Tensor) -> Tensor:
    """Sum of the squared entries of `g`, in float32 (the squared norm).

    Example:

    >>> float(sum_squares(np.array([3.0, 4.0])))
    25.0
    """
    g = ops.cast(ops.convert_to_tensor(g), "float32")
    return ops.sum(ops.square(g))


def tensor_norms(grads: Gradients) -> list[Tensor | None]:
    """Euclidean norm of each gradient (`None` stays `None`), in float32.

    Example:

    >>> [float(n) for n in tensor_norms([np.array([3.0, 4.0])])]
    [5.0]
    """
    return [None if g is None else ops.sqrt(sum_squares(g)) for g in grads]


def combine_norms(norms: Sequence[Tensor | None]) -> Tensor:
    """Global norm from per-tensor norms (`None` entries skipped).

    Example:

    >>> float(combine_norms([3.0, None, 4.0]))
    5.0
    """
    squares = [ops.square(n) for n in norms if n is not None]
    if not squares:
        return ops.zeros((), "float32")
    return ops.sqrt(ops.sum(ops.stack(squares)))


def global_norm(grads: Gradients) -> Tensor:
    """Euclidean norm of all gradients together: sqrt(sum_i ||g_i||^2).

    Example:

    >>> float(global_norm([np.array([3.0]), None, np.array([4.0])]))
    5.0
    """
    return combine_norms(tensor_norms(grads))


def clip_by_global_norm(grads: Gradients, max_norm: float) -> list[Tensor | None]:
    """Rescales all gradients together so that their global norm is <= `max_norm`.

    g_i <- g_i * max_norm / ||g|| when ||g|| = sqrt(sum_i ||g_i||^2) >
    max_norm, else unchanged. The direction of the whole gradient is kept.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        max_norm: the threshold, a positive number.

    Returns:
        The list of clipped gradients.

    Raises:
        TypeError: if `grads` is not a list or tuple.

    Example:

    >>> clipped = clip_by_global_norm([keras.ops.ones((2,)) * 3.0, None], 1.0)
    >>> round(float(keras.ops.norm(clipped[0])), 5)  # was 3 * sqrt(2)
    1.0
    """
    grads = check_gradients(grads)
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True)
    return scale_to_norm(grads, global_norm(grads), max_norm)


def clip_by_norm(grads: Gradients, max_norm: float) -> list[Tensor | None]:
    """Rescales each gradient on its own so that its norm is <= `max_norm`.

    g_i <- g_i * max_norm / ||g_i|| when ||g_i|| > max_norm, else unchanged.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        max_norm: the threshold, a positive number.

    Returns:
        The list of clipped gradients.

    Raises:
        TypeError: if `grads` is not a list or tuple.

    Example:

    >>> grads = [np.array([3.0, 4.0], "float32"), np.array([0.5], "float32")]
    >>> big, small = clip_by_norm(grads, 1.0)
    >>> keras.ops.convert_to_numpy(big), keras.ops.convert_to_numpy(small)
    (array([0.6, 0.8], dtype=float32), array([0.5], dtype=float32))
    """
    grads = check_gradients(grads)
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True)
    return clip_each(grads, tensor_norms(grads), max_norm)


def clip_by_value(grads: Gradients, limit: float) -> list[Tensor | None]:
    """Clips every gradient entry to [-limit, limit].

    Unlike norm clipping this changes the direction of the gradient.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        limit: the bound, a positive number.

    Returns:
        The list of clipped gradients.

    Raises:
        TypeError: if `grads` is not a list or tuple.

    Example:

    >>> g = np.array([-3.0, 0.2], "float32")
    >>> keras.ops.convert_to_numpy(clip_by_value([g], 1.0)[0])
    array([-1. ,  0.2], dtype=float32)
    """
    grads = check_gradients(grads)
    limit = check_number("limit", limit, low=0, low_open=True)
    return [None if g is None else ops.clip(g, -limit, limit) for g in grads]


def unitwise_norm(x: Tensor) -> Tensor:
    """Norm of each output unit of a weight or gradient, in float32.

    The norm runs over every axis but the last (Keras kernels are
    `[..., in, out]`, so the last axis indexes the output units); a 1-D
    weight (bias, scale) or a scalar uses its whole norm. The result
    broadcasts against `x`.

    Example:

    >>> kernel = np.array([[3.0, 0.0], [4.0, 1.0]])  # 2 inputs, 2 units
    >>> keras.ops.convert_to_numpy(unitwise_norm(kernel))
    array([[5., 1.]], dtype=float32)
    """
    x = ops.cast(x, "float32")
    if len(x.shape) <= 1:
        return ops.sqrt(ops.sum(ops.square(x)))
    axes = tuple(range(len(x.shape) - 1))
    return ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=True))


def adaptive_clip(
    grads: Gradients,
    params: Sequence[Tensor | None],
    clipping: float = 0.01,
    eps: float = 1e-3,
) -> list[Tensor | None]:
    """Unit-wise adaptive gradient clipping (AGC).

    For each output unit i of each weight W with gradient G:
    G_i <- G_i * clipping * max(||W_i||, eps) / ||G_i|| when
    ||G_i|| > clipping * max(||W_i||, eps), else unchanged: the gradient may
    be at most `clipping` times the weight it updates. Norms are unit-wise
    (`unitwise_norm`); `eps` keeps zero-initialised weights (biases) movable.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        params: the weights, aligned with `grads`.
        clipping: the ratio lambda, positive. Defaults to `0.01`.
        eps: lower bound of a unit's weight norm, >= 0. Defaults to `1e-3`.

    Returns:
        The list of clipped gradients.

    Raises:
        ValueError: for `clipping <= 0`, `eps < 0`, or lists of different
            lengths.

    Example:

    >>> weight = np.array([[3.0], [4.0]], "float32")  # one unit of norm 5
    >>> grad = np.array([[10.0], [0.0]], "float32")
    >>> (g,) = adaptive_clip([grad], [weight], clipping=0.1)
    >>> keras.ops.convert_to_numpy(g)  # norm capped at 0.1 * 5
    array([[0.5],
           [0. ]], dtype=float32)

    Reference:
        Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image
        Recognition Without Normalization", ICML 2021.
    """
    clipping = check_number("clipping", clipping, low=0, low_open=True)
    eps = check_number("eps", eps, low=0)
    if len(grads) != len(params):
        raise invalid_together(
            {"grads": grads, "params": params},
            f"lists of the same length ({len(grads)} gradients, {len(params)} weights)",
        )
    return [
        None if g is None else adaptive_unit(g, p, clipping, eps)[0]
        for g, p in zip(grads, params, strict=True)
    ]


def normalize(grads: Gradients, norm: float = 1.0) -> list[Tensor | None]:
    """Keeps only the direction of the gradient: g <- norm * g / ||g||.

    ||g|| is the global norm over all gradients, so the direction of the
    whole gradient vector is kept and every step has length `norm` times the
    learning rate (normalised gradient descent). A zero gradient stays zero.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        norm: the global norm of the result, positive. Defaults to `1.0`.

    Returns:
        The list of rescaled gradients.

    Raises:
        TypeError: if `grads` is not a list or tuple.

    Example:

    >>> keras.ops.convert_to_numpy(normalize([np.array([0.3, 0.4], "float32")])[0])
    array([0.6, 0.8], dtype=float32)
    """
    grads = check_gradients(grads)
    norm = check_number("norm", norm, low=0, low_open=True)
    total = global_norm(grads)
    scale = ops.where(total > 0, norm / ops.maximum(total, _TINY), 1.0)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


_TINY = 1e-30
"""Floor of a divisor norm; any norm it replaces makes the factor unused."""


def scale_to_norm(grads: Gradients, total: Tensor, max_norm: float) -> list:
    """Clips `grads` to global norm `max_norm`, given their global norm `total`.

    Example:

    >>> g = np.array([3.0, 4.0], "float32")
    >>> keras.ops.convert_to_numpy(scale_to_norm([g], 5.0, 1.0)[0])
    array([0.6, 0.8], dtype=float32)
    """
    scale = ops.where(total > max_norm, max_norm / ops.maximum(total, _TINY), 1.0)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


def clip_each(
    grads: Gradients, norms: Sequence[Tensor | None], max_norm: float
) -> list[Tensor | None]:
    """Clips each gradient to norm `max_norm`, given its norm in `norms`.

    Example:

    >>> g = np.array([3.0, 4.0], "float32")
    >>> keras.ops.convert_to_numpy(clip_each([g], [5.0], 1.0)[0])
    array([0.6, 0.8], dtype=float32)
    """
    return [
        None if g is None else scale_to_norm([g], n, max_norm)[0]
        for g, n in zip(grads, norms, strict=True)
    ]


def adaptive_unit(
    grad: Tensor, param: Tensor, clipping: float, eps: float
) -> tuple[Tensor, Tensor]:
    """AGC of one gradient; returns `(clipped, whether any unit was clipped)`.

    Example:

    >>> w = np.array([1.0, 0.0], "float32")
    >>> g, changed = adaptive_unit(w, w, 0.1, 0.0)
    >>> keras.ops.convert_to_numpy(g), bool(changed)
    (array([0.1, 0. ], dtype=float32), True)
    """
    clipped, changed, _ = adaptive_unit_with_norms(grad, param, clipping, eps)
    return clipped, changed


def adaptive_unit_with_norms(
    grad: Tensor, param: Tensor, clipping: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """`adaptive_unit`, plus the unit-wise norms of `grad` it computed.

    The sum of their squares is the gradient's squared norm, which a caller
    recording norms then gets without another pass over the gradient.
    """
    max_norm = clipping * ops.maximum(unitwise_norm(param), eps)
    grad_norm = unitwise_norm(grad)
    over = grad_norm > max_norm
    scale = ops.where(over, max_norm / ops.maximum(grad_norm, _TINY), 1.0)
    return grad * ops.cast(scale, grad.dtype), ops.any(over), grad_norm
