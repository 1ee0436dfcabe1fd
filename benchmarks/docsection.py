"""Shared by the acceptance benchmarks: replace one marked section of a Markdown document."""

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
