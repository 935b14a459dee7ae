"""One JSON text per line, as the daemon's JSON-lines files write it: UTF-8 always.

Standard library only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["json_line", "tail_lines"]


def json_line(data: Any) -> bytes:
    """`data` as one UTF-8 JSON line (newline included); never a UnicodeEncodeError.

    A lone surrogate (a file name that is not UTF-8, as os.fsdecode gives it) cannot be
    encoded as UTF-8 but can be written as a JSON \\uXXXX escape, which reads back as the
    same string: that line is written with every non-ASCII character escaped. Raises
    ValueError, TypeError or RuntimeError when `data` cannot be serialised at all
    (a cycle, a key that is not a string, a dict changed while it is read).
    """
    try:
        return (json.dumps(data, default=str, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:
        return (json.dumps(data, default=str) + "\n").encode()


def tail_lines(path: Path, limit: int) -> list[bytes]:
    """The whole, non-blank lines among the last `limit` bytes of `path`.

    [] if the file is missing; OSError otherwise (the caller says which log it was).
    """
    try:
        with path.open("rb") as fh:
            start = max(0, fh.seek(0, os.SEEK_END) - limit)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut by the limit: not a whole line
    return [raw for raw in lines if raw.strip()]
