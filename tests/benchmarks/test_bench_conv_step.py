"""Smoke test of benchmarks/bench_conv_step.py at tiny sizes on CPU (``--device cpu --quick``):
the CPU part, the batched-grid part and the --device cuda flow, and the doc sections they
write. Run in-process (the script's ``main``) to pay the imports once."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # main() sets 1 thread; restored


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the script imports its sibling docsection
    try:
        spec = importlib.util.spec_from_file_location("bench_conv_step",
                                                      BENCH / "bench_conv_step.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


def test_quick_run_prints_ratios_and_writes_sections(bench, tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    assert bench.main(["--device", "cpu", "--quick", "--doc", str(doc)]) == 0
    out = capsys.readouterr().out
    assert "SGEMM" in out and "of SGEMM" in out and "today's steps/s" in out
    assert "grouped: G = 4" in out and "vmap: G = 4" in out
    assert "projected paper ConvNet-2/CIFAR-10 study" in out
    text = doc.read_text()
    assert "## Other\n\nkept" in text
    assert "## Conv step on CPU (issue 10)" in text and "| ConvNet-2 |" in text
    assert "## Batched conv grid on GPU (issue 10)" in text and "Pending a GPU machine" in text


def test_gpu_flow_on_cpu_writes_the_gpu_section(bench, tmp_path, capsys):
    """The --device cuda flow (step part without compile, batched grid, GPU doc section with
    numbers) on CPU: every CUDA-only call is guarded by the device type."""
    doc = tmp_path / "benchmarks.md"
    assert bench.main(["--device", "cpu", "--quick", "--gpu-flow", "--doc", str(doc)]) == 0
    out = capsys.readouterr().out
    assert "device: cpu" in out and "grouped: G = 4" in out
    text = doc.read_text()
    assert "## Batched conv grid on GPU (issue 10)" in text
    assert "Pending" not in text and "| batched vmap (`BatchedConvModel`, G = 4) |" in text
    assert "| batched grouped (`BatchedConvNet`, G = 4) |" in text
    assert "One config's step on the same GPU" in text and "| ConvNet-2 |" in text


def test_cuda_refused_without_cuda(bench, capsys):
    if torch.cuda.is_available():  # the real run is the benchmark itself
        pytest.skip("CUDA present: run the benchmark")
    assert bench.main(["--device", "cuda"]) == 2
    assert "cuda: not available" in capsys.readouterr().err
