"""A missing optional dependency is an ImportError that names the extra."""

import pytest

from keras_tricks._extras import require

pytestmark = [pytest.mark.jax, pytest.mark.compat]


def test_present_module_is_returned():
    assert require("json", "lab", "x").dumps([1]) == "[1]"


def test_missing_module_names_the_extra():
    with pytest.raises(ImportError, match=r'plots needs nope.*"keras-tricks\[lab\]"'):
        require("nope.sub", "lab", "plots")
