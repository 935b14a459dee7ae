"""Helpers for the `aiwg top` tests: the app against a real daemon, condition waits
inside Textual's pilot, the programs the tasks and services run."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from textual.pilot import Pilot

from aiwgd.cli.top.app import TopApp
from aiwgd.cli.top.panes import Pane
from tests.utils import DaemonProc

T = TypeVar("T")

# Prints a line, then another once ./more exists, and ends once ./go exists.
TASK = """
import os, sys, time
print("first line of", sys.argv[1], flush=True)
while not os.path.exists("more"):
    time.sleep(0.02)
print("second line of", sys.argv[1], flush=True)
while not os.path.exists("go"):
    time.sleep(0.02)
"""
SERVICE = """
import os, time
print("service up", os.getpid(), flush=True)
while True:
    time.sleep(1)
"""


def config(root: Path, services: bool = True) -> dict[str, Any]:
    (root / "task.py").write_text(textwrap.dedent(TASK))
    (root / "svc.py").write_text(textwrap.dedent(SERVICE))
    cfg: dict[str, Any] = {"daemon": {"max_parallel_actions": 3, "stop_grace_seconds": 0.5}}
    if services:
        cfg["services"] = {
            "web": {
                "command": [sys.executable, str(root / "svc.py")],
                "stop_grace_s": 1,
                "backoff": {"initial_s": 0.05, "max_s": 0.5, "jitter": 0},
            }
        }
    return cfg


def submit(d: DaemonProc, label: str, **params: Any) -> str:
    argv = [sys.executable, str(d.root / "task.py"), label]
    task: dict[str, Any] = d.call("task.submit", command=argv, cwd=str(d.root), **params)
    return str(task["id"])


def rows(app: TopApp, pane: str) -> list[list[str]]:
    table = app.query_one(f"#{pane}", Pane)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def row_of(app: TopApp, pane: str, key: str) -> list[str] | None:
    table = app.query_one(f"#{pane}", Pane)
    if key not in {k.value for k in table.rows}:
        return None
    return [str(c) for c in table.get_row(key)]


async def until(
    pilot: Pilot[Any], cond: Callable[[], Any], what: str, timeout: float = 10.0
) -> Any:
    """Let the app run until `cond()` is truthy; fail saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def in_thread(fn: Callable[[], T]) -> T:
    """A blocking daemon call without stopping the app's loop."""
    return await asyncio.to_thread(fn)


def run_app(d: DaemonProc, body: Callable[[TopApp, Pilot[Any]], Awaitable[None]]) -> TopApp:
    """Run the app at 80x24 against `d` and `body` with its pilot; returns the app."""
    app = TopApp(d.paths.socket_address())

    async def main() -> None:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await body(app, pilot)

    run(main())
    return app


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)
