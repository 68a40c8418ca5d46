"""SplitMix64 hashing shared by the streaming split and the leakage check.

Pure Python and NumPy (no TensorFlow): `describe_split` hashes rows with
these constants, and `split_dataset` runs the same finaliser on TensorFlow
tensors.

Reference:
    Steele, Lea & Flood, "Fast Splittable Pseudorandom Number Generators",
    OOPSLA 2014 (SplitMix64).
"""

import numpy as np
from numpy.typing import ArrayLike

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1


def splitmix64(z: int) -> int:
    """SplitMix64's finaliser on a Python int (taken modulo 2**64)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def hash_uniform_numpy(keys: ArrayLike, seed: int = 0) -> np.ndarray:
    """Maps integer keys to uniform floats in [0, 1), as `split_dataset` does.

    u = (splitmix64(key * GOLDEN + splitmix64(seed)) >> 11) / 2**53.
    """
    z = np.asarray(keys).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = z * np.uint64(GOLDEN) + np.uint64(splitmix64(seed))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
