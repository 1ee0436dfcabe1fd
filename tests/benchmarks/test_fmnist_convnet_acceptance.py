"""Smoke test of benchmarks/fmnist_convnet_acceptance.py at tiny size (the CIFAR presets' tiny
settings, 2 values per axis, one worker): it runs the sweep, the analysis and the report,
records the timing, writes its docs section between the markers, and rewrites it from the
stored run with --no-run. Run in-process (the script's ``main``)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.workflows.test_reproduce import TINY, TINY_STEPS

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the script imports its siblings
    try:
        spec = importlib.util.spec_from_file_location("fmnist_convnet_acceptance",
                                                      BENCH / "fmnist_convnet_acceptance.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_tiny_run_writes_the_section(bench, tmp_path, capsys):
    from thermosgd.nn.data import FASHION_MNIST_DIR

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"{FASHION_MNIST_DIR} missing (Debian package dataset-fashion-mnist)")
    out, doc = tmp_path / "out", tmp_path / "results.md"
    doc.write_text("# Results\n\nkept\n")
    args = ["--out", str(out), "--doc", str(doc), "--workers", "1", "--steps", str(TINY_STEPS),
            "--grid-values", "2", "--settings", json.dumps(TINY)]
    assert bench.main(args) == 0
    text = doc.read_text()
    assert "kept" in text and text.count(bench.START) == 1 and bench.END in text
    assert "Maxwell max relative error" in text and "needs >= 6 stationary runs" in text
    assert "worker(s)" in text and "90-minute target" in text
    timing = json.loads((out / "timing.json").read_text())
    assert timing["sessions"] == 1 and timing["wall_s"] > 0 and timing["cpu_s"] > 0
    assert sum(timing["counts"].values()) == 12
    # --no-run rewrites the section in place from the stored analysis and timing
    assert bench.main(["--out", str(out), "--doc", str(doc), "--no-run"]) == 0
    assert doc.read_text().count(bench.START) == 1
    capsys.readouterr()
