"""Child processes: spawn in their own session, capture output, and the stop ladder.

Reusable by anything that runs programs (tasks, services, the hung-process watchdog):

    child = await Child.spawn(["make", "test"], cwd=root, env=env, log_path=path)
    code = await child.wait(timeout=60)          # None at the timeout
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
import codecs
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("aiwgd.procs")

DEFAULT_LOG_CAP = 10 * 1024 * 1024
DEFAULT_TAIL_BYTES = 16 * 1024
CHUNK = 64 * 1024
# Snapshots of the process tree: the first soon after start (most escapes happen
# early), then at this interval, in a worker thread so the event loop never blocks.
FIRST_SNAPSHOT_S = 0.25
SNAPSHOT_INTERVAL_S = 1.0
GONE_POLL_S = 0.05
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


class OutputSink:
    """Raw output into a capped log file, plus a bounded tail decoded without breaking.

    The log keeps the bytes as they came; beyond `cap` a marker line is written and the
    rest is dropped (but still counted, and the pipe still drained so the child never
    blocks on a full pipe). The tail is text: an incremental UTF-8 decoder means a
    multi-byte character split across two reads decodes whole; bytes that are not
    UTF-8 become U+FFFD.
    """

    def __init__(self, path: Path | None, cap: int = DEFAULT_LOG_CAP,
                 tail_bytes: int = DEFAULT_TAIL_BYTES,
                 on_data: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.path = path
        self.on_data = on_data  # told after each chunk is written (log followers)
        self.cap = cap
        self.tail_bytes = tail_bytes
        self.written = 0
        self.dropped = 0
        self._marked = False
        self._tail = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._fd: int | None = None
        # The file is created at the first byte: creating one costs far more than
        # running a short silent command, and a task without output needs none.
        self._can_open = path is not None

    def _open(self) -> bool:
        if self._fd is None and self._can_open:
            self._can_open = False  # one try: a failure is logged once, not per chunk
            assert self.path is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            try:
                try:
                    self._fd = os.open(self.path, flags, 0o600)
                except FileNotFoundError:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, flags, 0o600)
                # A retry appends to the same file: the cap is for the whole file.
                self.written = os.fstat(self._fd).st_size
            except OSError as exc:
                log.error("cannot open task log", extra={"path": str(self.path),
                                                         "error": str(exc)})  # fmt: skip
        return self._fd is not None

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def write_note(self, text: str) -> None:
        """A line of our own in the log (attempt headers); not counted against the cap."""
        if self._open():
            self._write(text.encode())

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._add_tail(self._decoder.decode(data))
        if not self._open():
            return
        room = max(0, self.cap - self.written)
        head = data[:room]
        if head:
            self._write(head)
            self.written += len(head)
        if len(data) > room:
            self.dropped += len(data) - room
            if not self._marked:
                self._marked = True
                self._write(
                    f"\n[aiwgd] output truncated: log cap of {self.cap} bytes reached; "
                    "further output is dropped\n".encode()
                )
        if self.on_data is not None:
            self.on_data()

    def close(self) -> None:
        self._can_open = False
        self._add_tail(self._decoder.decode(b"", final=True))
        if self._fd is None:
            return
        if self.dropped:
            self._write(f"[aiwgd] {self.dropped} bytes of output dropped\n".encode())
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def tail(self) -> str:
        return self._tail

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        except OSError as exc:
            # A full disk loses log output, never the task: keep draining the pipe.
            log.error("cannot write task log", extra={"path": str(self.path), "error": str(exc)})
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _add_tail(self, text: str) -> None:
        if not text:
            return
        tail = self._tail + text
        if len(tail) > self.tail_bytes:
            tail = tail[-self.tail_bytes :]
        raw = tail.encode("utf-8", errors="surrogatepass")
        if len(raw) > self.tail_bytes:
            raw = raw[-self.tail_bytes :]
            # Never start on a continuation byte: cut at a character boundary.
            start = 0
            while start < len(raw) and (raw[start] & 0xC0) == 0x80:
                start += 1
            tail = raw[start:].decode("utf-8", errors="replace")
        self._tail = tail


def install_child_watcher() -> str:
    """Watch children with pidfds where possible (call once, from the running loop).

    Python 3.11 defaults to a thread per child blocked in waitpid(); on Linux >= 5.3 a
    pidfd in the event loop does the same without a thread (3.12+ does this itself).
    Returns the watcher's name.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return "default"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return "threaded"  # kernel without pidfd support
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        if not isinstance(getattr(policy, "_watcher", None), asyncio.PidfdChildWatcher):
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(asyncio.get_running_loop())
            asyncio.set_child_watcher(watcher)
    return "pidfd"


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_BOOT_TIME: float | None = None


def create_time(pid: int) -> float | None:
    """psutil's create time of `pid` (same value), read straight from /proc when it can.

    Recorded for every spawn so a reused PID is never mistaken for our child; reading
    the one field directly is several times cheaper than building a psutil.Process.
    """
    global _BOOT_TIME
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
        ticks = int(raw[raw.rindex(b")") + 2 :].split()[19])
        if _BOOT_TIME is None:
            _BOOT_TIME = psutil.boot_time()
        return ticks / _CLK_TCK + _BOOT_TIME
    except OSError:
        return None  # already gone (and reaped): nothing left to tell apart
    except (ValueError, IndexError):
        try:
            return float(psutil.Process(pid).create_time())
        except psutil.Error:
            return None


def _alive(pid: int, create_time: float | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if given, was created at `create_time`."""
    try:
        p = psutil.Process(pid)
        if create_time is not None and abs(p.create_time() - create_time) > 0.01:
            return False  # the PID was reused by someone else
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in group `pgid`; cheap when the group is empty."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # someone else's process shares the id: look closer
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def tree_snapshot(pid: int) -> dict[int, float]:
    """Every live descendant of `pid` as {pid: create_time} (blocking: use a thread)."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}
    out: dict[int, float] = {}
    for k in kids:
        with contextlib.suppress(psutil.Error):
            out[k.pid] = k.create_time()
    return out


def kill_leftovers(pgid: int, create_time: float | None,
                   known: dict[int, float] | None = None) -> list[int]:  # fmt: skip
    """SIGKILL what is left of a child from an earlier daemon run (blocking).

    The group is only hit when its leader still runs with the recorded create time, or
    when the leader is gone and the member was created after it (a PID is never
    reused while its group exists). Returns the PIDs signalled.
    """
    targets: dict[int, float] = dict(known or {})
    leader_ok = _alive(pgid, create_time) if create_time is not None else False
    if leader_ok:
        targets.update(tree_snapshot(pgid))
        targets[pgid] = create_time or 0.0
    for member in _group_members(pgid):
        with contextlib.suppress(psutil.Error):
            ct = psutil.Process(member).create_time()
            if leader_ok or (create_time is not None and ct >= create_time - 0.01):
                targets[member] = ct
    hit = []
    for pid, ct in targets.items():
        if _alive(pid, ct or None):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                hit.append(pid)
    return hit


class _Protocol(asyncio.SubprocessProtocol):
    """Feeds the sink as data arrives and reports the leader's exit at once.

    (asyncio's Process.wait() also waits for the pipe to close, which a grandchild
    holding stdout would delay forever; the exit itself is what the ladder needs.)
    """

    def __init__(self, sink: OutputSink, loop: asyncio.AbstractEventLoop) -> None:
        self.sink = sink
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.sink.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Child:
    """One spawned program and everything it started."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol,
                 argv: list[str]) -> None:  # fmt: skip
        self.transport = transport
        self.protocol = protocol
        self.sink = protocol.sink
        self.argv = argv
        self.pid: int = transport.get_pid()
        self.pgid: int = self.pid  # start_new_session: the child leads its own group
        self.create_time = create_time(self.pid)
        self.started_mono = time.monotonic()
        self.known: dict[int, float] = {}  # descendants seen in snapshots
        self.terminated_by: int | None = None  # signal the ladder sent last
        # A timer, not a task, until the first snapshot is due: most tasks are gone first.
        self._watch: asyncio.Task[None] | None = None
        self._watch_timer = asyncio.get_running_loop().call_later(
            FIRST_SNAPSHOT_S, self._start_watch
        )
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
        loop = asyncio.get_running_loop()
        sink = OutputSink(log_path, log_cap, tail_bytes, on_data)
        if header:
            sink.write_note(header)
        protocol = _Protocol(sink, loop)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: protocol, *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True,
            )  # fmt: skip
        except BaseException:
            sink.close()
            raise
        return cls(transport, protocol, argv)

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
        members = _group_members(self.pgid)
        escaped = [p for p, ct in self.known.items() if p not in members and _alive(p, ct)]
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
        return self.transport.get_returncode()

    async def wait(self, timeout: float | None = None) -> int | None:
        """The leader's return code, or None if it still runs after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.protocol.exited), timeout)
        return self.returncode

    def exited(self) -> asyncio.Future[None]:
        """Done when the leader has exited (to use in asyncio.wait with other events)."""
        return self.protocol.exited

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
        self.terminated_by = signal.SIGTERM
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
            log.warning("killing child", extra={"pid": self.pid, "signal": "SIGKILL",
                                                "escaped": escaped})  # fmt: skip
            self.terminated_by = signal.SIGKILL
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
        if not self.protocol.exited.done():
            await asyncio.shield(self.protocol.exited)
        if not await self.gone():
            # The leader is done but left processes behind: they belong to the task,
            # and its slot is only free once they are gone too.
            log.info("child left processes behind", extra={"pid": self.pid})
            await self.terminate(grace, skip_grace)
        if not self.protocol.drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.protocol.drained), DRAIN_TIMEOUT_S)
            except TimeoutError:
                log.warning("output pipe held open by an unknown process; closing it",
                            extra={"pid": self.pid})  # fmt: skip
        self._watch_timer.cancel()
        if self._watch is not None:
            self._watch.cancel()
        self.transport.close()  # the leader is reaped: this only closes our pipe end
        self.sink.close()
        self._finished = Exit.from_returncode(self.returncode)
        return self._finished
