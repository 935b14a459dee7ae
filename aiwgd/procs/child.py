"""Child processes: spawn in their own session, capture output, and the stop ladder.

Reusable by anything that runs programs (tasks, services, the hung-process watchdog):

    child = await Child.spawn(["make", "test"], cwd=root, env=env, log_path=path)
    await child.exited()                         # a future: done when the leader exits
    await child.terminate(grace=10)              # SIGTERM group, wait, SIGKILL all
    result = await child.finish(grace=10)        # reap, clean leftovers, close the log

A child runs in a new session (so it leads its own process group), with stdin from
/dev/null and stdout+stderr on one pipe that is drained as output arrives into a log
file with a size cap and a bounded, safely decoded in-memory tail.

"Really gone" means the leader is reaped, no member of its process group is left and
no descendant seen in a snapshot is alive (zombies count as gone: whoever adopted them
reaps them). A descendant that called setsid()/setpgid() itself is outside the group;
it is found through psutil snapshots of the tree, taken while the child runs and right
before every signal, and recorded by (pid, create time) so a reused PID is never hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiwgd.procs.output import DEFAULT_LOG_CAP, DEFAULT_TAIL_BYTES, OutputSink
from aiwgd.procs.tree import GONE_POLL_S, alive, create_time, group_members, tree_snapshot

__all__ = ["Child", "Exit"]

log = logging.getLogger("aiwgd.procs")

CHUNK = 64 * 1024
# Snapshots of the process tree: the first soon after start (most escapes happen
# early), then at this interval, in a worker thread so the event loop never blocks.
FIRST_SNAPSHOT_S = 0.25
SNAPSHOT_INTERVAL_S = 1.0
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


class _Io:
    """The child's output pipe and its exit, watched from the event loop.

    Not asyncio's subprocess transport: that path costs several loop round trips and a
    child-watcher hop per process, a large share of a short task's cost, and its
    Process.wait() also waits for the pipe to close, which a grandchild holding stdout
    would delay forever. Here the pipe is a non-blocking fd read when readable, and the
    exit is a pidfd (Linux >= 5.3) that becomes readable when the child ends; without
    pidfds a small thread waits for it instead.
    """

    def __init__(self, proc: subprocess.Popen[bytes], read_fd: int, sink: OutputSink) -> None:
        self.loop = asyncio.get_running_loop()
        self.proc = proc
        self.sink = sink
        self.exited: asyncio.Future[None] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self._fd: int | None = read_fd
        os.set_blocking(read_fd, False)
        self.loop.add_reader(read_fd, self._readable)
        self._pidfd: int | None = None
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
        self.proc.poll()  # reaps it: the pidfd is readable only once it has exited
        self._exited()

    def _wait_in_thread(self) -> None:
        self.proc.wait()
        with contextlib.suppress(RuntimeError):  # loop closed during a crash exit
            self.loop.call_soon_threadsafe(self._exited)

    def _exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Child:
    """One spawned program and everything it started."""

    def __init__(self, proc: subprocess.Popen[bytes], io: _Io, argv: list[str]) -> None:
        self.proc = proc
        self.io = io
        self.sink = io.sink
        self.argv = argv
        self.pid: int = proc.pid
        self.pgid: int = self.pid  # start_new_session: the child leads its own group
        self.create_time = create_time(self.pid)
        self.known: dict[int, float] = {}  # descendants seen in snapshots
        # A timer, not a task, until the first snapshot is due: most tasks are gone first.
        self._watch: asyncio.Task[None] | None = None
        self._watch_timer = io.loop.call_later(FIRST_SNAPSHOT_S, self._start_watch)
        self._finished: Exit | None = None

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        cwd: str | os.PathLike[str],
        env: dict[str, str],
        log_path: Path | None = None,
        log_cap: int = DEFAULT_LOG_CAP,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        header: str | None = None,
        on_data: Callable[[], None] | None = None,
    ) -> Child:
        """Start `argv` (never through a shell). Raises OSError if it cannot start."""
        sink = OutputSink(log_path, log_cap, tail_bytes, on_data)
        if header:
            sink.write_note(header)
        read_fd, write_fd = os.pipe()  # both close-on-exec; Popen dups the write end
        try:
            # Blocking only until exec (vfork): the same as asyncio's own spawn path.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(read_fd)
            sink.close()
            raise
        finally:
            os.close(write_fd)
        return cls(proc, _Io(proc, read_fd, sink), argv)

    # -- watching ----------------------------------------------------------------------
    def _start_watch(self) -> None:
        if self.returncode is None and self._finished is None:
            self._watch = asyncio.create_task(self._watch_tree())

    async def _watch_tree(self) -> None:
        while self.returncode is None:
            await self.snapshot()
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)

    async def snapshot(self) -> None:
        """Record the current descendants (so an escape is still found later)."""
        if self.returncode is None:
            self.known.update(await asyncio.to_thread(tree_snapshot, self.pid))

    def _leftovers(self) -> tuple[list[int], list[int]]:
        """(live group members, live known descendants outside the group)."""
        members = group_members(self.pgid)
        escaped = [p for p, ct in self.known.items() if p not in members and alive(p, ct)]
        return members, escaped

    async def gone(self) -> bool:
        if self.returncode is None:
            return False
        if not self.known:
            # The common case, without a thread hop: no descendant was ever seen and
            # the group is empty (one syscall).
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        members, escaped = await asyncio.to_thread(self._leftovers)
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
        log.info("stopping child", extra={"pid": self.pid, "signal": "SIGTERM", "grace": grace})
        self._signal_group(signal.SIGTERM)
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
        members, escaped = await asyncio.to_thread(self._leftovers)
        if self.returncode is None or members or escaped:
            log.warning(
                "killing child", extra={"pid": self.pid, "signal": "SIGKILL", "escaped": escaped}
            )
        self._signal_group(signal.SIGKILL)
        for pid in escaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # SIGKILL cannot be ignored; only an uninterruptible (D state) process lingers.
        while not await self.gone():
            await asyncio.sleep(GONE_POLL_S)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

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
        if self._watch is not None:
            self._watch.cancel()
        self.io.close_pipe()
        self.sink.close()
        self._finished = Exit.from_returncode(self.returncode)
        return self._finished
