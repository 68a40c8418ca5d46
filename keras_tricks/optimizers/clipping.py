"""Gradient clipping as pure functions of a list of gradients.

Each function takes a list of gradient tensors (entries may be `None`, for
variables without a gradient, and come back `None`) and returns the clipped
list, in `keras.ops`, so it runs inside a compiled train step. Below its
threshold a gradient is returned unchanged, bit for bit.

References:
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013 (norm clipping).
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image
    Recognition Without Normalization", ICML 2021 (adaptive clipping).
"""

from keras import ops

from keras_tricks._validation import check_number, invalid_together


def tensor_norms(grads):
    """Euclidean norm of each gradient (`None` stays `None`), in float32."""
    return [None if g is None else _norm(g) for g in grads]


def global_norm(grads):
    """Euclidean norm of all gradients together: sqrt(sum_i ||g_i||^2)."""
    return combine_norms(tensor_norms(grads))


def clip_by_global_norm(grads, max_norm):
    """Rescales all gradients together so that their global norm is <= `max_norm`.

    g_i <- g_i * max_norm / ||g|| when ||g|| = sqrt(sum_i ||g_i||^2) >
    max_norm, else unchanged. The direction of the whole gradient is kept.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        max_norm: the threshold, a positive number.

    Returns:
        The list of clipped gradients.

    Example:

    >>> clipped = clip_by_global_norm([keras.ops.ones((2,)) * 3.0, None], 1.0)
    >>> round(float(keras.ops.norm(clipped[0])), 5)  # was 3 * sqrt(2)
    1.0
    """
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True)
    return scale_to_norm(grads, global_norm(grads), max_norm)


def clip_by_norm(grads, max_norm):
    """Rescales each gradient on its own so that its norm is <= `max_norm`.

    g_i <- g_i * max_norm / ||g_i|| when ||g_i|| > max_norm, else unchanged.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        max_norm: the threshold, a positive number.

    Returns:
        The list of clipped gradients.
    """
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True)
    return clip_each(grads, tensor_norms(grads), max_norm)


def clip_by_value(grads, limit):
    """Clips every gradient entry to [-limit, limit].

    Unlike norm clipping this changes the direction of the gradient.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        limit: the bound, a positive number.

    Returns:
        The list of clipped gradients.
    """
    limit = check_number("limit", limit, low=0, low_open=True)
    return [None if g is None else ops.clip(g, -limit, limit) for g in grads]


def unitwise_norm(x):
    """Norm of each output unit: over every axis but the last (Keras kernels
    are `[..., in, out]`); a 1-D weight (bias, scale) or scalar uses its whole
    norm. The result broadcasts against `x`."""
    x = ops.cast(x, "float32")
    if len(x.shape) <= 1:
        return ops.sqrt(ops.sum(ops.square(x)))
    axes = tuple(range(len(x.shape) - 1))
    return ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=True))


def adaptive_clip(grads, params, clipping=0.01, eps=1e-3):
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


def normalize(grads, norm=1.0):
    """Keeps only the direction of the gradient: g <- norm * g / ||g||.

    ||g|| is the global norm over all gradients, so the direction of the
    whole gradient vector is kept and every step has length `norm` times the
    learning rate (normalised gradient descent). A zero gradient stays zero.

    Args:
        grads: list of gradient tensors, `None` entries allowed.
        norm: the global norm of the result, positive. Defaults to `1.0`.

    Returns:
        The list of rescaled gradients.
    """
    norm = check_number("norm", norm, low=0, low_open=True)
    total = global_norm(grads)
    scale = ops.where(total > 0, norm / ops.maximum(total, _TINY), 1.0)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


_TINY = 1e-30
"""Floor of a divisor norm; any norm it replaces makes the factor unused."""


def scale_to_norm(grads, total, max_norm):
    """Clips `grads` to global norm `max_norm`, given their global norm `total`."""
    scale = ops.where(total > max_norm, max_norm / ops.maximum(total, _TINY), 1.0)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


def clip_each(grads, norms, max_norm):
    """Clips each gradient to norm `max_norm`, given its norm in `norms`."""
    return [
        None if g is None else scale_to_norm([g], n, max_norm)[0]
        for g, n in zip(grads, norms, strict=True)
    ]


def adaptive_unit(grad, param, clipping, eps):
    """AGC of one gradient; returns `(clipped, whether any unit was clipped)`."""
    max_norm = clipping * ops.maximum(unitwise_norm(param), eps)
    grad_norm = unitwise_norm(grad)
    over = grad_norm > max_norm
    scale = ops.where(over, max_norm / ops.maximum(grad_norm, _TINY), 1.0)
    return grad * ops.cast(scale, grad.dtype), ops.any(over)


def _norm(g):
    g = ops.cast(ops.convert_to_tensor(g), "float32")
    return ops.sqrt(ops.sum(ops.square(g)))


def combine_norms(norms):
    """Global norm from per-tensor norms (`None` entries skipped)."""
    squares = [ops.square(n) for n in norms if n is not None]
    if not squares:
        return ops.zeros((), "float32")
    return ops.sqrt(ops.sum(ops.stack(squares)))
