"""The comparison helper itself."""

import numpy as np
import pytest

from tests.reference import assert_matches_reference


def test_helper_passes_within_tolerance_and_names_the_worst_element():
    assert_matches_reference({"a": np.ones(3)}, {"a": np.ones(3) * (1 + 1e-13)}, rtol=1e-12)
    with pytest.raises(AssertionError, match=r"'a': 1 of 3 elements.*worst at \(1,\)"):
        assert_matches_reference({"a": [1.0, 2.0, 3.0]}, {"a": [1.0, 2.1, 3.0]}, rtol=1e-3)
    with pytest.raises(AssertionError, match="keys differ"):
        assert_matches_reference({"a": 1.0}, {"b": 1.0}, rtol=0)
    with pytest.raises(AssertionError, match="NaN at different places"):
        assert_matches_reference([np.nan, 1.0], [0.0, 1.0], rtol=1.0)
