import numpy as np
import pandas as pd

from keras_tricks.data.leakage import row_hashes


def test_row_hashes_equal_rows_equal_hashes(rng):
    x = rng.normal(size=(50, 3)).astype("float32")
    x[10] = x[20]
    h = row_hashes(x)
    assert h[10] == h[20]
    assert np.unique(h).size == 49
    # A dict row hashes all its values; a DataFrame row its cells.
    both = row_hashes({"a": x, "b": np.arange(50) % 25})
    assert both[10] != both[20] and np.unique(both).size == 50
    frame = pd.DataFrame(x)
    assert row_hashes(frame)[10] == row_hashes(frame)[20]
