"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: intra-op threads only add barrier waits, which cost ~20 ms per op when
    the 2 shared cores are busy. Restored afterwards, so other test files are unaffected."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
