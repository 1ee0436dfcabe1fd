"""One message style for every bad argument: "<name> == <value>, must be <condition>"."""

import numpy as np
import pytest

from thermosgd import _validate as v


@pytest.mark.parametrize("call, msg", [
    (lambda: v.check_number("wd", -1.0, min_val=0.0, include_min=False),
     r"wd == -1.0, must be > 0"),
    (lambda: v.check_number("lr", float("nan")), r"lr == nan, must be finite"),
    (lambda: v.check_number("lr", True), r"lr == True, must be a real number"),
    (lambda: v.check_number("beta", 1.0, max_val=1.0, include_max=False), r"must be < 1.0"),
    (lambda: v.check_int("steps", 2.5), r"steps == 2.5, must be an integer"),
    (lambda: v.check_int("steps", 0, min_val=1), r"steps == 0, must be >= 1"),
    (lambda: v.check_fraction("label_noise", 1.0), r"label_noise == 1.0, must be < 1.0"),
    (lambda: v.check_choice("method", "x", ("chord", "angles")), r"must be one of chord, angles"),
    (lambda: v.positive_array("elr", [0.1, 0.0]), r"elr == \[0.1, 0.0\], must be > 0"),
    (lambda: v.nonnegative_array("g", [-1.0]), r"g == \[-1.0\], must be >= 0"),
    (lambda: v.finite_array("x", "abc"), r"x == 'abc', must be a real number or array"),
])
def test_one_message_style(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_valid_values_pass_through():
    assert v.check_number("wd", 3, min_val=0.0) == 3.0
    assert v.check_int("n", np.int64(4), min_val=1) == 4
    assert v.positive_array("elr", [0.1, 0.2]).dtype == np.float64
