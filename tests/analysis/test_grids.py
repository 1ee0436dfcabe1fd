"""The analysis of whole tables (`thermosgd.analysis.grids`): several protocols, acceptance
checks against given thresholds, model variants that break scale invariance (issue 6),
momentum and AdamW groups."""

import numpy as np
import pytest

from tests.analysis.tables import (
    DIM,
    HALF,
    VARIANTS,
    _merge,
    _variant_table,
    ideal_gas_table,
    optimizer_gas_table,
)
from thermosgd import analysis as A
from thermosgd.analysis.grids import MIN_STATIONARY_FRACTION, potential_cells_needed
from thermosgd.io import write_csv
from thermosgd.workflows.analyze import ACCEPTANCE

# ---------------------------------------------------------------------------------------------
# several protocols, acceptance


def test_all_protocols_in_one_table_and_acceptance():
    t = _merge(ideal_gas_table("elr", delta=0.05), ideal_gas_table("lr", delta=0.2),
               ideal_gas_table("sphere"))
    r = A.analyze(t, thresholds=ACCEPTANCE)
    assert list(r["protocols"]) == ["elr", "lr", "sphere"]
    assert r["n_runs"] == 30 + 35 + 24
    checks = {(c["protocol"], c["check"].split(" ")[0]): c for c in r["acceptance"]["checks"]}
    assert checks[("elr", "Maxwell")]["passed"] is True  # 5% <= 10%
    assert checks[("lr", "Maxwell")]["passed"] is False  # 20% > 15%
    assert r["acceptance"]["all_passed"] is False
    assert "sigma2" in {c["check"].split(" ")[0] for c in r["acceptance"]["checks"]}


def test_too_few_stationary_runs_leave_out_the_fit_with_the_reason():
    t = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-2, 1e-1))
    r = A.analyze(t)["protocols"]["elr"]
    (why,) = [u["reason"] for u in r["unavailable"] if u["section"].startswith("Maxwell")]
    assert "have 6" in why and "2 distinct value(s) of log wd" in why and "add grid" in why
    assert "maxwell" not in r and r["equation_of_state"]["max_rel_error_discrete"] < 1e-12
    t = ideal_gas_table("elr")
    t["stationary"][5:] = False
    r = A.analyze(_merge(t, ideal_gas_table("lr")), thresholds=ACCEPTANCE)
    e = r["protocols"]["elr"]
    assert "needs >= 6 stationary runs on a 2-D grid (>= 3 values per axis), have 5" in (
        e["unavailable"][0]["reason"])
    assert e["stationary_runs"] == 5 and e["dim"] == DIM and "collapse" in e
    assert r["protocols"]["lr"]["maxwell"]["max_rel_error"] < 1e-8
    assert len(e["excluded"]) == 25 and len(e["runs_table"]) == 30
    assert r["acceptance"]["all_passed"] is False
    (m,) = [c for c in r["acceptance"]["checks"]
            if c["protocol"] == "elr" and c["check"].startswith("Maxwell")]
    # 5 of 30 runs stationary: the runs did not equilibrate (below MIN_STATIONARY_FRACTION),
    # a failed reproduction rather than a sweep too small to assess
    assert m["passed"] is False and m["assessed"] is True
    assert m["note"].startswith("only 5 of 30 runs stationary") and "Maxwell relation" in (
        m["note"])
    assert "elr Maxwell max relative error" in r["acceptance"]["failed"]


@pytest.mark.parametrize("n_stationary", [0, 1, 2])
def test_a_2x2_sweep_is_analyzed_as_far_as_it_goes(n_stationary):
    """A 4-run sweep (2x2 grid) with 0, 1 or 2 stationary runs: the dimension, the counts,
    every run's state and (with a stationary run) the equation of state are there; what
    needs more runs is listed with the reason."""
    t = ideal_gas_table("elr", rates=(1e-3, 1e-2), second=(1e-2, 1e-1), eos_noise=0.02)
    t["stationary"][n_stationary:] = False
    r = A.analyze(t, thresholds=ACCEPTANCE)["protocols"]["elr"]
    assert (r["dim"], r["runs"], r["stationary_runs"]) == (DIM, 4, n_stationary)
    assert [x["stationary"] for x in r["runs_table"]] == [k < n_stationary for k in range(4)]
    np.testing.assert_array_equal([x["radius"] for x in r["runs_table"]], t["radius"])
    sections = [u["section"] for u in r["unavailable"]]
    assert sections == (["equation of state"] if n_stationary == 0 else []) + [
        "Maxwell relation (quadratic entropy fit)", "collapse", "potential minimization"]
    assert f"have {n_stationary}" in r["unavailable"][-1]["reason"]
    if n_stationary:
        # independent: |measured / discretization-corrected prediction - 1| of the used rows
        want = np.abs(t["radius"][:n_stationary] / t["radius_discrete"][:n_stationary] - 1)
        assert r["equation_of_state"]["max_rel_error_discrete"] == pytest.approx(
            want.max(), rel=1e-12)
    else:
        assert "equation_of_state" not in r


def test_one_run():
    t = ideal_gas_table("lr", rates=(0.1,), second=(0.01,))
    r = A.analyze(t)["protocols"]["lr"]
    assert (r["runs"], r["stationary_runs"]) == (1, 1) and len(r["runs_table"]) == 1
    assert r["equation_of_state"]["max_rel_error_discrete"] < 1e-12  # exact ideal gas
    assert "have 1" in r["unavailable"][0]["reason"]


def test_six_runs_interpolate_and_do_not_pass():
    t = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-3, 1e-2, 1e-1),
                        entropy_noise=0.05)
    t["stationary"][[1, 5, 7]] = False
    r = A.analyze(t, thresholds=ACCEPTANCE)
    fit = r["protocols"]["elr"]["entropy_fit"]
    assert fit["dof"] == 0 and fit["r2"] == pytest.approx(1.0) and "interpolates" in fit["warning"]
    check = r["acceptance"]["checks"][0]
    assert check["check"] == "Maxwell max relative error" and check["passed"] is None
    assert "not assessed at this size" in check["note"] and "have 6" in check["note"]


def test_acceptance_and_checks_only_with_thresholds():
    # the thresholds are the workflow's: without them no pass/fail verdicts, with looser or
    # stricter ones the verdicts follow them (Maxwell error of the lr gas: 20%)
    lr = ideal_gas_table("lr", delta=0.2)
    n = len(lr["run"])
    lr |= {"optimizer": np.full(n, "sgd", dtype=object), "momentum": np.full(n, np.nan),
           "beta2": np.full(n, np.nan)}
    t = _merge(optimizer_gas_table("momentum"), lr)
    r = A.analyze(t)
    assert "acceptance" not in r and "checks" not in r["optimizers"][0]
    loose = {**ACCEPTANCE, "maxwell_max_rel_error": {"elr": 0.5, "lr": 0.5}}
    checks = A.analyze(t, thresholds=loose)["acceptance"]["checks"]
    assert [c["passed"] for c in checks if c["check"].startswith("Maxwell")] == [True]
    strict = A.analyze(t, thresholds=ACCEPTANCE)
    assert [c["passed"] for c in strict["acceptance"]["checks"]
            if c["check"].startswith("Maxwell")] == [False]
    assert [c["threshold"] for c in strict["optimizers"][1]["checks"]] == ["<= 0.15", ">= 0.9"]
    with pytest.raises(ValueError, match=r"tolerance == -0\.1, must be >= 0\.0"):
        A.analyze(t, tolerance=-0.1)


def test_optimizer_groups_rows_and_order():
    t = _merge(optimizer_gas_table("adamw"), optimizer_gas_table("momentum", beta=0.5),
               optimizer_gas_table("sgd"), optimizer_gas_table("momentum"))
    groups = A.optimizer_groups(A.as_columns(t))
    assert [g["label"] for g in groups] == ["sgd", "momentum 0.5", "momentum 0.9",
                                           "adamw 0.9/0.999"]
    assert [g["rows"][0] for g in groups] == [40, 20, 60, 0] and all(
        g["rows"].size == 20 for g in groups)


# ---------------------------------------------------------------------------------------------
# non-scale-invariant variants (issue 6)


def test_non_si_errors_per_variant_are_the_known_ones():
    r = A.analyze_non_si(_variant_table(VARIANTS))
    assert r["distance"] == "si_radial_gradient"
    by = {e["variant"]: e for e in r["variants"]}
    assert list(by) == [v[0] for v in VARIANTS]
    for name, dist, eos_err, delta, dim in VARIANTS:
        e = by[name]
        assert (e["runs"], e["stationary_runs"], e["dim"]) == (9, 9, dim)
        assert e["si_radial_gradient_median"] == pytest.approx(dist)
        assert e["si_loss_change_median"] == pytest.approx(10 * dist)
        assert e["eos_max_rel_error_discrete"] == pytest.approx(abs(eos_err), rel=1e-9)
        assert e["eos_median_rel_error_discrete"] == pytest.approx(abs(eos_err), rel=1e-9)
        # dS/dlog wd = -N (1 - delta) at every grid point
        assert e["maxwell_max_rel_error"] == pytest.approx(abs(delta), abs=1e-9)
        assert e["maxwell_slope_ratio"] == pytest.approx(1 - delta, abs=1e-9)
        assert e["maxwell_slope_deviation"] == pytest.approx(abs(delta), abs=1e-9)
    corr = {(c["over"], c["y"]): c for c in r["correlations"]}
    runs = corr[("runs", "EOS abs. rel. error (discrete)")]
    assert runs["n"] == 36 and runs["rho"] > 0.7  # monotone except bias/bn-affine (0.03<0.06)
    var = corr[("variants", "Maxwell max rel. error")]
    assert var["n"] == 4 and var["rho"] == pytest.approx(1.0)
    assert len(r["points"]) == 36 and r["points"][0]["distance"] == pytest.approx(1e-7)
    other = A.analyze_non_si(_variant_table(VARIANTS), distance="si_loss_change")
    assert other["correlations"][0]["x"] == "si_loss_change"


def test_analyze_keeps_the_paper_analysis_for_si_runs_and_adds_non_si(tmp_path):
    t = _variant_table(VARIANTS)
    res = A.analyze(t)
    assert res["n_runs"] == 36 and res["protocols"]["elr"]["runs"] == 9  # the SI rows only
    assert res["protocols"]["elr"]["dim"] == DIM
    assert {e["variant"] for e in res["non_si"]["variants"]} == {v[0] for v in VARIANTS}
    # only non-SI variants (no SI runs): the paper's analysis is empty, the rest is there
    only = A.analyze(_variant_table(VARIANTS[1:]))
    assert only["protocols"] == {} and len(only["non_si"]["variants"]) == 3
    # a table without variants is unchanged; one variant missing its fit grid is reported
    assert "non_si" not in A.analyze(ideal_gas_table("elr"))
    small = _variant_table(VARIANTS)
    keep = ~((small["variant"] == "head") & (small["elr"] == 0.04))
    small = {k: v[keep] for k, v in small.items()}
    head = next(e for e in A.analyze_non_si(small)["variants"] if e["variant"] == "head")
    assert "needs at least 3" in head["maxwell_error"] and head["eos_max_rel_error_sde"]
    # CSV round trip: variant as text, distances as numbers
    write_csv(tmp_path / "results.csv", {k: np.asarray(v, dtype=object) for k, v in t.items()})
    back = A.analyze(A.load_table(tmp_path))
    assert back["non_si"]["correlations"] == res["non_si"]["correlations"]


def test_non_si_bad_input():
    t = ideal_gas_table("elr")
    with pytest.raises(ValueError, match="no 'si_radial_gradient' column"):
        A.analyze_non_si(t)
    with pytest.raises(ValueError, match="distance == 'radius', must be one of"):
        A.analyze_non_si(_variant_table(VARIANTS), distance="radius")


# ---------------------------------------------------------------------------------------------
# momentum and AdamW (fixed-LR protocol, one group per optimizer)


def test_optimizer_groups_exact_gases_satisfy_their_maxwell_relations():
    """Per optimizer: EOS errors 0 against the discrete radius, the Maxwell relation exact
    ((d-1)/2 for SGD and heavy ball, d-1 for AdamW), the paper's analysis on the SGD rows only."""
    table = _merge(optimizer_gas_table("sgd"), optimizer_gas_table("momentum"),
                   optimizer_gas_table("adamw"), ideal_gas_table("elr") | {
                       "optimizer": np.full(30, "", dtype=object),
                       "momentum": np.full(30, np.nan), "beta2": np.full(30, np.nan)})
    res = A.analyze(table, thresholds=ACCEPTANCE)
    assert set(res["protocols"]) == {"lr", "elr"} and res["protocols"]["lr"]["runs"] == 20
    groups = res["optimizers"]
    assert [g["label"] for g in groups] == ["sgd", "momentum 0.9", "adamw 0.9/0.999"]
    for g in groups:
        assert g["equation_of_state"]["max_rel_error_discrete"] < 1e-12
        # AdamW's all-orders radius carries log((1 + a b1) / ((1 - a^2)(1 - a b1))) and the
        # heavy ball's the factor 1 / (1 - eta lambda / (2 (1 + beta))): functions of eta lambda
        # (no Maxwell violation) but not quadratic in the logs, so the fit's derivative is off
        # at the grid edges (AdamW 0.36%, heavy ball 3e-5)
        tol = 1e-6 if g["optimizer"] == "sgd" else 0.01
        assert g["maxwell"]["max_rel_error"] < tol, g["label"]
        assert all(c["passed"] for c in g["checks"])
    assert groups[2]["maxwell"]["theory"] == DIM - 1
    assert groups[1]["maxwell"]["theory"] == HALF
    # the AdamW potential at the measured pressure lambda sqrt(s): the ideal gas's own state
    # minimizes it (with p = wd it would not: tests/analysis/test_figure_data.py)
    assert groups[2]["potential"]["max_distance_cells"] == 0


def test_optimizer_group_with_a_wrong_radius_law_fails_by_the_known_amount():
    """AdamW runs whose radius follows SGD's r^4 ~ lr/wd: dS/dlog(lr) - dS/dlog(wd) =
    (d-1)/2 instead of d-1, a 50% Maxwell error, reported as a failed check."""
    res = A.analyze(optimizer_gas_table("adamw", radius_power=4), strict=False,
                    thresholds=ACCEPTANCE)
    (g,) = res["optimizers"]
    # rel 1e-3: the AdamW temperature's finite-step factor sqrt(F(eta lambda)) enters S
    # through C log T, a function of lr*wd (it cancels in the Maxwell difference) that is not
    # quadratic in the logs: the fit's derivative is off by 7e-4
    assert g["maxwell"]["max_rel_error"] == pytest.approx(0.5, rel=1e-3)
    assert g["checks"][0]["passed"] is False
    assert g["equation_of_state"]["fraction_within_discrete"] < 0.5
    assert res["protocols"] == {}


def test_optimizer_group_errors_are_recorded_when_not_strict():
    t = optimizer_gas_table("momentum")
    t["stationary"][:] = False
    res = A.analyze(t, thresholds=ACCEPTANCE)
    (g,) = res["optimizers"]
    # no run stationary: the runs, not the size, are the cause (MIN_STATIONARY_FRACTION)
    assert g["stationary_runs"] == 0 and g["checks"][0]["passed"] is False
    assert "only 0 of" in g["checks"][0]["note"] and "have 0" in g["checks"][1]["note"]
    # a group that cannot be analyzed at all (its runs have no momentum) is an error
    t["momentum"][:] = np.nan
    res = A.analyze(t, strict=False, thresholds=ACCEPTANCE)
    assert "no momentum" in res["optimizers"][0]["error"]
    with pytest.raises(ValueError, match="no momentum"):
        A.analyze(t)


def test_potential_check_needs_five_values_per_axis():
    # on a 3x3 grid the +-1-cell window around the central target is the whole grid and
    # reaches 2/3 of each axis from a corner: any argmin passes, so the check gets no verdict;
    # on 5x5 (the default ideal-gas grid) it is assessed (the ideal gas's argmin is exact)
    assert potential_cells_needed(1) == 5 and potential_cells_needed(2) == 7
    small = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-3, 1e-2, 1e-1))
    acc = A.analyze(small, thresholds=ACCEPTANCE)["acceptance"]
    pot = {c["check"].split(" ")[0]: c for c in acc["checks"]}["potential"]
    assert pot["value"] is not None and pot["passed"] is None and pot["assessed"] is False
    assert "needs >= 5 values per axis of stationary runs, have 3" in pot["note"]
    assert acc["not_assessed"] == ["elr potential argmin distance to target (cells)"]
    assert acc["failed"] == [] and acc["all_passed"] is False
    big = A.analyze(ideal_gas_table("elr"), thresholds=ACCEPTANCE)["acceptance"]
    pot = {c["check"].split(" ")[0]: c for c in big["checks"]}["potential"]
    assert pot["passed"] is True and pot["assessed"] is True
    assert big["not_assessed"] == [] and big["all_passed"] is True


def test_a_failed_check_stays_failed_beside_unassessed_ones():
    # a Maxwell violation the fit resolves (20% > 15% on a 5x5 lr grid) is FAILED whatever
    # else is not assessed; the sphere has no Maxwell threshold (reported only)
    lr = ideal_gas_table("lr", delta=0.2)
    small = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-3, 1e-2, 1e-1))
    acc = A.analyze(_merge(lr, small), thresholds=ACCEPTANCE)["acceptance"]
    assert "lr Maxwell max relative error" in acc["failed"]
    assert not any(f.startswith("elr") for f in acc["failed"])
    assert acc["not_assessed"] == ["elr potential argmin distance to target (cells)"]
    assert acc["all_passed"] is False


def test_a_small_sweep_with_most_runs_stationary_is_not_assessed():
    """5 of 9 runs stationary (at least MIN_STATIONARY_FRACTION) on a 3 x 3 design: too few
    for the Maxwell fit, which the sweep's size explains: not assessed, with what it needs."""
    t = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-2, 3e-2, 1e-1))
    t["stationary"][5:] = False
    r = A.analyze(_merge(t, ideal_gas_table("lr")), thresholds=ACCEPTANCE)
    (m,) = [c for c in r["acceptance"]["checks"]
            if c["protocol"] == "elr" and c["check"].startswith("Maxwell")]
    assert 5 >= MIN_STATIONARY_FRACTION * 9
    assert m["passed"] is None and m["assessed"] is False  # no verdict at this size
    assert m["note"].startswith("not assessed at this size: Maxwell relation")
    assert "elr Maxwell max relative error" in r["acceptance"]["not_assessed"]
