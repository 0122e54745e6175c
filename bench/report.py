"""Writing a benchmark's section into a markdown file without touching the other sections.

Each benchmark owns the text between its ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers; a file
without them gets the section appended, a missing file is created with a title.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path


def command_line(script: str, argv: list[str] | None = None) -> str:
    """How a benchmark section says it was made: ``python bench/<script> <its arguments>`` (``argv``, or the
    process's own arguments when None), shell-quoted."""
    return shlex.join(["python", f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(path: str | Path, name: str, body: str) -> None:
    """Put ``body`` between section ``name``'s markers in ``path`` (atomically: temp file, then rename)."""
    path = Path(path)
    start, end = markers(name)
    section = f"{start}\n\n{body.strip()}\n\n{end}\n"
    if path.is_file():
        text = path.read_text()
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + section.rstrip("\n") + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = "# Benchmarks\n\nData, not tests: numbers measured by the scripts in `bench/`.\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)
