"""`aiwg task list` as a table: what a person scans first (state, priority, a short name)
before the full command or prompt, cut to the terminal's width."""

from __future__ import annotations

import os
import re
import shlex
import time
from typing import Any

from aiwgd.cli import render

HEAD = ("ID", "STATE", "PRIO", "AGE", "DURATION", "NAME", "WHAT")
NAME_MAX = 24
# Programs that run a script named by their first argument: the script names the task.
INTERPRETER = re.compile(r"(python|pypy|node|deno|bun|ruby|perl|php|bash|sh|zsh|dash)[0-9.]*")
# Metadata keys that name a task: a caller's own name, the rule or cron job that started it.
NAME_KEYS = ("name", "rule_id", "job_id")


def _base(path: str) -> str:
    return os.path.basename(path.rstrip("/")) or path


def short_command(argv: list[str]) -> list[str]:
    """argv with the program, and an interpreter's script, as basenames."""
    out = [_base(argv[0]), *argv[1:]]
    if len(out) > 1 and INTERPRETER.fullmatch(out[0]) and not out[1].startswith("-"):
        out[1] = _base(out[1])
    return out


def name(task: dict[str, Any]) -> str:
    """A short name: metadata's name, rule or job; else the program; else the agent."""
    meta = task.get("metadata") or {}
    for key in NAME_KEYS:
        if isinstance(meta.get(key), str) and meta[key]:
            return str(meta[key])
    argv = task.get("command")
    if argv:
        short = short_command(argv)
        if len(short) > 2 and INTERPRETER.fullmatch(short[0]) and short[1] == "-m":
            return short[2]  # python -m pytest: pytest
        if len(short) > 1 and INTERPRETER.fullmatch(short[0]) and not short[1].startswith("-"):
            return short[1]
        return short[0]
    return str(task.get("agent") or "agent")


def what(task: dict[str, Any]) -> str:
    """The command (program shortened) or the prompt, on one line."""
    if task.get("command"):
        return shlex.join(short_command(task["command"]))
    return str(task.get("prompt") or "").replace("\n", " ")


def table(tasks: list[dict[str, Any]], columns: int | None) -> str:
    """The rows under HEAD; the WHAT column (and any line) cut to `columns`."""
    now = time.time()
    rows = [list(HEAD)]
    for t in tasks:
        started, finished = t.get("started_at"), t.get("finished_at")
        took = (finished or now) - started if started else None
        rows.append(
            [
                t["id"],
                t["state"],
                str(t.get("priority", 0)),
                render.duration(now - t["created_at"]),
                render.duration(took),
                render.fit(name(t), NAME_MAX),
                what(t),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD) - 1)]
    lines = []
    for r in rows:
        fixed = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        lines.append(render.fit(f"{fixed}  {r[-1]}".rstrip(), columns))
    return "\n".join(lines)
