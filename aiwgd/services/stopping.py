"""The stop ladder for a service's process, starting with its own `stop_signal`, and
how an ending is put in words."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping

from aiwgd.procs import marks
from aiwgd.procs.child import Child, Exit

GONE_POLL_S = 0.05


async def stop_child(
    child: Child, sig: int, grace: float, fast: asyncio.Event, mark: Mapping[str, str]
) -> None:
    """`sig` to the group and every marked process, wait `grace` (cut short by a fast
    stop), then SIGKILL to all (Child.terminate). SIGTERM is the Child's own ladder."""
    if sig == signal.SIGTERM:
        await child.terminate(grace, fast)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pgid, sig)
    (name, value), *rest = mark.items()
    found = await asyncio.to_thread(marks.find_marked, name, value, where=dict(rest))
    for p in found:  # those outside the group (it had its signal): once each
        if _group(p.pid) != child.pgid:
            marks.send(p.pid, p.create_time, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not fast.is_set() and not await child.gone():
        await asyncio.sleep(GONE_POLL_S)
    await child.terminate(0, fast)


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


async def kill(child: Child) -> None:
    """SIGKILL everything now (after a bug or a cancel): never leave it unwatched."""
    with contextlib.suppress(Exception):
        await child.kill()
        await child.finish(0)


def describe(ex: Exit) -> str:
    if ex.signal is not None:
        try:
            return f"killed by {signal.Signals(ex.signal).name}"
        except ValueError:
            return f"killed by signal {ex.signal}"
    if ex.code is None:
        return "ended (exit code unknown)"
    return f"exited with code {ex.code}"
