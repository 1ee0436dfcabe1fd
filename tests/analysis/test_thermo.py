"""The thermodynamic checks of one protocol's grid (`thermosgd.analysis.thermo`) on synthetic
ideal gases built from the closed forms (`tests.analysis.tables`): the Maxwell relations and
the quadratic fit, the equation of state, the collapse, the potentials."""

import math

import numpy as np
import pytest

from tests.analysis.tables import DIM, ideal_gas_table
from thermosgd import analysis as A

# ---------------------------------------------------------------------------------------------
# Maxwell relations and the quadratic fit


@pytest.mark.parametrize("protocol", ["elr", "lr", "sphere"])
def test_exact_ideal_gas_satisfies_maxwell_exactly(protocol):
    # noise-free, no gradient term: S is a quadratic in (x, y) (log sigma2 is quadratic in the
    # collapse variable), so the fit is exact and every Maxwell number takes its ideal value
    r = A.analyze(ideal_gas_table(protocol))["protocols"][protocol]
    assert r["entropy_fit"]["r2"] == pytest.approx(1.0, abs=1e-12)
    m = r["maxwell"]
    assert m["max_rel_error"] < 1e-8
    for k, v in m["coefficients"].items():
        assert v == pytest.approx(m["ideal"][k], abs=1e-8), k
    if protocol != "lr":
        # the gradient term adds to the measured radius a non-quadratic function of the rate
        # alone; on a full product grid it projects onto the rate terms only, so the
        # wd (r) derivative stays exact. (For lr it is a function of lr*wd, which leaks into
        # the fitted difference by O(misfit): not exact.)
        t = ideal_gas_table(protocol, grad_ratio=0.3)
        m = A.analyze(t)["protocols"][protocol]["maxwell"]
        assert m["max_rel_error"] < 1e-8
    # the landscape-independent slope, written out: -(d-1)/2, (d-1)/2, d-1
    assert m["theory"] == {"elr": -(DIM - 1) / 2, "lr": (DIM - 1) / 2, "sphere": DIM - 1.0}[
        protocol]


def test_heat_capacity_enters_only_the_individual_slopes():
    # fixed LR, constant sigma2: S = C/2 (x + y) + (d-1)/4 (x - y) + const, so
    # dS/dlog wd = C/2 - (d-1)/4 and dS/dlog lr = C/2 + (d-1)/4, whatever C; their
    # difference is the Maxwell value (d-1)/2
    for cap in (10.0, 300.0, 5000.0):
        t = ideal_gas_table("lr", heat_capacity=cap, sigma_curve=(0.05, 0.0, 0.0))
        r = A.analyze(t)["protocols"]["lr"]
        a = r["entropy_fit"]["coefficients"]
        assert a[2] == pytest.approx(cap / 2 - (DIM - 1) / 4, rel=1e-9)
        assert a[1] == pytest.approx(cap / 2 + (DIM - 1) / 4, rel=1e-9)
        assert r["maxwell"]["coefficients"]["a1-a2"] == pytest.approx(1.0, abs=1e-10)


def test_elr_violation_by_a_known_amount():
    # S += N (delta y + eps (y - ybar)^2): dS/dy = -N + N (delta + 2 eps (y - ybar)), so
    # the relative error at y is delta + 2 eps (y - ybar), a2/N = -1 + delta - 2 eps ybar,
    # 2 a4/N = 2 eps, a5/N = 0
    delta, eps = 0.08, 0.01
    t = ideal_gas_table("elr", delta=delta, eps=eps)
    m = A.analyze(t)["protocols"]["elr"]["maxwell"]
    ly = np.log(t["wd"])
    want = np.max(np.abs(delta + 2 * eps * (ly - ly.mean())))
    assert m["max_rel_error"] == pytest.approx(want, rel=1e-9)
    assert m["coefficients"]["a2"] == pytest.approx(-1 + delta - 2 * eps * ly.mean(), rel=1e-9)
    assert m["coefficients"]["2a4"] == pytest.approx(2 * eps, rel=1e-9)
    assert m["coefficients"]["a5"] == pytest.approx(0.0, abs=1e-9)


def test_lr_violation_by_a_known_amount():
    # S += N delta log(lr): dS/dx - dS/dy = N (1 + delta) everywhere
    m = A.analyze(ideal_gas_table("lr", delta=-0.176))["protocols"]["lr"]["maxwell"]
    assert m["max_rel_error"] == pytest.approx(0.176, rel=1e-9)
    assert m["coefficients"]["a1-a2"] == pytest.approx(1 - 0.176, rel=1e-9)
    assert m["coefficients"]["2a3-a5"] == pytest.approx(0.0, abs=1e-9)
    assert m["coefficients"]["2a4-a5"] == pytest.approx(0.0, abs=1e-9)


def test_noisy_entropy_recovers_coefficients_within_their_standard_errors():
    # entropy noise of 0.05 N per run (R^2 ~ 0.999 like the paper's) on a 6x5 grid, 2 seeds:
    # the normalized coefficients must sit within 4 reported standard errors of the truth
    # (two-sided 4 sigma: 6e-5 per coefficient; seed fixed)
    t = ideal_gas_table("elr", delta=0.05, entropy_noise=0.05, seeds=2, seed=7)
    r = A.analyze(t)["protocols"]["elr"]
    assert 0.99 < r["entropy_fit"]["r2"] < 1.0
    m = r["maxwell"]
    ly = np.log(t["wd"])
    truth = {"a2": -1 + 0.05, "2a4": 0.0, "a5": 0.0}
    for k, v in truth.items():
        se = m["coefficients_stderr"][k]
        assert 0 < se < 0.05
        assert abs(m["coefficients"][k] - v) < 4 * se, (k, m["coefficients"][k], se)
    assert ly.size == 60


def test_fit_standard_errors_match_the_scatter_over_replicates():
    # the covariance s^2 (X^T X)^-1 describes the spread of the fitted coefficients over
    # independent noise draws: 300 replicate fits, the std of a2 agrees with the mean
    # reported stderr to 15% (the std of a 300-sample std is ~4%; stderr varies ~ 1/sqrt(2 dof))
    t = ideal_gas_table("elr")
    x, y = np.log(t["elr"]), np.log(t["wd"])
    rng = np.random.default_rng(3)
    est, se = [], []
    for _ in range(300):
        f = A.fit_quadratic(x, y, t["entropy"] + rng.normal(0, 2.0, x.size))
        est.append(f.coef[2])
        se.append(math.sqrt(f.cov[2, 2]))
    assert np.std(est, ddof=1) == pytest.approx(np.mean(se), rel=0.15)


def test_quadratic_fit_raw_coefficients_and_derivatives():
    # the centred solve is transformed back exactly to the raw-coordinate coefficients
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-9, -2, 40), rng.uniform(-7, -1, 40)
    a = np.array([-1.5e5, 300.0, -1535.0, 12.0, -3.0, 7.0])
    s = a[0] + a[1] * x + a[2] * y + a[3] * x * x + a[4] * y * y + a[5] * x * y
    f = A.fit_quadratic(x, y, s)
    np.testing.assert_allclose(f.coef, a, rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(f.dx(x, y), a[1] + 2 * a[3] * x + a[5] * y, rtol=1e-9)
    np.testing.assert_allclose(f.dy(x, y), a[2] + 2 * a[4] * y + a[5] * x, rtol=1e-9)
    np.testing.assert_allclose(f.predict(x, y), s, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# equation of state


@pytest.mark.parametrize("protocol", ["elr", "lr", "sphere"])
def test_equation_of_state_errors_are_the_known_ones(protocol):
    t = ideal_gas_table(protocol, eos_noise=0.03, grad_ratio=0.3, seed=5)
    r = A.analyze(t)["protocols"][protocol]["equation_of_state"]
    key = "pressure" if protocol == "sphere" else "radius"
    assert r["quantity"] == key
    noise = t[key] / t[f"{key}_discrete"] - 1  # what the generator multiplied in
    assert r["max_rel_error_discrete"] == pytest.approx(np.abs(noise).max(), rel=1e-12)
    assert r["fraction_within_discrete"] == pytest.approx(np.mean(np.abs(noise) <= 0.05))
    # SDE error: (1 + noise) sqrt(1 + g/tr) - 1 (elr, radius), the 4th root for lr, and
    # (1 + noise)(1 + g/tr) - 1 for the sphere pressure
    ratio = 1 + t["grad_norm2"] / t["trace_sigma"]
    power = {"elr": 0.5, "lr": 0.25, "sphere": 1.0}[protocol]
    sde = (1 + noise) * ratio**power - 1
    assert r["max_rel_error_sde"] == pytest.approx(np.abs(sde).max(), rel=1e-9)
    assert r["max_rel_error_sde"] > r["max_rel_error_discrete"]
    worst = r["points"][int(np.argmax(np.abs(noise)))]
    assert r["worst_run_discrete"] == worst["run"]
    assert worst["rel_error_discrete"] == pytest.approx(noise[np.argmax(np.abs(noise))])


# ---------------------------------------------------------------------------------------------
# collapse


def test_collapse_onto_elr_and_a_known_failure():
    t = ideal_gas_table("elr")
    coll = A.analyze(t)["protocols"]["elr"]["collapse"]
    assert coll["variable"] == "elr"
    for q in ("sigma2", "energy", "temperature", "entropy_dir"):
        assert coll["quantities"][q]["ratio"] < 1e-9, q
    # sigma2 that also depends on wd: log sigma2 += beta log wd. On the shared elr grid the
    # curves are exact, the across-wd std at every elr is beta * std(log wd levels), and the
    # spread is the std of log sigma2 over all runs
    beta = 0.2
    t["sigma2"] = t["sigma2"] * t["wd"] ** beta
    r = A.collapse_ratio(t["elr"], t["sigma2"], t["wd"])
    levels = np.log(np.unique(t["wd"]))
    want = beta * np.std(levels, ddof=1) / np.std(np.log(t["sigma2"]), ddof=1)
    assert r["ratio"] == pytest.approx(want, rel=1e-9)
    assert r["n_compared"] == 6 and r["n_groups"] == 5 and r["scale"] == "log"


def test_collapse_onto_lr_times_wd_on_unaligned_grids():
    # lr on a 1/6-decade grid, wd on a 1/4-decade grid: the products of different wd curves
    # do not coincide, so the curves are compared by interpolation
    rates, wds = np.geomspace(0.01, 1.0, 13), np.geomspace(1e-3, 1e-1, 9)
    t = ideal_gas_table("lr", rates=rates, second=wds, sigma_curve=(0.05, -0.5, 0.0))
    coll = A.analyze(t)["protocols"]["lr"]["collapse"]
    assert coll["variable"] == "lr*wd"
    # log sigma2 linear in log(lr wd): linear interpolation is exact
    assert coll["quantities"]["sigma2"]["ratio"] < 1e-9
    # curved: interpolation error only, ~ b2 h^2 / 8 with h = 1/6 decade, << the spread
    t = ideal_gas_table("lr", rates=rates, second=wds, sigma_curve=(0.05, -0.5, 0.1))
    assert A.analyze(t)["protocols"]["lr"]["collapse"]["quantities"]["sigma2"]["ratio"] < 0.01
    # a quantity of lr alone does not collapse onto lr*wd
    r = A.collapse_ratio(t["lr"] * t["wd"], t["lr"], t["wd"])
    assert r["ratio"] > 0.3


def test_collapse_of_a_constant_and_too_few_curves():
    r = A.collapse_ratio([1e-3, 2e-3, 1e-3, 2e-3], [0.5] * 4, [0.1, 0.1, 0.2, 0.2])
    assert r["ratio"] == 0.0 and "constant" in r["note"]
    r = A.collapse_ratio([1e-3, 2e-3, 3e-3], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1])
    assert r["ratio"] is None and "two curves" in r["why"]


# ---------------------------------------------------------------------------------------------
# potentials


@pytest.mark.parametrize("protocol", ["elr", "lr", "sphere"])
def test_potential_is_minimized_at_the_target(protocol):
    # ideal gas, SDE radius (no gradient term): G(T, V; T*, p*) = C T - T* C log T
    # - T* (d-1)/2 log V + p* V + const is minimized at T = T*, V = (d-1) T*/(2 p*), i.e.
    # at the target state itself (F = C T - T* C log T on the sphere, at T*)
    t = ideal_gas_table(protocol)
    pot = A.analyze(t)["protocols"][protocol]["potential"]
    assert len(pot["targets"]) >= 4
    for p in pot["targets"]:
        assert p["argmin_run"] == p["target_run"] and p["distance_cells"] == 0
    assert pot["max_distance_cells"] == 0


def test_potential_targets_and_explicit_targets():
    cells = A.grid_cells(np.repeat(np.geomspace(1, 10, 17), 17),
                         np.tile(np.geomspace(1, 10, 17), 17))
    picked = [tuple(cells[k]) for k in A.potential_targets(cells)]
    assert picked == [(i, j) for i in (2, 8, 14) for j in (2, 8, 14)]  # the paper's targets
    t = ideal_gas_table("elr")
    r = A.analyze(t, targets={"elr": [0, 7]})["protocols"]["elr"]["potential"]
    assert [p["target_run"] for p in r["targets"]] == ["elr/run000", "elr/run007"]
    with pytest.raises(ValueError, match="not stationary"):
        t["stationary"][7] = False
        A.analyze(t, targets={"elr": [0, 7]})


def test_potential_argmin_sphere_stays_in_the_targets_column():
    U = np.array([1.0, 0.0, 5.0, -9.0])
    S = np.zeros(4)
    cells = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    r = A.potential_argmin(U, S, np.ones(4), np.ones(4), np.ones(4), cells, 0,
                           fixed_volume=True)
    assert r["argmin"] == 1 and r["distance"] == 1
    r = A.potential_argmin(U, S, np.ones(4), np.ones(4), np.ones(4), cells, 0)
    assert r["argmin"] == 3 and r["argmin_cell"] == [1, 1]


def test_potential_values_match_a_plain_loop():
    # G_k = U_k - T* S_k + p* V_k written out state by state in Python floats (no theory call):
    # equal to the bit, since both evaluate (U - T S) + p V in float64
    rng = np.random.default_rng(4)
    U, S = rng.normal(size=12), rng.normal(size=12)
    V, T, P = rng.uniform(0.5, 2, 12), rng.uniform(0.1, 1, 12), rng.uniform(0.01, 1, 12)
    U[3], S[7], V[9] = np.nan, np.inf, np.nan  # not candidates: +inf
    for t in (0, 5, 11):
        want = [float(U[k]) - float(T[t]) * float(S[k]) + float(P[t]) * float(V[k])
                for k in range(12)]
        want = [w if k not in (3, 7, 9) else math.inf for k, w in enumerate(want)]
        got = A.potential_values(U, S, V, T, P, t)
        assert got.tolist() == want
        f = A.potential_values(U, S, V, T, P, t, fixed_volume=True)
        want_f = [float(U[k]) - float(T[t]) * float(S[k]) if k not in (3, 7) else math.inf
                  for k in range(12)]  # V does not enter F: state 9 is a candidate
        assert f.tolist() == want_f
    mask = np.ones(12, bool)
    mask[0] = False
    assert A.potential_values(U, S, V, T, P, 5, mask=mask)[0] == math.inf
    # an undefined target (T* or p* not a number > 0): NaN for every candidate, and the
    # argmin falls on the first candidate, as np.argmin does with NaN
    T2 = T.copy()
    T2[5] = np.nan
    v = A.potential_values(U, S, V, T2, P, 5)
    assert np.isnan(v[[0, 1, 2, 4]]).all() and np.isinf(v[[3, 7, 9]]).all()
    cells = np.stack([np.arange(12) % 4, np.arange(12) // 4], axis=1)
    assert A.potential_argmin(U, S, V, T2, P, cells, 5)["argmin"] == 0


@pytest.mark.parametrize("protocol", ["elr", "lr", "sphere"])
def test_potential_map_is_zero_at_the_argmin(protocol):
    # the map drawn by the figure: G - min G (>= 0, zero at the argmin), or F - min F within
    # each radius (zero once per radius, at the target's column's argmin)
    rng = np.random.default_rng(1)
    n1, n2 = 5, 4
    cells = np.stack(np.unravel_index(np.arange(n1 * n2), (n1, n2)), axis=1)
    U, S = rng.normal(size=n1 * n2), rng.normal(size=n1 * n2)
    V, T, P = (rng.uniform(0.5, 2, n1 * n2) for _ in range(3))
    sphere = protocol == "sphere"
    for t in range(n1 * n2):
        m = A.potential_map(U, S, V, T, P, cells, t, fixed_volume=sphere)
        r = A.potential_argmin(U, S, V, T, P, cells, t, fixed_volume=sphere)
        assert np.all(m >= 0)
        if sphere:
            col = np.flatnonzero(cells[:, 1] == cells[t, 1])
            assert int(col[np.argmin(m[col])]) == r["argmin"]
            assert np.count_nonzero(m == 0) == n2
        else:
            assert int(np.argmin(m)) == r["argmin"] and m[r["argmin"]] == 0
