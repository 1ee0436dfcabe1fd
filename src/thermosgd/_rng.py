"""Counter-free, per-chain normal random numbers for numba kernels.

Each chain owns a xoshiro256** state (four uint64 words, seeded from `numpy.random.SeedSequence`),
so a simulation is reproducible whatever the number of threads. Normals come from the
Marsaglia-Tsang (2000) ziggurat with 128 layers, using the low 7 bits of a 64-bit draw for the
layer and the high 32 bits for the value (so layer and value are independent bits).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import int64, uint64

__all__ = ["chain_states", "next_u64", "normal", "standard_normals", "uniform",
           "ziggurat_tables"]

_R = 3.442619855899  # right-most ziggurat layer boundary


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (kn, wn, fn) tables of the 128-layer normal ziggurat (Marsaglia & Tsang 2000)."""
    dn = tn = _R
    vn = 9.91256303526217e-3
    m1 = 2147483648.0
    kn = np.zeros(128, np.int64)
    wn = np.zeros(128)
    fn = np.zeros(128)
    q = vn / np.exp(-0.5 * dn * dn)
    kn[0] = int((dn / q) * m1)
    wn[0] = q / m1
    wn[127] = dn / m1
    fn[0] = 1.0
    fn[127] = np.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = np.sqrt(-2.0 * np.log(vn / dn + np.exp(-0.5 * dn * dn)))
        kn[i + 1] = int((dn / tn) * m1)
        tn = dn
        fn[i] = np.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


def chain_states(n_chains: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """Independent xoshiro256** states, shape (n_chains, 4) uint64, from one seed."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    states = ss.generate_state(4 * n_chains, np.uint64).reshape(n_chains, 4)
    states[np.all(states == 0, axis=1), 0] = 1  # the all-zero state is a fixed point
    return states


@nb.njit(inline="always", cache=True)
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@nb.njit(inline="always", cache=True)
def next_u64(s):
    """One xoshiro256** output; advances the state array `s` (4 uint64) in place."""
    result = _rotl(s[1] * uint64(5), 7) * uint64(9)
    t = s[1] << uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@nb.njit(inline="always", cache=True)
def uniform(s):
    """Uniform on the open interval (0, 1) with 53 random bits."""
    return (next_u64(s) >> uint64(11)) * (1.0 / 9007199254740992.0) + 0.5 / 9007199254740992.0


@nb.njit(inline="always", cache=True)
def normal(s, kn, wn, fn):
    """One standard normal variate (ziggurat; exact tail by Marsaglia's method)."""
    while True:
        u = next_u64(s)
        iz = int64(u & uint64(127))
        hz = int64(np.int32(np.uint32(u >> uint64(32))))
        x = hz * wn[iz]
        if abs(hz) < kn[iz]:
            return x
        if iz == 0:
            while True:
                a = -np.log(uniform(s)) / _R
                b = -np.log(uniform(s))
                if b + b >= a * a:
                    break
            return _R + a if hz > 0 else -_R - a
        if fn[iz] + uniform(s) * (fn[iz - 1] - fn[iz]) < np.exp(-0.5 * x * x):
            return x


@nb.njit(parallel=True, cache=True)
def _fill_normals(states, out, kn, wn, fn):
    n_chains, n = out.shape
    for b in nb.prange(n_chains):
        s = states[b]
        for i in range(n):
            out[b, i] = normal(s, kn, wn, fn)


def standard_normals(states: np.ndarray, n: int) -> np.ndarray:
    """(n_chains, n) standard normals, chain b drawn from `states[b]` (advanced in place)."""
    out = np.empty((states.shape[0], n))
    _fill_normals(states, out, *ziggurat_tables())
    return out
