"""Programs that daemonize (fork, and the parent exits 0): the service is what they left.

The leader's exit is not the service's end when processes carrying the instance's
mark live on (the daemon is a child subreaper, so they are among its descendants), or
when `pid_file` names a live process. The main one (the pid file's, else the oldest
adopted one) is then followed: its exit is the service's exit, and a stop takes all
the marked processes down the ladder (Child.terminate finds them by the mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

from aiwgd.procs import marks, reaper
from aiwgd.procs.child import Child
from aiwgd.services.plan import ROOT_MARK, SERVICE_MARK, expand

if TYPE_CHECKING:
    from aiwgd.services.instance import Instance

PID_FILE_WAIT_S = 2.0
POLL_S = 0.1


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            pid = int(fh.read().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and marks.alive(pid) else None


async def _pid_from_file(path: str) -> int | None:
    # The pid file may be written a moment after the parent exits.
    deadline = time.monotonic() + PID_FILE_WAIT_S
    while True:
        pid = _read_pid(path)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        await asyncio.sleep(POLL_S)


async def follow_daemonized(inst: Instance, child: Child) -> asyncio.Future[None] | None:
    """A future done when the followed process exits, or None if nothing was left."""
    main: int | None = None
    if inst.svc.pid_file:
        pid_file = expand(inst.svc.pid_file, inst.index)
        main = await _pid_from_file(os.path.join(inst.host.root, pid_file))
    under = os.getpid() if reaper.active() else None
    where = {ROOT_MARK: str(inst.host.root)}
    found = await asyncio.to_thread(
        marks.find_marked, SERVICE_MARK, inst.name, where=where, under=under
    )
    found = [p for p in found if p.pid != child.pid]
    if main is None and found:
        me = os.getpid()
        main = min(found, key=lambda p: (p.ppid != me, p.create_time or 0.0, p.pid)).pid
    if main is None:
        return None
    created = marks.create_time(main)
    inst.pid = main
    inst.log.note(f"pid {child.pid} daemonized: following pid {main}")
    inst.host.notify(inst)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    watcher = loop.create_task(_watch(main, created, done))
    done.add_done_callback(lambda _f: watcher.cancel())
    return done


async def _watch(pid: int, created: float | None, done: asyncio.Future[None]) -> None:
    """Settle `done` when `pid` ends: a pidfd where there is one, else polling."""
    loop = asyncio.get_running_loop()
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    try:
        if fd is not None and marks.alive(pid, created):
            ended: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, ended)
            try:
                await ended
            finally:
                loop.remove_reader(fd)
        else:
            while marks.alive(pid, created):
                await asyncio.sleep(POLL_S)
    finally:
        if fd is not None:
            os.close(fd)
        if not done.done():
            done.set_result(None)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
