"""The task store's files: an fsynced append-only journal and a JSON snapshot.

`Journal` appends JSON lines from one writer thread with group commit, at two levels:
the lines appended in one turn of the event loop go to the thread together at the end
of the turn (one handoff), and everything handed over while an fsync is in progress
goes out in the next write + fsync. So many writers share one fsync and the event loop
never waits on the disk. `append(line, written)` calls `written` on the loop once the
line is on disk (fsynced), or with the error that kept it off.

Compaction needs two more steps, queued in order with the appends: `mark()` resolves
with the journal's byte length once everything queued before it is durable, and
`swap(offset)` drops the journal's first `offset` bytes (copy the rest to a temp file,
fsync, rename). Entries carry sequence numbers and the snapshot records the last one it
includes, so a crash between writing the snapshot and swapping the journal is harmless:
replay skips what the snapshot already holds.

The snapshot (`tasks.json`) is valid JSON for people and tools: one task per line
inside `{"version": 1, "seq": N, "tasks": [...]}`, written temp + fsync + rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiwgd.infra.durable import atomic_file, fsync_dir, write_all
from aiwgd.infra.jsonline import dumps

log = logging.getLogger("aiwgd.journal")

SNAPSHOT_VERSION = 1
YIELD_EVERY = 10  # snapshot records between voluntary GIL releases
# Lines per write + fsync (a turn's lines are never split); bounds the first one's wait.
MAX_BATCH = 4096


def write_snapshot(path: Path, seq: int, records: Iterable[dict[str, Any]]) -> int:
    """Write tasks.json atomically; returns the number of tasks written.

    Each record is encoded on its own so a thread running this lets the event loop in
    between records (one encoding of everything would hold the GIL throughout).
    """
    count = 0
    with atomic_file(path) as fh:
        fh.write(f'{{"version": {SNAPSHOT_VERSION}, "seq": {seq}, ')
        fh.write(f'"written_at": {time.time():.3f}, "tasks": [')
        sep = "\n"
        for rec in records:
            fh.write(sep)
            fh.write(dumps(rec).decode())  # a lone surrogate comes back escaped
            sep = ",\n"
            count += 1
            if count % YIELD_EVERY == 0:
                time.sleep(0)  # let the event loop and the writer thread have the GIL
        fh.write("\n]}\n")
    return count


def snapshot_in_thread(
    path: Path, seq: int, records: Iterable[dict[str, Any]]
) -> asyncio.Future[int]:
    """Run write_snapshot in a daemon thread; the future resolves when it is done.

    A daemon thread (not the default executor) so a fast exit need not wait for a
    rewrite of a large store: a rewrite cut short leaves only a temp file behind.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def settle(result: int | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result or 0)

    def work() -> None:
        try:
            result, exc = write_snapshot(path, seq, records), None
        except Exception as e:
            result, exc = None, e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=work, name="aiwgd-snapshot", daemon=True).start()
    return done


def remove_stale_temps(directory: Path) -> None:
    """Temp files of rewrites cut short by a crash: never valid, never needed."""
    for tmp in directory.glob(".tasks.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


@dataclass
class JournalRead:
    """What replay found in the journal file."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    good_bytes: int = 0  # length of the readable prefix; the rest is a torn tail
    torn_bytes: int = 0
    bad_lines: list[int] = field(default_factory=list)  # 1-based, damaged mid-file
    damaged_tail: bool = False  # the skipped tail was a whole line, not a torn one


def read_journal(path: Path) -> JournalRead:
    """Parse the journal; a torn last line (a crash mid-append) is reported, not fatal."""
    out = JournalRead()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    pos = 0
    lineno = 0
    size = len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        lineno += 1
        if end < 0:
            # No newline: the last append never finished, so it was never acknowledged.
            out.torn_bytes = size - pos
            break
        raw = data[pos:end]
        pos = end + 1
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                raise ValueError("not an entry")
        except ValueError:
            if pos >= size:
                # A whole last line that does not parse is damage, not a cut-short append:
                # skipped like a torn one, but the caller keeps a copy of the file.
                out.torn_bytes = len(raw) + 1
                out.damaged_tail = True
                break
            out.bad_lines.append(lineno)
            out.good_bytes = pos
            continue
        out.entries.append(entry)
        out.good_bytes = pos
    return out


class JournalError(OSError):
    """The journal could not be written (disk full, I/O error); `strerror` says why."""


# What a line's writer is told, on the event loop: None once the line is durable, else
# the error that kept it (and the rest of its batch) off the disk.
Written = Callable[[JournalError | None], None]


class Journal:
    """Append-only JSON lines, fsynced in groups by one writer thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # ("lines", [line], [Written]) or (control kind, arg, future); None: stop.
        self._queue: queue.SimpleQueue[tuple[str, Any, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._turn: tuple[list[bytes], list[Written]] | None = None  # not handed over yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fh: Any = None
        self._torn = False  # a failed batch may have left bytes beyond `size`
        self.fsyncs = 0
        self.lines = 0
        self.size = 0  # bytes of whole, durable lines: where the next batch starts

    # ---- loop side -------------------------------------------------------------------
    def open(self, truncate_to: int | None = None) -> None:
        """Open for appending (cutting a torn tail first) and start the writer thread."""
        self._loop = asyncio.get_running_loop()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if truncate_to is not None:
            os.ftruncate(fd, truncate_to)
            os.fsync(fd)
        self._fh = os.fdopen(fd, "ab", buffering=0)
        self.size = os.fstat(fd).st_size
        self._thread = threading.Thread(target=self._run, name="aiwgd-journal", daemon=True)
        self._thread.start()

    def append(self, line: bytes, written: Written) -> None:
        """Queue one line (ending in newline); `written(None)` once it is fsynced, or
        `written(JournalError)` if it was refused, nothing of it left in the file.

        `written` is called whatever became of whoever waits for it (a cancelled
        caller's change must still be accounted for). The lines appended in this turn
        of the loop go to the writer thread together once the turn is over.
        """
        if self._turn is None:
            assert self._loop is not None and self._thread is not None, "journal not open"
            self._turn = ([], [])
            self._loop.call_soon(self._hand_over)
        self._turn[0].append(line)
        self._turn[1].append(written)

    def _hand_over(self) -> None:
        if self._turn is not None:
            lines, told = self._turn
            self._turn = None
            self._queue.put(("lines", lines, told))

    def mark(self) -> asyncio.Future[int]:
        """Resolves with the journal length once everything queued before is durable."""
        return self._submit("mark", None)

    def swap(self, offset: int) -> asyncio.Future[None]:
        """Drop the first `offset` bytes (already in a durable snapshot)."""
        return self._submit("swap", offset)

    def _submit(self, kind: str, arg: Any) -> asyncio.Future[Any]:
        assert self._loop is not None and self._thread is not None, "journal not open"
        self._hand_over()  # lines appended before it go first
        fut = self._loop.create_future()
        self._queue.put((kind, arg, fut))
        return fut

    async def close(self) -> None:
        if self._thread is None:
            return
        self._hand_over()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # ---- writer thread ---------------------------------------------------------------
    def _on_loop(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed during a crash exit
            self._loop.call_soon_threadsafe(fn)

    def _resolve(
        self, fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None
    ) -> None:
        def settle() -> None:
            if fut.done():  # the waiter was cancelled; the step happened anyway
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._on_loop(settle)

    def _tell(self, told: list[Written], exc: JournalError | None) -> None:
        def tell() -> None:
            for written in told:
                try:
                    written(exc)
                except Exception:  # one writer's bug must not keep the others waiting
                    log.exception("journal write callback failed")

        self._on_loop(tell)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            lines: list[bytes] = []
            told: list[Written] = []
            control: list[tuple[str, Any, asyncio.Future[Any]]] = []
            # Take everything already queued: that is the group commit.
            while True:
                if item is None:
                    stop = True
                    break
                kind, arg, extra = item
                if kind == "lines":
                    lines.extend(arg)
                    told.extend(extra)
                else:
                    control.append(item)
                    break  # control items run after the lines queued before them
                if len(lines) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if lines:
                self._write(lines, told)
            for kind, arg, fut in control:
                self._control(kind, arg, fut)

    def _write(self, lines: list[bytes], told: list[Written]) -> None:
        data = b"".join(lines)
        try:
            self._cut_torn_tail()
            write_all(self._fh.fileno(), data)
            os.fsync(self._fh.fileno())
        except OSError as exc:
            # Not one line of the batch is acknowledged: cut the file back to where it
            # was, so no half line (or a whole line nobody was told of) stays behind.
            log.error("journal write failed", extra={"error": str(exc), "lines": len(lines)})
            self._torn = True
            self._cut_torn_tail(quiet=True)
            self._tell(told, JournalError(exc.errno, exc.strerror or str(exc)))
            return
        self.fsyncs += 1
        self.lines += len(lines)
        self.size += len(data)
        self._tell(told, None)

    def _cut_torn_tail(self, quiet: bool = False) -> None:
        """After a failed batch, the file ends at the last whole, acknowledged line.

        Truncating never needs space, so this only fails on a dying device; then the
        next batch tries again first and is refused until it works, since a line
        appended after a torn one would be unreadable.
        """
        if not self._torn:
            return
        try:
            os.ftruncate(self._fh.fileno(), self.size)
            os.fsync(self._fh.fileno())
        except OSError:
            if not quiet:
                raise
            log.error("cannot cut the journal back to its last whole line; retried first")
            return
        self._torn = False

    def _control(self, kind: str, arg: Any, fut: asyncio.Future[Any]) -> None:
        try:
            if kind == "mark":
                self._resolve(fut, self.size)
            elif kind == "swap":
                self._swap(int(arg))
                self._resolve(fut)
        except OSError as exc:
            log.error("journal compaction failed", extra={"error": str(exc)})
            self._resolve(fut, exc=JournalError(exc.errno, exc.strerror or str(exc)))

    def _swap(self, offset: int) -> None:
        self._cut_torn_tail()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(self.path, "rb") as src:
            src.seek(offset)
            rest = src.read(self.size - offset)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, rest)
            os.fsync(fd)
        except BaseException:
            # A full disk: the journal stays as it was, the partial copy goes.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._fh.close()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "ab", buffering=0)
        self.size = len(rest)
