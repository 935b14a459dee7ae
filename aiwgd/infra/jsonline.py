"""JSON text as the daemon writes it: compact, UTF-8, one text per line in its files.

orjson encodes short texts (about ten times faster than the standard library's
encoder, and a short task's journal lines, events and RPC reply are several encodings
each: issue 9). Long texts, and what orjson refuses, go through the standard library,
so nothing encodable before is refused now: keys that are not strings, integers beyond
64 bits, a string holding a lone surrogate (a file name that is not UTF-8, as
os.fsdecode gives it), nesting deeper than orjson's 254 levels. The two differ only in
what JSON has no way to say: orjson writes NaN and the infinities as null, the standard
library as NaN and Infinity (nothing the daemon is sent can hold them: the RPC decoder
and the config check refuse them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["EncodeError", "dumps", "json_line", "tail_lines", "try_orjson"]

# What orjson raises for what it cannot encode (a TypeError).
EncodeError = orjson.JSONEncodeError
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# Longer texts are left to the standard library (try_orjson).
_ORJSON_MAX = 4096


def try_orjson(
    data: Any, *, default: Callable[[Any], Any] | None = None, newline: bool = False
) -> bytes | None:
    """orjson's encoding of `data`; None where orjson cannot encode it or the text is
    long (dumps() then takes the standard library's way).

    A short task's lines, events and replies are well under the limit. Above it, what
    orjson allocates for its result stayed with the daemon: 600 events of 200 KiB grew
    its RSS by 55-59 MiB against 40-44 with the standard library (its own buffer freed
    at once or not, tests/rpc/test_memory_bounds.py), and 26-28 MiB with this limit.
    """
    try:
        out = orjson.dumps(data, default=default, option=_NEWLINE if newline else None)
    except EncodeError:
        return None
    return out if len(out) <= _ORJSON_MAX else None


def dumps(
    data: Any,
    *,
    default: Callable[[Any], Any] | None = None,
    newline: bool = False,
    allow_nan: bool = True,
) -> bytes:
    """`data` as compact JSON in UTF-8 (and a newline if asked); never a
    UnicodeEncodeError. `default` turns what JSON has no type for into something it
    has (str, for logs and replies); without it such a value raises TypeError.
    `allow_nan=False` only matters on the standard library path (ValueError there).

    Raises ValueError, TypeError or RuntimeError when `data` cannot be serialised at
    all (a cycle, an unknown type without `default`, a dict changed while it is read).
    """
    out = try_orjson(data, default=default, newline=newline)
    if out is not None:
        return out
    end = "\n" if newline else ""
    kw: dict[str, Any] = {"default": default, "separators": (",", ":"), "allow_nan": allow_nan}
    try:
        return (json.dumps(data, ensure_ascii=False, **kw) + end).encode()
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8 but can be a \uXXXX escape, which reads back
        # as the same string: this text is written with every non-ASCII character escaped.
        return (json.dumps(data, **kw) + end).encode()


def json_line(data: Any) -> bytes:
    """`data` as one JSON line (newline included), anything JSON has no type for
    written as its str(). Raises as dumps() does."""
    return dumps(data, default=str, newline=True)


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
