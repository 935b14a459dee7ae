"""What the daemon reads back from Redis, parsed: XREAD replies, stream entry ids and
fields, and the end entry as an Ending. (Execution ids: aiwgd.remote.keys.)"""

from __future__ import annotations

from typing import Any

from aiwgd.procs.child import Exit

Entry = tuple[bytes, dict[bytes, bytes]]  # (stream entry id, fields)


def entries(reply: Any) -> list[Entry]:
    """XREAD's entries for one stream, whichever protocol (RESP2 list, RESP3 map)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (s[1] for s in reply)
    return [(item[0], item[1]) for found in streams for item in found]


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as something that sorts like one."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


def run_fields(fields: dict[Any, Any]) -> dict[str, Any]:
    """A start entry's or the `run` hash's fields, as text (pid and pgid as ints)."""
    run = {text(k): text(v) for k, v in fields.items() if k not in (b"k", "k")}
    for name in ("pid", "pgid"):
        if name in run:
            run[name] = number(run[name])
    return run


def end_exit(fields: dict[bytes, bytes]) -> tuple[Exit, str]:
    """An end entry's exit, and the reason the worker gave ('' for none)."""
    code, sig = fields.get(b"code"), fields.get(b"signal")
    return Exit(number(code), number(sig)), text(fields.get(b"reason", b""))


def number(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, b"", "") else None
    except (TypeError, ValueError):
        return None


def text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
