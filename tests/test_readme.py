"""The README's Python snippets run as written, so the tour cannot go stale.

A snippet that needs an optional package starts with ``# requires: PACKAGE [PACKAGE ...]`` and
is skipped when one is not importable; the TensorBoard snippet also runs against a recording
stand-in for ``torch.utils.tensorboard`` so that its logging is checked everywhere.
"""

import re
import sys
import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors (see conftest.py)

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _requires(snippet: str) -> list[str]:
    m = re.match(r"# requires: ([\w. ]+)\n", snippet)
    return m.group(1).split() if m else []


def _run(i: int) -> None:
    exec(compile(SNIPPETS[i], f"README.md snippet {i + 1}", "exec"), {"__name__": "__readme__"})


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("i", range(len(SNIPPETS)))
def test_readme_snippet_runs(i, capsys):
    for module in _requires(SNIPPETS[i]):
        pytest.importorskip(module)
    _run(i)


def test_readme_tensorboard_snippet_logs_the_scalars(monkeypatch, capsys):
    """The TensorBoard example with a stand-in SummaryWriter that records add_scalar: every
    value logged is a float, and T, p, V, the norms, lr, wd and AdamW's betas are among them."""
    (i,) = [i for i, s in enumerate(SNIPPETS) if "tensorboard" in _requires(s)]
    calls, closed = [], []

    class Writer:
        def __init__(self, log_dir=None, **kw):
            pass

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            closed.append(True)

    stub = types.ModuleType("torch.utils.tensorboard")
    stub.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", stub)
    _run(i)
    tags = {t for t, _, _ in calls}
    want = {"temperature", "pressure", "volume", "radius", "energy", "lr", "wd", "momentum",
            "beta2", "trace_sigma"}
    assert {f"thermo/{k}" for k in want} <= tags and closed == [True]
    assert all(type(v) is float for _, v, _ in calls)
    assert sorted({s for _, _, s in calls}) == list(range(50, 501, 50))
