"""Human-readable output: status, durations, log lines."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def width() -> int | None:
    """Columns to fit lines into: $COLUMNS, else the terminal's; None for a pipe or a file,
    which gets whole lines (for grep and friends)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        size = os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else 0
    except (OSError, ValueError):  # no terminal after all, or stdout closed/replaced
        return None
    return size or None  # a terminal that says 0 columns (a fresh pty) has not said


def fit(line: str, columns: int | None) -> str:
    """`line` cut to `columns` characters, its end marked with "…" (None: unchanged)."""
    if columns is None or len(line) <= columns:
        return line
    return line[: max(columns - 1, 0)] + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _show(v: Any) -> str | None:
    if isinstance(v, (int, float, str)):
        return str(v)
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return "[" + ", ".join(v) + "]"  # e.g. the watcher's missing paths
    return None


def _subsystem_line(name: str, info: dict[str, Any]) -> str:
    state = info.get("state", "?")
    extras = ", ".join(
        f"{k}={_show(v)}" for k, v in info.items() if k != "state" and _show(v) is not None
    )
    return f"  {name:<12} {state}" + (f"  ({extras})" if extras else "")


def status(info: dict[str, Any], columns: int | None = None) -> str:
    """`aiwg status` for a person, each line cut to `columns` (render.width())."""
    return "\n".join(fit(line, columns) for line in _status(info).split("\n"))


def _status(info: dict[str, Any]) -> str:
    if not info.get("running"):
        last = info.get("last_state")
        tail = ""
        if last:
            tail = (
                f" (stale state from PID {last.get('pid')}, last heartbeat "
                f"{ago(last.get('heartbeat_at'))})"
            )
        return "\n".join([f"aiwgd is not running{tail}", *_left(info.get("left") or [])])
    if not info.get("answering"):
        head = f"aiwgd is running (PID {info.get('pid')}) but not answering: {info.get('error')}"
        last = info.get("last_state")
        if not last:
            return f"{head}\nno state.json to fall back to"
        # The last heartbeat's snapshot is the best we know: say how old it is.
        return "\n".join(
            [head, f"last state.json (heartbeat {ago(last.get('heartbeat_at'))}):", *_details(last)]
        )
    return "\n".join(
        [
            f"aiwgd is running (PID {info['pid']}), up {duration(info.get('uptime_s'))}",
            *_details(info),
        ]
    )


def _left(left: list[dict[str, Any]]) -> list[str]:
    """What a dead daemon left running (cli/leftovers.py finds it)."""
    if not left:
        return []
    n = len(left)
    kind = "task " if not any(p.get("service") for p in left) else ""
    head = f"{n} {kind}process{'es' if n > 1 else ''} left by it still run{'' if n > 1 else 's'}"
    return [
        f"{head} (`aiwg stop` stops them):",
        *(f"  pid {p['pid']} ({p['name']}), {_owner(p)}" for p in left),
    ]


def _owner(p: dict[str, Any]) -> str:
    return f"service {p['service']}" if p.get("service") else f"task {p['task']}"


def _details(info: dict[str, Any]) -> list[str]:
    cfg = info.get("config", {})
    lines = [
        f"root:    {info.get('root')}",
        f"config:  {cfg.get('path')} [{cfg.get('status')}]",
    ]
    for err in cfg.get("errors", []):
        lines.append(f"  reload error: {err}")
    tasks = info.get("subsystems", {}).get("supervisor")
    if tasks:
        lines.append(
            f"tasks:   {tasks.get('running', 0)} running, {tasks.get('queued', 0)} queued"
            f" (cap {tasks.get('cap', '?')})"
        )
    services = info.get("subsystems", {}).get("services")
    if services and services.get("services"):
        lines.append(f"services: {services.get('summary', '?')}")
    if isinstance(info.get("health"), dict):
        lines.append(health_line(info["health"]))
    lines.append("subsystems:")
    lines += [_subsystem_line(k, v) for k, v in info.get("subsystems", {}).items()]
    return lines


def health_line(health: dict[str, Any]) -> str:
    """`health: 66 (unhealthy: service:web, watcher)`: daemon.status's score and what
    pulls it down, so a person sees why without --json."""
    line = f"health:  {health.get('score', '?')}"
    bad = health.get("unhealthy") or []
    return f"{line} (unhealthy: {', '.join(map(str, bad))})" if bad else line


def ago(stamp: float | None) -> str:
    return "never" if not stamp else f"{duration(time.time() - stamp)} ago"


def log_line(raw: str) -> str:
    try:
        rec = json.loads(raw)
    except ValueError:
        return raw.rstrip("\n")
    if not isinstance(rec, dict):
        return raw.rstrip("\n")
    known = ("time", "level", "logger", "msg", "exc")
    fields = " ".join(f"{k}={v}" for k, v in rec.items() if k not in known)
    out = (
        f"{rec.get('time', '')} {str(rec.get('level', '')).upper():<7} "
        f"{rec.get('logger', '')}: {rec.get('msg', '')}"
    )
    out = f"{out} {fields}" if fields else out
    return out + ("\n" + rec["exc"] if rec.get("exc") else "")


def _last_lines(path: Path, n: int) -> list[str]:
    if n == 0:
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        chunk = 65536
        data = b""
        while size > 0 and data.count(b"\n") <= n:
            step = min(chunk, size)
            size -= step
            fh.seek(size)
            data = fh.read(step) + data
    return data.decode(errors="replace").splitlines()[-n:]


def show_log(path: Path, lines: int, follow: bool, raw: bool) -> None:
    """Print the last `lines` log lines; with follow, keep printing across rotations."""
    fmt = (lambda s: s.rstrip("\n")) if raw else log_line
    if path.exists():
        for line in _last_lines(path, lines):
            print(fmt(line))
    elif not follow:
        print(f"no log yet at {path}", file=sys.stderr)
        return
    if not follow:
        return
    _follow(path, fmt)


def _follow(path: Path, fmt: Any) -> None:
    fh = None
    inode = None
    first = True  # the first open starts at the end; a reopen after rotation at the top
    try:
        while True:
            if fh is None and path.exists():
                fh = path.open("r", encoding="utf-8", errors="replace")
                inode = os.fstat(fh.fileno()).st_ino
                if first:
                    fh.seek(0, os.SEEK_END)
                    first = False
            chunk = fh.read() if fh else ""
            if chunk:
                for line in chunk.splitlines():
                    print(fmt(line), flush=True)
                continue
            # Rotation renames the file: reopen when the name points at a new inode.
            try:
                if fh is not None and os.stat(path).st_ino != inode:
                    fh.close()
                    fh = None
                    continue
            except FileNotFoundError:
                pass
            time.sleep(0.25)
    finally:  # Ctrl-C ends a follow: cli.main exits 130
        if fh is not None:
            fh.close()
