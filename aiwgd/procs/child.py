"""Child processes: spawn in their own session, capture output, and the stop ladder.

Reusable by anything that runs programs (tasks, services, the hung-process watchdog):

    child = await Child.spawn(["make", "test"], cwd=root, env=env, log_path=path)
    await child.exited()                         # a future: done when the leader exits
    await child.terminate(grace=10)              # SIGTERM group, wait, SIGKILL all
    result = await child.finish(grace=10)        # reap, clean leftovers, close the log

A child runs in a new session (so it leads its own process group), with stdin from
/dev/null and stdout+stderr on one pipe that is drained as output arrives into a log
file with a size cap and a bounded, safely decoded in-memory tail.

"Really gone" means the leader is reaped, no member of its process group is left, no
descendant seen in a snapshot is alive and no process carrying the child's mark is
left (zombies count as gone: whoever adopted them reaps them). A descendant that
called setsid()/setpgid() itself is outside the group; it is found through psutil
snapshots of the tree, taken while the child runs and right before every signal, and
recorded by (pid, create time) so a reused PID is never hit. One that double-forked
(`(setsid sleep 300 &)`) is in no snapshot: its parent exits at once. The daemon is a
child subreaper (aiwgd.procs.reaper), so the kernel hands such an orphan to it, and
the mark (`mark={"AIWG_TASK_ID": id, ...}`, put in the child's environment and
inherited by everything it starts) finds it there (aiwgd.procs.marks). Everything
outside the group goes down the same ladder as the group, and what escaped is noted
in the child's log (`escape_note()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from aiwgd.procs import marks, reaper, spawn
from aiwgd.procs.output import DEFAULT_LOG_CAP, DEFAULT_TAIL_BYTES, OutputSink
from aiwgd.procs.ticker import Ticker
from aiwgd.procs.tree import GONE_POLL_S, alive, create_time, group_members, tree_snapshot

__all__ = ["Child", "Escapee", "Exit"]

log = logging.getLogger("aiwgd.procs")

CHUNK = 64 * 1024
# Snapshots of the process tree: the first soon after start (most escapes happen
# early), then at this interval, in a worker thread so the event loop never blocks.
FIRST_SNAPSHOT_S = 0.25
# After the leader is gone, output still buffered in the pipe is drained; a stranger
# that inherited the pipe (and is neither in the group nor a known descendant) must
# not hold the task open forever.
DRAIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Exit:
    """How a child ended: an exit code, or the signal that killed it."""

    code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, rc: int | None) -> Exit:
        if rc is None:
            return cls(None, None)
        return cls(None, -rc) if rc < 0 else cls(rc, None)


@dataclass
class Escapee:
    """A process that left the child's process group, and the last signal it was sent."""

    pid: int
    create_time: float | None
    name: str
    signal: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} ({self.name}): {self.signal}"


class _Io:
    """The child's output pipe and its exit, watched from the event loop.

    Not asyncio's subprocess transport: that path costs several loop round trips and a
    child-watcher hop per process, a large share of a short task's cost, and its
    Process.wait() also waits for the pipe to close, which a grandchild holding stdout
    would delay forever. Here the pipe is a non-blocking fd read when readable, and the
    exit is a pidfd (Linux >= 5.3) that becomes readable when the child ends; without
    pidfds a small thread waits for it instead.
    """

    def __init__(self, proc: spawn.Process, read_fd: int, sink: OutputSink) -> None:
        self.loop = asyncio.get_running_loop()
        self.proc = proc
        self.sink = sink
        self.exited: asyncio.Future[None] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self._fd: int | None = read_fd
        os.set_blocking(read_fd, False)
        self.loop.add_reader(read_fd, self._readable)
        self._pidfd: int | None = None
        # reaper.reads() at the exit (Child._strays_possible); until then no look counts.
        self.exit_read = sys.maxsize
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            threading.Thread(
                target=self._wait_in_thread, daemon=True, name=f"aiwgd-wait-{proc.pid}"
            ).start()
        else:
            self.loop.add_reader(self._pidfd, self._pid_readable)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.sink.feed(data)
        else:
            self.close_pipe()

    def close_pipe(self) -> None:
        """Stop reading (EOF, or giving up on a pipe a stranger holds open)."""
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if not self.drained.done():
            self.drained.set_result(None)

    def _pid_readable(self) -> None:
        assert self._pidfd is not None
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        if self.proc.poll() is not None:  # reaps it: the pidfd is readable once it exited
            reaper.disown(self.proc.pid)
        self._exited()

    def _wait_in_thread(self) -> None:
        self.proc.wait()
        reaper.disown(self.proc.pid)
        with contextlib.suppress(RuntimeError):  # loop closed during a crash exit
            self.loop.call_soon_threadsafe(self._exited)

    def _exited(self) -> None:
        self.exit_read = reaper.reads()  # reap()'s looks at our children before the exit
        if not self.exited.done():
            self.exited.set_result(None)


class Child:
    """One spawned program and everything it started."""

    def __init__(
        self,
        proc: spawn.Process,
        io: _Io,
        argv: list[str],
        mark: Mapping[str, str] | None = None,
    ) -> None:
        self.proc = proc
        self.io = io
        self.sink = io.sink
        self.argv = argv
        self.pid: int = proc.pid
        self.pgid: int = self.pid  # start_new_session: the child leads its own group
        self.known: dict[int, float] = {}  # descendants seen in snapshots
        self.mark = dict(mark or {})
        self.escapes: dict[int, Escapee] = {}  # outside the group when signalled
        # A timer until the first snapshot is due (most tasks are gone first), then one
        # shared tick for every child of the loop.
        self._watch_timer = io.loop.call_later(FIRST_SNAPSHOT_S, self._start_watch)
        self._finished: Exit | None = None

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        cwd: str | os.PathLike[str],
        env: dict[str, str],
        log_path: str | os.PathLike[str] | None = None,
        log_cap: int = DEFAULT_LOG_CAP,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        header: str | None = None,
        on_data: Callable[[], None] | None = None,
        mark: Mapping[str, str] | None = None,
        sink: OutputSink | None = None,
    ) -> Child:
        """Start `argv` (never through a shell). Raises OSError if it cannot start.

        `mark`: environment variables that name the owner (the first one is the key
        searched for, the others must match too); whatever the child starts inherits
        them, so an escaped descendant is still found and stopped with the child.
        `sink`: where the output goes, instead of the capped log made from `log_path`,
        `log_cap`, `tail_bytes` and `on_data` (a service's rotating log); the child
        closes it when it finishes, or if the spawn fails.
        """
        if mark:
            env = {**env, **mark}
        if sink is None:
            sink = OutputSink(log_path, log_cap, tail_bytes, on_data)
        if header:
            sink.write_note(header)
        read_fd, write_fd = os.pipe()  # both close-on-exec; Popen dups the write end
        try:
            # Blocking only until exec (vfork): the same as asyncio's own spawn path.
            proc = spawn.start(argv, cwd=str(cwd), env=env, out_fd=write_fd)
        except BaseException:
            os.close(read_fd)
            sink.close()
            raise
        finally:
            os.close(write_fd)
        # Before any await: the reaper (run from this loop) must never wait for it.
        reaper.own(proc.pid)
        return cls(proc, _Io(proc, read_fd, sink), argv, mark)

    @functools.cached_property
    def create_time(self) -> float | None:
        # Read when first asked (a runner record, a service's registry), not at each
        # spawn: most short tasks never need it (a /proc read each). None once gone.
        return create_time(self.pid)

    # -- watching ----------------------------------------------------------------------
    def _start_watch(self) -> None:
        if self.returncode is None and self._finished is None:
            Ticker.of(self.io.loop).add(self)

    async def snapshot(self) -> None:
        """Record the current descendants (so an escape is still found later)."""
        if self.returncode is None:
            self.known.update(await asyncio.to_thread(tree_snapshot, self.pid))

    def _leftovers(self, skip: Collection[int]) -> tuple[list[int], dict[int, float | None]]:
        """(live group members, {pid: create time} of live processes outside the group:
        known descendants and processes carrying the mark). Blocking: use a thread."""
        members = group_members(self.pgid)
        escaped: dict[int, float | None] = {
            p: ct for p, ct in self.known.items() if p not in members and alive(p, ct)
        }
        if self.mark:
            (name, value), *rest = self.mark.items()
            # A subreaper holds every orphan of its children: only its own descendants
            # need a look (leaving out other children's trees). Otherwise, all of them.
            under = os.getpid() if reaper.active() else None
            found = marks.find_marked(name, value, where=dict(rest), under=under, skip=skip)
            for p in found:
                if p.pid not in members and p.pid != self.pid:
                    escaped.setdefault(p.pid, p.create_time)
        return members, escaped

    def _strays_possible(self) -> bool:
        """Could a marked process be left outside the group and the snapshots? Cheap:
        with the subreaper, only if the daemon has children that are not its own
        spawned ones (adopted orphans)."""
        if not self.mark:
            return False
        if not reaper.active():
            return True
        seen = reaper.adopted_after(self.io.exit_read)  # the look our exit's SIGCHLD made
        if seen is not None:
            return seen
        ours = reaper.spawned_pids()
        adopted = marks.children_of(os.getpid(), main_thread_only=True)
        return any(pid not in ours for pid in adopted)

    async def _scan(self) -> tuple[list[int], dict[int, float | None]]:
        skip = reaper.spawned_pids() - {self.pid}  # other children's trees are theirs
        return await asyncio.to_thread(self._leftovers, skip)

    async def gone(self) -> bool:
        if self.returncode is None:
            return False
        if not self.known and not self._strays_possible():
            # The common case, without a thread hop: no descendant was ever seen, no
            # orphan was adopted and the group is empty (one syscall).
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        members, escaped = await self._scan()
        return not members and not escaped

    # -- waiting -----------------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def exited(self) -> asyncio.Future[None]:
        """Done when the leader has exited (to use in asyncio.wait with other events)."""
        return self.io.exited

    # -- the stop ladder ---------------------------------------------------------------
    async def terminate(self, grace: float, skip_grace: asyncio.Event | None = None) -> None:
        """SIGTERM the group, wait `grace` (cut short by `skip_grace`), SIGKILL the rest.

        Returns only when everything is really gone.
        """
        await self.snapshot()
        if await self.gone():
            return
        _, escaped = await self._scan()
        log.info(
            "stopping child",
            extra={"pid": self.pid, "signal": "SIGTERM", "grace": grace, "escaped": [*escaped]},
        )
        self._signal_group(signal.SIGTERM)
        self._signal_escaped(escaped, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if skip_grace is not None and skip_grace.is_set():
                break
            if await self.gone():
                return
            await asyncio.sleep(min(GONE_POLL_S, max(0.0, deadline - time.monotonic())))
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL the group and every known descendant; wait until all are gone."""
        await self.snapshot()
        members, escaped = await self._scan()
        if self.returncode is None or members or escaped:
            log.warning(
                "killing child",
                extra={"pid": self.pid, "signal": "SIGKILL", "escaped": [*escaped]},
            )
        self._signal_group(signal.SIGKILL)
        self._signal_escaped(escaped, signal.SIGKILL)
        # SIGKILL cannot be ignored; only an uninterruptible (D state) process lingers.
        while not await self.gone():
            await asyncio.sleep(GONE_POLL_S)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _signal_escaped(self, escaped: dict[int, float | None], sig: signal.Signals) -> None:
        """Signal each process outside the group (pidfd-checked), noting what was sent."""
        for pid, created in escaped.items():
            entry = self.escapes.get(pid)
            if entry is None or entry.create_time != created:
                entry = Escapee(pid, created, marks.name_of(pid))
            if marks.send(pid, created, sig):
                entry.signal = sig.name
                self.escapes[pid] = entry

    def escape_note(self) -> str:
        """One line saying what escaped the group and what stopped it ("" if nothing)."""
        if not self.escapes:
            return ""
        what = "; ".join(e.describe() for e in self.escapes.values())
        n = len(self.escapes)
        return f"[aiwgd] {n} process(es) escaped the process group and were stopped: {what}\n"

    async def finish(self, grace: float, skip_grace: asyncio.Event | None = None) -> Exit:
        """Reap the leader, stop what it left behind, drain output, close the log."""
        if self._finished is not None:
            return self._finished
        if not self.io.exited.done():
            await asyncio.shield(self.io.exited)
        if not await self.gone():
            # The leader is done but left processes behind: they belong to the task,
            # and its slot is only free once they are gone too.
            log.info("child left processes behind", extra={"pid": self.pid})
            await self.terminate(grace, skip_grace)
        if not self.io.drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.io.drained), DRAIN_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "output pipe held open by an unknown process; closing it",
                    extra={"pid": self.pid},
                )
        self._watch_timer.cancel()
        Ticker.of(self.io.loop).discard(self)
        self.io.close_pipe()
        if self.escapes:
            log.warning(
                "processes escaped the child's group and were stopped",
                extra={"pid": self.pid, "escaped": [e.describe() for e in self.escapes.values()]},
            )
            self.sink.write_note(self.escape_note())
        self.sink.close()
        self._finished = Exit.from_returncode(self.returncode)
        return self._finished
