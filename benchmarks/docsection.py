"""Shared by the benchmarks that write docs: replace one section of a Markdown document."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(doc: Path, start: str, end: str, section: str) -> None:
    """Replace the text from marker ``start`` to marker ``end`` (inclusive) in ``doc`` by
    ``section`` (which carries both markers), or append it; creates ``doc`` if missing."""
    text = doc.read_text() if doc.is_file() else "# Results\n"
    if start in text:
        text = re.sub(re.escape(start) + ".*" + re.escape(end), lambda _: section, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)


def preset_main(doc: str, preset: str, default_out: str, start: str, end: str,
                section) -> None:
    """Command line of an acceptance script: run ``thermosgd reproduce --preset PRESET``
    (resumable) unless ``--no-run``, then write ``section(out, seconds)`` between the markers
    of ``--doc`` and print it."""
    import argparse
    import time

    from thermosgd.workflows.reproduce import reproduce

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(default_out))
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--no-run", action="store_true", help="only rewrite the doc section")
    ap.add_argument("--seconds", type=float, default=None,
                    help="with --no-run: the wall time the run took (e.g. measured by `time`)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    if not a.no_run:
        reproduce(preset, a.out)
    seconds = a.seconds if a.no_run else time.perf_counter() - t0
    new = section(a.out, seconds)
    write_section(a.doc, start, end, new)
    print(new)


def write_heading_section(doc: Path, title: str, section: str) -> None:
    """Replace the Markdown section that starts with the line ``title`` (e.g. "## Theory")
    and runs to the next "## " heading by ``section`` (which starts with ``title``), or append
    it; creates ``doc`` if missing."""
    text = doc.read_text() if doc.exists() else "# Theory\n\n"
    pat = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text.rstrip("\n") + "\n")
