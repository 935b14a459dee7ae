"""One JSON text per line, as the daemon's JSON-lines files write it: UTF-8 always.

Standard library only.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_line"]


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
