"""Summaries of isotropic studies (thermosgd.analysis.isotropic): slopes and potential minima
on planted tables with known answers, and on simulated grids against the Maxwell relations."""

import numpy as np
import pytest

from thermosgd.analysis.isotropic import (
    maxwell_summary,
    potential_argmin,
    potential_map,
    potential_maps,
    summarize,
)
from thermosgd.sim import isotropic as iso


def _run(protocol, grid, **kw):
    c = iso.IsotropicConfig(protocol, **grid, **kw)
    return c, iso.stationary_table(iso.simulate(c, progress=False))


def _planted_table(c: iso.IsotropicConfig, seed: int = 0) -> dict:
    """Random positive states on the grid of ``c`` (T and p as the grid sets them), one
    diverged cell (NaN energy and entropy)."""
    rng = np.random.default_rng(seed)
    n1, n2 = c.grid_shape
    n = n1 * n2
    g = {k: v.ravel() for k, v in iso.grid_values(c).items()}
    t = {"energy": rng.uniform(0.1, 1.0, n), "entropy": rng.uniform(-3.0, 1.0, n),
         "volume": rng.uniform(0.1, 2.0, n), "temperature": rng.uniform(0.01, 0.1, n),
         "pressure": g["radius"] if c.protocol == "sphere" else g["wd"]}
    t["energy"][1] = t["entropy"][1] = np.nan
    return t


@pytest.mark.parametrize("protocol,grid", [
    ("lr", {"lr": (0.01, 0.02, 0.05, 0.1), "wd": (0.01, 0.03, 0.1)}),
    ("sphere", {"elr": (0.01, 0.02, 0.05, 0.1), "radius": (0.5, 1.0, 2.0)}),
])
def test_potential_argmin_is_the_zero_of_the_drawn_map(protocol, grid):
    """On random states the argmin of every target is the brute-force minimum of
    U - T* S + p* V (lr; all cells) or U - T* S (sphere; the target's column), written as a
    plain loop here, and it is where the map the figure draws (`potential_maps`) is 0."""
    c = iso.IsotropicConfig(protocol, **grid, steps=10_000, queue_size=10)
    t = _planted_table(c)
    n1, n2 = c.grid_shape
    pots = potential_argmin(t, c)
    maps = potential_maps(t, c)
    assert [p["target"] for p in pots] == [m["target"] for m in maps]
    assert len(pots) == len(set(map(tuple, (p["target"] for p in pots)))) > 1
    for p, m in zip(pots, maps, strict=True):
        i, j = p["target"]
        k0 = i * n2 + j
        best, best_cell = np.inf, None
        for a in range(n1):
            for b in range(n2):
                if protocol == "sphere" and b != j:
                    continue
                k = a * n2 + b
                if not np.isfinite(t["energy"][k]):
                    continue
                pot = t["energy"][k] - t["temperature"][k0] * t["entropy"][k]
                if protocol != "sphere":
                    pot += t["pressure"][k0] * t["volume"][k]
                if pot < best:
                    best, best_cell = pot, [a, b]
        assert p["argmin"] == best_cell == m["argmin"]
        assert p["distance"] == max(abs(best_cell[0] - i), abs(best_cell[1] - j))
        zero = np.argwhere(m["map"] == 0)
        cells = zero.tolist() if protocol != "sphere" else [z for z in zero.tolist()
                                                            if z[1] == j]
        assert cells == [best_cell]
        assert np.isnan(m["map"].ravel()[1]) and np.nanmin(m["map"]) == 0
        np.testing.assert_array_equal(m["map"], potential_map(t, c, (i, j)))


def test_maxwell_summary_recovers_planted_slopes():
    """S = A log(elr) + B log(wd) exactly on an elr grid (one non-stationary point left out):
    the weighted fits return A along elr and B along wd in every row, up to round-off."""
    c = iso.IsotropicConfig("elr", elr=(0.01, 0.02, 0.05, 0.1), wd=(0.01, 0.03, 0.1, 0.3),
                            steps=10_000, queue_size=10)
    g = {k: v.ravel() for k, v in iso.grid_values(c).items()}
    A, B = 1.7, -0.8
    n = g["wd"].size
    t = {"entropy": A * np.log(g["elr"]) + B * np.log(g["wd"]), "entropy_se": np.full(n, 0.01),
         "stationary": np.ones(n, bool), "elr": g["elr"], "wd": g["wd"]}
    t["stationary"][5] = False
    t["entropy"][5] = 99.0  # ignored: not stationary
    m = maxwell_summary(t, c)
    assert m["dS/dlog(wd)"]["measured"] == pytest.approx(B, abs=1e-10)
    assert m["dS/dlog(elr)"]["measured"] == pytest.approx(A, abs=1e-10)
    assert m["dS/dlog(wd)"]["rows"] == 4 and m["dS/dlog(wd)"]["std_over_rows"] < 1e-10
    assert m["dS/dlog(wd)"]["normalized"] == pytest.approx(B / 1.0, abs=1e-10)  # (d-1)/2 = 1


def test_entropy_and_maxwell_slopes_elr_and_lr():
    # 4x4 grids, 3e5 steps: entropy error bars ~0.03 nats per point give slope errors ~0.03
    c, t = _run("elr", {"elr": tuple(np.geomspace(0.02, 0.1, 4)),
                        "wd": tuple(np.geomspace(0.01, 0.1, 4))}, steps=300_000, queue_size=1000)
    m = maxwell_summary(t, c)["dS/dlog(wd)"]
    assert abs(m["normalized"] + 1) < 0.06
    # S_dir against exact vMF (+ the leading finite-step shift): within 4 reported error bars
    # plus 0.03 nats for the k-NN estimator's own bias at N = 1000, d = 3 (docs/entropy.md)
    dev = np.abs(t["entropy_dir"] - t["entropy_dir_discrete"])
    assert np.all(dev < 4 * t["entropy_dir_se"] + 0.03), dev / t["entropy_dir_se"]
    c, t = _run("lr", {"lr": tuple(np.geomspace(0.02, 0.1, 4)),
                       "wd": tuple(np.geomspace(0.02, 0.1, 4))}, steps=300_000, queue_size=1000)
    m = maxwell_summary(t, c)["dS/dlog(lr) - dS/dlog(wd)"]
    assert abs(m["normalized"] - 1) < 0.08
    pot = potential_argmin(t, c)
    assert max(p["distance"] for p in pot) <= 1


def test_summary_names_why_a_point_is_not_stationary():
    # eta-tilde = 1e-3 from r0 = 1 towards r* = 0.1: relaxation needs ~3e6 steps
    c, t = _run("elr", {"elr": (1e-3, 0.05), "wd": (0.1,)}, steps=100_000, queue_size=100)
    s = summarize(t, c)
    assert s["stationary_points"] == 1 and s["grid_points"] == 2
    assert s["non_stationary"] == [{"elr": 1e-3, "wd": 0.1, "why": "radius not relaxed"}]


def test_summary_without_enough_points_for_a_slope():
    c, t = _run("elr", {"elr": (0.05, 0.1), "wd": (0.01, 0.1)}, steps=20_000, queue_size=100)
    m = summarize(t, c)["maxwell"]["dS/dlog(wd)"]
    assert m["measured"] is None and m["normalized"] is None and m["rows"] == 0
