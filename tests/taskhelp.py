"""Helpers shared by the task tests: the test program, configs, record analysis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.utils import SCRIPTS, DaemonProc, alive, wait_for

PROG = str(SCRIPTS / "taskprog.py")
TERMINAL = ("completed", "failed", "timed_out", "cancelled", "dependency_failed")


def prog(*args: str) -> list[str]:
    """argv running the test program with these flags."""
    return [sys.executable, PROG, *args]


def task_config(cap: int = 2, grace: float = 0.5, **extra: Any) -> dict[str, Any]:
    """A config whose agent is the test program (prints its prompt)."""
    cfg: dict[str, Any] = {
        "daemon": {"max_parallel_actions": cap, "stop_grace_seconds": grace},
        "agent": {
            "command": prog("--say", "{prompt}"),
            "agent_args": ["--say", "agent={agent}"],
            "retry_backoff_seconds": 0.05,
        },
    }
    for key, value in extra.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def submit(d: DaemonProc, argv: list[str], **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = d.call("task.submit", command=argv, **params)
    return result


def wait_terminal(d: DaemonProc, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task: dict[str, Any] = d.call("task.wait", id=task_id, timeout_s=1, _timeout=5)
        return task if task["state"] in TERMINAL else None

    result: dict[str, Any] = wait_for(done, timeout, f"task {task_id} to end")
    return result


def records(path: Path) -> list[tuple[str, str, float, int]]:
    """(start|end, name, time, pid) lines written by `taskprog.py --record`."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        kind, name, stamp, pid = line.split()
        out.append((kind, name, float(stamp), int(pid)))
    return out


def max_concurrency(recs: list[tuple[str, str, float, int]]) -> int:
    level = peak = 0
    for kind, *_ in sorted(recs, key=lambda r: (r[2], r[0] == "start")):
        level += 1 if kind == "start" else -1
        peak = max(peak, level)
    return peak


def pids_in(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def assert_all_gone(pids: list[int], timeout: float = 5.0) -> None:
    wait_for(lambda: not [p for p in pids if alive(p)], timeout, f"processes {pids} to be gone")
