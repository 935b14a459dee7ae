"""`aiwg watchdog [--kills] [--json]`: what the hung-process watchdog sees, and killed."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import Json, Root, client, emit, want_json

Kills = Annotated[bool, typer.Option("--kills", help="the kill log instead, newest first")]
Limit = Annotated[int, typer.Option("-n", "--limit", min=1, help="kill records shown")]


def _stamp(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def render_list(result: dict[str, Any], columns: int | None) -> str:
    state = "on" if result.get("enabled") else "off (watchdog.enabled)"
    lines = [f"watchdog {state}; mode {result.get('mode')}, scope {result.get('scope')}"]
    rows = result.get("processes", [])
    if not rows:
        lines.append("no process matches a watchdog rule")
    for row in rows:
        line = (
            f"{row['pid']:>7}  {render.duration(row.get('age_s')):>7}  {row['rule']:<12}  "
            f"{row['verdict']:<24}  {row['command']}"
        )
        lines.append(render.fit(line, columns))
    return "\n".join(lines)


def render_kills(records: list[dict[str, Any]], columns: int | None) -> str:
    if not records:
        return "no kills recorded"
    lines = []
    for rec in records:
        what = rec.get("rule") or rec.get("reason") or ""
        signals = ",".join(rec.get("signals") or [])
        line = (
            f"{_stamp(rec.get('time'))}  {rec.get('kind', '?'):<8}  {rec.get('pid', '?'):>7}  "
            f"{render.duration(rec.get('age_s')):>7}  {what:<12}  {signals:<14}  "
            f"{rec.get('command', '')}"
        )
        lines.append(render.fit(line, columns))
    return "\n".join(lines)


def watchdog(
    kills: Kills = False, limit: Limit = 50, root: Root = None, json_out: Json = False
) -> None:
    """Processes the watchdog's rules match and their verdicts; --kills: what it killed."""
    with client(root) as c:
        if kills:
            result = c.call("watchdog.kills", limit=limit)
            human = render_kills(result.get("kills", []), render.width())
        else:
            result = c.call("watchdog.list")
            human = render_list(result, render.width())
    emit(result, want_json(json_out), human)


def register(app: typer.Typer) -> None:
    app.command("watchdog")(watchdog)
