"""Smoke test of benchmarks/bench_conv_step.py: the CPU part and the batched-grid (CUDA) part
at tiny sizes on CPU (``--device cpu --quick``), and the doc sections it writes."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_conv_step.py"


def test_quick_run_prints_ratios_and_writes_sections(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--doc", str(doc)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "SGEMM" in out and "of SGEMM" in out and "today's steps/s" in out
    assert "batched G = 4" in out and "projected paper ConvNet-2/CIFAR-10 study" in out
    text = doc.read_text()
    assert "## Other\n\nkept" in text
    assert "## Conv step on CPU (issue 10)" in text and "| ConvNet-2 |" in text
    assert "## Batched conv grid on GPU (issue 10)" in text
    assert "Pending a GPU machine" in text


def test_cuda_refused_without_cuda():
    import torch

    if torch.cuda.is_available():  # the real run is the benchmark itself
        return
    r = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cuda: not available" in r.stderr
