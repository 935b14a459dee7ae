"""`aiwg task list` as a table: what a person scans first (state, priority, a short name)
before the full command or prompt, cut to the terminal's width; a COST column when a
listed task has an agent cost. Also what `task get` and `task stats` show of agents:
the answer first, then session, tokens and cost; cost sums per agent and per day."""

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
    """A short name: the task's own name (task.submit `name`), else metadata's name,
    rule or job; else the program; else the agent."""
    if isinstance(task.get("name"), str) and task["name"]:
        return str(task["name"])
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


def usd(value: Any) -> str:
    """Dollars as people read agent costs: cents, and below a dollar four decimals."""
    if not isinstance(value, int | float):
        return "-"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def table(tasks: list[dict[str, Any]], columns: int | None) -> str:
    """The rows under HEAD; the WHAT column (and any line) cut to `columns`."""
    now = time.time()
    costs = any(t.get("cost_usd") is not None for t in tasks)
    head = list(HEAD)
    if costs:
        head.insert(-2, "COST")
    rows = [head]
    for t in tasks:
        started, finished = t.get("started_at"), t.get("finished_at")
        took = (finished or now) - started if started else None
        row = [
            t["id"],
            t["state"],
            str(t.get("priority", 0)),
            render.duration(now - t["created_at"]),
            render.duration(took),
            render.fit(name(t), NAME_MAX),
            what(t),
        ]
        if costs:
            row.insert(-2, usd(t.get("cost_usd")))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = []
    for r in rows:
        fixed = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        lines.append(render.fit(f"{fixed}  {r[-1]}".rstrip(), columns))
    held = [t for t in tasks if t.get("queued_reason")]
    if held:  # why queued tasks do not start although slots may be free
        lines.append(render.fit(f"{len(held)} queued: {held[0]['queued_reason']}", columns))
    return "\n".join(lines)


def agent_head(t: dict[str, Any]) -> list[str]:
    """What `task get` shows first of an agent task: its answer (or why it waits)."""
    lines: list[str] = []
    if t.get("result") is not None:
        lines.append(f"{'answer:':<12} {t['result']}")
    if t.get("queued_reason"):
        lines.append(f"{'waiting:':<12} {t['queued_reason']}")
    return lines


def agent_lines(t: dict[str, Any]) -> list[str]:
    """Session, turns, tokens and cost of a stream-json agent task (none: no lines)."""
    lines: list[str] = []
    if t.get("session_id"):
        lines.append(f"{'session:':<12} {t['session_id']}")
    if t.get("turns") is not None:
        lines.append(f"{'turns:':<12} {t['turns']}")
    tokens = t.get("tokens")
    if isinstance(tokens, dict):
        lines.append(f"{'tokens:':<12} {token_text(tokens)}")
    if t.get("cost_usd") is not None:
        lines.append(f"{'cost:':<12} {usd(t['cost_usd'])}")
    return lines


def token_text(tokens: dict[str, Any]) -> str:
    def n(key: str) -> int:
        value = tokens.get(key)
        return value if isinstance(value, int) else 0

    return (
        f"{n('input_tokens')} in, {n('output_tokens')} out, "
        f"{n('cache_creation_input_tokens')} cache write, "
        f"{n('cache_read_input_tokens')} cache read"
    )


def costs_text(stats: dict[str, Any]) -> str:
    """task.stats' agent costs: today against the budget, per agent, per day."""
    costs = stats.get("costs")
    if not isinstance(costs, dict):
        return ""
    today = costs.get("today") or {}
    budget = today.get("per_day_usd")
    if budget is None and not costs.get("agents") and not today.get("spent_usd"):
        return ""  # no stream-json agent has run: nothing to say
    line = f"agent spend today: {usd(today.get('spent_usd', 0.0))}"
    if budget is not None:
        line += f" of {usd(budget)} a day"
    if today.get("waiting"):
        line += f"; {today['waiting']} prompt task(s) waiting for the budget"
    lines = [line]
    for title, key in (("agent", "agents"), ("day", "days")):
        for label, s in (costs.get(key) or {}).items():
            lines.append(
                f"  {title} {label}: {usd(s.get('cost_usd'))} over {s.get('tasks')} task(s); "
                f"{token_text(s)}"
            )
    return "\n".join(lines)
