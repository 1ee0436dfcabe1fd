"""`thermosgd.workflows.schedule_studies`: the noise source, predictions, processes and the
cross-protocol validation written as a report section."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.schedules.curves import CURVE, curve_rows, merge
from thermosgd import schedules as S
from thermosgd.io import read_csv, write_csv
from thermosgd.workflows.schedule_studies import (
    NoiseSource,
    predict_states,
    process_states,
    validate_table,
)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    elr = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 4))
    lr = curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 3), np.geomspace(0.005, 0.01, 3))
    path = tmp_path_factory.mktemp("t") / "results.csv"
    write_csv(path, merge(elr, lr))
    return path


def test_noise_source(table):
    c = NoiseSource(sigma2=0.05, dim=50).curve()
    assert c.dim == 50 and float(c.sigma2(0.01)) == pytest.approx(0.05, rel=1e-12)
    with pytest.raises(ValueError, match="needs sigma2 and dim"):
        NoiseSource(sigma2=0.05).curve()
    fitted = NoiseSource(table, fit_protocols=("elr",)).curve()
    # the rows sit exactly on CURVE: the quadratic fit recovers it (up to solver round-off)
    elr = np.geomspace(0.005, 0.03, 4)
    np.testing.assert_allclose(fitted.sigma2(elr), CURVE.sigma2(elr), rtol=1e-8)


def test_predict_states_grid_and_csv(table, tmp_path):
    res = predict_states(NoiseSource(table), "elr", elr=(0.01, 0.02), wd=(0.01, 0.02, 0.03),
                         out=tmp_path / "p.csv")
    cols = res["columns"]
    assert len(cols["elr"]) == 6 and res["temperature_range"] is None
    want = S.predict(CURVE, "elr", elr=0.02, wd=0.03)  # the last point of the (elr, wd) grid
    np.testing.assert_allclose(cols["radius"][-1], want["radius"], rtol=1e-8)
    assert list(read_csv(tmp_path / "p.csv")["wd"]) == pytest.approx([0.01, 0.02, 0.03] * 2)
    rec = predict_states(NoiseSource(table), "elr", target_temperature=(1.2e-4,), wd=(0.01,))
    assert rec["temperature_range"]["t_max"] > 1.2e-4


def test_process_states_isothermal_keeps_the_rate():
    cols = process_states("isothermal", "elr", NoiseSource(sigma2=0.05, dim=50),
                          wd=(0.001, 0.01), rate0=0.01)
    assert list(cols) == ["elr", "wd", "temperature", "volume", "entropy", "elr_predicted",
                          "tau"]
    np.testing.assert_array_equal(cols["elr"], [0.01, 0.01])
    np.testing.assert_allclose(cols["temperature"], 0.01 * 0.05 / 2, rtol=1e-12)  # elr s2/2
    with pytest.raises(ValueError, match="one wd value"):
        process_states("isobaric", "elr", NoiseSource(sigma2=0.05, dim=50), wd=(0.1, 0.2),
                       temperature=(1e-3,))


def test_validate_table_both_ways_and_written(table, tmp_path):
    done = validate_table(table, out=tmp_path)
    assert [(v["fit_protocol"], v["protocol"], v["n"]) for v in done] == [("elr", "lr", 9),
                                                                          ("lr", "elr", 20)]
    doc = json.loads((tmp_path / "prediction.json").read_text())
    assert [v["n"] for v in doc["validations"]] == [9, 20]
    assert "fit_protocol" not in doc["validations"][0]  # the file keeps its keys
