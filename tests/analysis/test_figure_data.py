"""The arrays the network figures draw (`thermosgd.analysis.figure_data`): the potential maps
agree with the argmins the analysis reports (the AdamW map used wd as the pressure), and every
array indexes the table it claims to."""

import numpy as np
import pytest

from tests.analysis.tables import _merge, ideal_gas_table, optimizer_gas_table
from thermosgd import analysis as A


def _map_argmins(d: dict) -> list[tuple[int, int]]:
    """(argmin of the drawn map, argmin the analysis reports) per target, as indices into the
    stationary runs; on the sphere the map is minimized within the target's radius."""
    cells = d["potential"]["cells"]
    out = []
    for t in d["potential"]["maps"]:
        m = t["map"]
        if d["protocol"] == "sphere":
            col = np.flatnonzero(cells[:, 1] == cells[t["target"], 1])
            drawn = int(col[np.nanargmin(m[col])])
        else:
            drawn = int(np.nanargmin(m))
        out.append((drawn, t["argmin"]))
    return out


def test_adamw_potential_map_minimum_is_the_reported_argmin():
    """The AdamW Gibbs map at the pressure of the analysis' argmin, lambda sqrt(s) (the
    ``pressure`` column), not wd: the map's minimum is the argmin marked on it, the run the
    analysis reports, for every target."""
    t = optimizer_gas_table("adamw")
    res = A.analyze(t)
    (g,) = res["optimizers"]
    (d,) = A.figure_data.optimizer_figure_arrays(t, res["optimizers"])
    runs = list(t["run"])
    assert len(d["potential"]["maps"]) == len(g["potential"]["targets"]) == 9
    for (drawn, marked), target in zip(_map_argmins(d), g["potential"]["targets"],
                                       strict=True):
        assert drawn == marked
        assert runs[drawn] == target["argmin_run"]
    # the map itself: G - min G at the target's (T*, p*) with p* = lambda sqrt(s), written out
    U, S, V, T, P = (t[k] for k in ("energy", "entropy", "volume", "temperature", "pressure"))
    for m in d["potential"]["maps"]:
        i = m["target"]
        G = U - T[i] * S + P[i] * V
        np.testing.assert_allclose(m["map"], G - G.min(), rtol=0, atol=1e-9 * np.abs(G).max())
    # what the figure drew before: p* = wd. Its minimum is not the marked argmin (the bug)
    wrong = [int(np.argmin(U - T[m["target"]] * S + t["wd"][m["target"]] * V)) != m["argmin"]
             for m in d["potential"]["maps"]]
    assert sum(wrong) >= 6


@pytest.mark.parametrize("protocol", ["elr", "lr", "sphere"])
def test_potential_maps_agree_with_the_argmins_of_every_protocol(protocol):
    # a noisy gas, so that the argmin is not always the target itself
    t = ideal_gas_table(protocol, entropy_noise=0.3, seed=2)
    res = A.analyze(t)
    d = A.figure_arrays(t, res)["protocols"][protocol]
    pairs = _map_argmins(d)
    assert all(drawn == marked for drawn, marked in pairs)
    targets = res["protocols"][protocol]["potential"]["targets"]
    assert any(p["distance_cells"] > 0 for p in targets) or protocol == "sphere"
    runs = list(t["run"])
    assert [runs[m] for _, m in pairs] == [p["argmin_run"] for p in targets]


def test_arrays_of_a_table_with_optimizers_evaluations_and_exclusions():
    """With momentum/AdamW runs the paper's figures use the SGD rows, the optimizer figures
    each group's rows, and the generalization figure the rows its groups name (indices into
    the scale-invariant table, all optimizers: they used to index the SGD-only table)."""
    sgd = ideal_gas_table("lr")
    n = len(sgd["run"])
    sgd |= {"optimizer": np.full(n, "sgd", dtype=object), "momentum": np.full(n, np.nan),
            "beta2": np.full(n, np.nan)}
    t = _merge(optimizer_gas_table("adamw"), sgd, optimizer_gas_table("momentum"))
    m = len(t["run"])
    rng = np.random.default_rng(0)
    t["eval_test_loss"] = t["energy"] + 0.1 * rng.standard_normal(m)
    t["eval_train_loss"] = t["energy"]
    t["gap_loss"] = t["eval_test_loss"] - t["eval_train_loss"]
    t["eval_test_acc"] = 0.5 + 0.01 * rng.standard_normal(m)
    t["stationary"][[3, 25]] = False
    res = A.analyze(t)
    arr = A.figure_arrays(t, res)
    lr = arr["protocols"]["lr"]
    assert lr["x"].size == n - 1 and lr["eos"]["excluded_x"].tolist() == [t["lr"][25]]
    # groups sgd, momentum, adamw (row 3 is an AdamW run)
    assert [d["x"].size for d in arr["optimizers"]] == [n - 1, 20, 19]
    gen = {(g["protocol"], g["optimizer"]): g for g in arr["generalization"]}
    for g in res["generalization"]:
        if g["protocol"] == "all":
            continue
        cols = gen[(g["protocol"], g["optimizer"])]["columns"]
        np.testing.assert_array_equal(cols["temperature"], t["temperature"][g["rows"]])
        np.testing.assert_array_equal(cols["gap_loss"], t["gap_loss"][g["rows"]])
    assert {k for k in gen} == {("lr", "adamw"), ("lr", "momentum"), ("lr", "sgd")}


def test_entropy_curves_and_maxwell_derivative_are_the_fit():
    # the dashed curves are the fitted surface along the grid lines, the Maxwell panel the
    # fitted derivative / (d-1)/2: for the exact ideal gas it is -1 everywhere (elr)
    t = ideal_gas_table("elr")
    res = A.analyze(t)
    d = A.figure_arrays(t, res)["protocols"]["elr"]
    fit = A.fit_quadratic(np.log(t["elr"]), np.log(t["wd"]), t["entropy"])
    assert len(d["entropy"]["rate"]) == 5 and len(d["entropy"]["second"]) == 6
    for c in d["entropy"]["rate"]:  # one per wd, from its smallest to its largest rate
        wd = t["wd"][np.isin(t["entropy"], c["entropy"])][0]
        o = np.argsort(c["x"])
        assert (c["fit_x"][0], c["fit_x"][-1]) == (c["x"][o[0]], c["x"][o[-1]])
        # the exact gas lies on its fit: the curve ends at its points (to 1e-7 of S: the curve
        # is drawn at the grid line's log wd rounded to 1e-6, times dS/dlog wd ~ -1535)
        np.testing.assert_allclose(c["fit"][[0, -1]], c["entropy"][o[[0, -1]]], rtol=1e-6)
        # at the grid line's value as the figure groups it: log wd to 1e-6
        np.testing.assert_allclose(
            c["fit"], fit.predict(np.log(c["fit_x"]), np.round(np.log(wd), 6)), rtol=1e-12)
    for c in d["maxwell"]["curves"]:
        np.testing.assert_allclose(c["value"], -1.0, atol=1e-8)
    assert d["maxwell"]["target"] == -1.0
