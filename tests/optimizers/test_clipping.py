"""Properties of the pure clipping functions against NumPy."""

import keras
import numpy as np
import pytest

from keras_tricks.optimizers import (
    adaptive_clip,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    normalize,
    unitwise_norm,
)


def _grads(rng, scale):
    return [
        keras.ops.convert_to_tensor(scale * rng.standard_normal(s).astype("float32"))
        for s in [(5, 3), (3,), (2, 2, 4)]
    ] + [None]


def _np(grads):
    return [None if g is None else keras.ops.convert_to_numpy(g) for g in grads]


def _norm(arrays):
    return float(
        np.sqrt(sum(np.sum(a.astype("float64") ** 2) for a in arrays if a is not None))
    )


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_by_global_norm(rng, scale):
    grads = _grads(rng, scale)
    before = _np(grads)
    out = _np(clip_by_global_norm(grads, 1.0))
    assert out[-1] is None
    total = _norm(before)
    if total <= 1.0:
        for a, b in zip(out[:-1], before[:-1], strict=True):
            np.testing.assert_array_equal(a, b)  # bit for bit
    else:
        assert _norm(out) == pytest.approx(1.0, rel=1e-5)
        for a, b in zip(out[:-1], before[:-1], strict=True):
            np.testing.assert_allclose(a, b / total, rtol=1e-5)
    twice = _np(clip_by_global_norm(clip_by_global_norm(grads, 1.0), 1.0))
    for a, b in zip(twice[:-1], out[:-1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert float(global_norm(grads)) == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_by_norm_per_tensor(rng, scale):
    grads = _grads(rng, scale)
    before = _np(grads)
    out = _np(clip_by_norm(grads, 1.0))
    for a, b in zip(out[:-1], before[:-1], strict=True):
        n = np.linalg.norm(b)
        if n <= 1.0:
            np.testing.assert_array_equal(a, b)
        else:
            assert np.linalg.norm(a) == pytest.approx(1.0, rel=1e-5)
            np.testing.assert_allclose(a, b / n, rtol=1e-5)
    twice = _np(clip_by_norm(clip_by_norm(grads, 1.0), 1.0))
    for a, b in zip(twice[:-1], out[:-1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_clip_by_value(rng):
    grads = _grads(rng, 1.0)
    before = _np(grads)
    out = _np(clip_by_value(grads, 0.5))
    for a, b in zip(out[:-1], before[:-1], strict=True):
        np.testing.assert_array_equal(a, np.clip(b, -0.5, 0.5))
    twice = _np(clip_by_value(clip_by_value(grads, 0.5), 0.5))
    for a, b in zip(twice[:-1], out[:-1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_unitwise_norm_reduces_all_but_last_axis(rng):
    kernel = rng.standard_normal((3, 3, 4, 5)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(unitwise_norm(kernel)).ravel(),
        np.sqrt((kernel**2).sum(axis=(0, 1, 2))),
        rtol=1e-5,
    )
    bias = rng.standard_normal(5).astype("float32")
    assert float(unitwise_norm(bias)) == pytest.approx(np.linalg.norm(bias), rel=1e-5)


def test_adaptive_clip(rng):
    params = [rng.standard_normal((6, 4)).astype("float32"), np.zeros(4, "float32")]
    grads = [rng.standard_normal((6, 4)).astype("float32"), np.full(4, 1e-6, "float32")]
    out = _np(adaptive_clip([*grads, None], [*params, None], clipping=0.1, eps=1e-3))
    w_norm = np.maximum(np.linalg.norm(params[0], axis=0), 1e-3)
    g_norm = np.linalg.norm(grads[0], axis=0)
    expected = grads[0] * np.where(g_norm > 0.1 * w_norm, 0.1 * w_norm / g_norm, 1.0)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)
    assert np.all(np.linalg.norm(out[0], axis=0) <= 0.1 * w_norm * (1 + 1e-5))
    np.testing.assert_array_equal(out[1], grads[1])  # below eps * clipping
    assert out[2] is None
    twice = _np(adaptive_clip(out[:2], params, clipping=0.1))
    np.testing.assert_allclose(twice[0], out[0], rtol=1e-6)


def test_normalize(rng):
    grads = _grads(rng, 3.0)
    before = _np(grads)
    out = _np(normalize(grads))
    assert _norm(out) == pytest.approx(1.0, rel=1e-5)
    for a, b in zip(out[:-1], before[:-1], strict=True):
        np.testing.assert_allclose(a, b / _norm(before), rtol=1e-5)
    zero = _np(normalize([np.zeros(3, "float32")]))
    np.testing.assert_array_equal(zero[0], 0.0)


@pytest.mark.parametrize(
    ("fn", "args", "message"),
    [
        (clip_by_global_norm, (0.0,), "max_norm=0.0"),
        (clip_by_norm, (-1.0,), "max_norm=-1.0"),
        (clip_by_value, (0,), "limit=0"),
        (normalize, (0.0,), "norm=0.0"),
    ],
)
def test_bad_thresholds(fn, args, message):
    with pytest.raises(ValueError, match=message):
        fn([np.ones(2, "float32")], *args)


def test_adaptive_clip_errors():
    with pytest.raises(ValueError, match="clipping=0"):
        adaptive_clip([np.ones(2, "float32")], [np.ones(2, "float32")], clipping=0)
    with pytest.raises(ValueError, match="same length"):
        adaptive_clip([np.ones(2, "float32")], [])
