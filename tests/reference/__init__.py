"""Brute-force references: plain numpy / torch loops that fast paths are compared against.

Every fast path (numba kernels, batched torch steps, the blocked noise estimator) has a
reference here written the slow, obvious way, and is compared with it by one helper,
`assert_matches_reference`, with explicit tolerances (BackPACK's pattern: the fast result and
the autograd/dense result of the same problem, compared by one function).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["assert_matches_reference"]


def _as_numpy(x):
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_matches_reference(fast, reference, *, rtol: float, atol: float = 0.0,
                             what: str = "") -> None:
    """Assert that ``fast`` equals ``reference`` elementwise within |f - r| <= atol + rtol |r|.

    Both may be arrays, torch tensors, scalars or mappings of those (compared key by key; the
    keys must agree). The failure message names the key, the worst element and both values.
    Tolerances are the caller's, justified where the call is (round-off order, statistics).
    """
    if isinstance(reference, Mapping):
        assert isinstance(fast, Mapping), f"{what}: expected a mapping, got {type(fast)}"
        assert set(fast) == set(reference), (
            f"{what}: keys differ: only fast {sorted(set(fast) - set(reference))}, "
            f"only reference {sorted(set(reference) - set(fast))}")
        for k in reference:
            assert_matches_reference(fast[k], reference[k], rtol=rtol, atol=atol,
                                     what=f"{what}[{k!r}]" if what else repr(k))
        return
    f, r = _as_numpy(fast), _as_numpy(reference)
    assert f.shape == r.shape, f"{what}: shape {f.shape} != reference {r.shape}"
    nan_f, nan_r = np.isnan(f), np.isnan(r)
    assert np.array_equal(nan_f, nan_r), f"{what}: NaN at different places"
    err = np.where(nan_r, 0.0, np.abs(f - r))
    bound = atol + rtol * np.abs(np.where(nan_r, 0.0, r))
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ beyond "
            f"atol={atol:g} + rtol={rtol:g}|ref|; worst at {tuple(int(j) for j in i)}: "
            f"fast {f[i]!r} vs reference {r[i]!r}")
