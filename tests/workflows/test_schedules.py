"""Tests of thermosgd.workflows.schedules: a tracked run and a prediction check written into
run directories (files, figures, JSON) and found by the report."""

from __future__ import annotations

import json

import numpy as np

from tests.schedules.curves import CURVE, D, curve_rows, merge
from thermosgd import schedules as S
from thermosgd.workflows.schedules import write_track, write_validation


def test_write_track_and_report(tmp_path):
    from thermosgd.workflows.analyze import find_sections, render_report

    cfg = S.TrackConfig(schedule="step", lr=3.0, wd=0.01, steps=300, milestones=(100,),
                        burn_in=0, log_every=10, noise_every=50)
    proc = cfg.process()
    lag = S.lagged_path(proc, CURVE, init_radius=8.0)
    steps, pst = np.arange(0, 300, 10), np.arange(0, 300, 50)
    elr = proc.rate[pst] / lag["radius"][pst] ** 2
    records = {"step": steps.astype(float), "radius": lag["radius"][steps] * 1.01,
               "loss": np.ones(len(steps))}
    probes = {"step": pst.astype(float), "radius": lag["radius"][pst],
              "trace_sigma": CURVE.sigma2(elr) * (D - 1),
              "trace_sigma_se": 0.01 * CURVE.sigma2(elr) * (D - 1),
              "grad_norm2": np.zeros(len(pst)), "trace_total": CURVE.trace_total(elr),
              "trace_total_se": np.zeros(len(pst))}
    res = S.analyze_track(cfg, proc, records, probes, D, CURVE, angular_rate=0.1)
    assert "volume_rms_rel_error_angular" in res["summary"]
    doc = write_track(res, tmp_path / "trk")
    assert sorted(doc["figures"]) == ["schedule-temperature.png", "schedule-tv.png",
                                      "schedule-volume.png"]
    for f in ("schedule.json", "records.csv", "probes.csv", *doc["figures"]):
        assert (tmp_path / "trk" / f).is_file()
    saved = json.loads((tmp_path / "trk" / "schedule.json").read_text())
    assert set(saved) == {"config", "protocol", "dim", "exact", "angular_rate", "noise",
                          "summary", "files", "figures"}
    assert S.format_track(res["summary"]).count("\n") >= 4
    assert find_sections(tmp_path) == [("schedule", tmp_path / "trk")]
    html = render_report(tmp_path)
    assert "Scheduled run: trk" in html and "radial relaxation time" in html
    doc = write_track(res, tmp_path / "nofig", figures=False)
    assert doc["figures"] == [] and not list((tmp_path / "nofig").glob("*.png"))


def test_write_validation_and_report(tmp_path):
    from thermosgd.workflows.analyze import find_sections, render_report

    table = merge(curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 4), [0.003, 0.03]),
                  curve_rows(CURVE, "lr", [0.5, 1.0], [0.005, 0.01]))
    fit = S.fit_noise_curve(table, ("elr",))
    v = S.validate_predictions(fit, table, "lr")
    doc = write_validation([{**v, "label": "fit elr -> predict lr",
                             "noise": fit.to_dict()}], tmp_path / "val")
    assert doc["figures"] == ["prediction.png"] and (tmp_path / "val" / "prediction.png").is_file()
    (tmp_path / "val" / "sub").mkdir()  # a prediction directory does not hide its children
    assert find_sections(tmp_path) == [("prediction", tmp_path / "val")]
    html = render_report(tmp_path)
    assert "Predicted stationary states: val" in html and "fit elr -&gt; predict lr" in html
