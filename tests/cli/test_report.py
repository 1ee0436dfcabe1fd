"""``thermosgd report``: the page of a sweep of isotropic studies; nothing to report: one line,
exit 2."""

from __future__ import annotations

from tests.cli.conftest import assert_usage_error, run_main


def test_report_of_a_sweep(iso_sweep, tmp_path):
    out = tmp_path / "r.html"
    res = run_main(["report", str(iso_sweep.dir), "--out", str(out), "--title", "T"])
    assert res.rc == 0 and res.out == f"wrote {out}\n"
    page = out.read_text()
    assert "<title>T</title>" in page
    for seed in (0, 1):
        assert f"Isotropic model: runs/elr_[0.05]-seed_{seed}" in page


def test_nothing_to_report(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_usage_error(run_main(["report", str(tmp_path / "empty")]), "nothing to report")
