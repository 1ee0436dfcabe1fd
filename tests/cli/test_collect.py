"""``thermosgd collect``: a sweep directory's table; not a sweep directory: one line, exit 2."""

from __future__ import annotations

from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.io import read_csv


def test_collect_writes_the_table(iso_sweep):
    (iso_sweep.dir / "results.csv").unlink()
    res = run_main(["collect", str(iso_sweep.dir)])
    assert res.rc == 0 and res.out == f"wrote {iso_sweep.dir}/results.csv (2 runs)\n"
    assert list(read_csv(iso_sweep.dir / "results.csv")["state"]) == ["done", "done"]


def test_not_a_sweep_directory(tmp_path):
    assert_usage_error(run_main(["collect", str(tmp_path)]), "is not a sweep directory")
