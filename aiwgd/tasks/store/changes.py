"""How the task store's changes reach disk: numbered journal lines, then compaction.

On disk (config/paths.py): `.aiwg/daemon/tasks.json`, a snapshot of all tasks that
people can read, and `.aiwg/daemon/tasks.journal`, fsynced JSON lines of the changes
since (aiwgd/journal.py). A change costs one appended line, whatever the number of
stored tasks; the snapshot is rewritten in a background thread when the journal
reaches `tasks.compact_every` entries (or JOURNAL_MAX_BYTES), after a start-up that
replayed entries, and at shutdown. Journal entries (`seq` numbered, holding absolute
values) are idempotent to replay, so a crash at any moment loses nothing that was
acknowledged.

`StoreLog` is used by aiwgd.store.TaskStore only: the store decides what a change is
(and applies it in memory); this module numbers it, makes it durable and compacts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from typing import Any

from aiwgd import errors
from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.infra.jsonline import dumps
from aiwgd.tasks.store.index import TaskIndex
from aiwgd.tasks.store.journal import Journal, JournalError, snapshot_in_thread
from aiwgd.tasks.store.recovery import Loaded

# The store's logger: these records are the store's, whichever module writes them.
log = logging.getLogger("aiwgd.store")

JOURNAL_MAX_BYTES = 64 * 1_048_576  # compact sooner when entries are large (long prompts)


def _line(entry: dict[str, Any]) -> bytes:
    """One journal line; raises (TypeError) before anything changes if not JSON-able."""
    return dumps(entry, newline=True)


class StoreLog:
    """The journal, its sequence numbers, and rewriting tasks.json from the index."""

    def __init__(
        self,
        paths: Paths,
        index: TaskIndex,
        cfg: TasksSection,
        on_error: Callable[[str, str | None], None],
    ) -> None:
        self.paths = paths
        self.index = index  # every task, in creation order (the store's)
        self.cfg = cfg  # the store keeps it current on reload
        self.on_error = on_error  # (kind, text): the store's errors; None clears one
        self.seq = 0
        self.journal = Journal(paths.tasks_journal)
        self.entries = 0  # lines in the journal file since the last compaction
        self.refused = 0  # lines the disk refused (and their changes undone)
        self.compaction_failed = False
        # A task whose change is on its way to disk: who waits in settled() for it.
        self.inflight: dict[str, list[asyncio.Future[None]]] = {}
        self.compacting: asyncio.Task[None] | None = None
        self._compact_lock = asyncio.Lock()
        self.writing: asyncio.Future[int] | None = None  # the snapshot thread's result
        self.compactions = 0
        self.last_compaction: dict[str, Any] | None = None

    def open(self, loaded: Loaded) -> None:
        """Continue from what start-up loaded: its last seq and journal."""
        self.seq = loaded.seq
        self.entries = loaded.journal_entries
        self.journal.open(truncate_to=loaded.truncate_to)

    def status(self) -> dict[str, Any]:
        return {"entries": self.entries, "bytes": self.journal.size, "fsyncs": self.journal.fsyncs}

    # ---- writes ----------------------------------------------------------------------
    def line(self, entry: dict[str, Any]) -> bytes:
        """The next numbered line for `entry`; build it before changing anything in memory."""
        return _line({"seq": self.seq + 1, **entry})

    def commit(
        self, line: bytes, key: str | None = None, undo: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        """Number and queue `line` (from `line()`) now, so journal order is call order;
        the future resolves once it is on disk.

        If the disk refuses it (the journal cuts a failed batch back to its last whole
        line), `undo` (which puts memory back as it was before the change) runs, then
        the future fails with Unavailable. While it is on its way, `settled(key)` waits
        for it. A refused line's sequence number is not reused; replay never needs them
        contiguous.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watchers: list[asyncio.Future[None]] = []  # settled(key) callers

        def written(exc: JournalError | None) -> None:
            # Called by the journal even if the caller was cancelled meanwhile: its
            # change is still counted (or undone) before anyone in settled() goes on.
            try:
                self._written(exc)
                if key is not None and self.inflight.get(key) is watchers:
                    del self.inflight[key]
                if exc is not None and undo is not None:
                    undo()
            finally:
                if not waiter.done():
                    if exc is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(self._unavailable(exc))
                for fut in watchers:
                    if not fut.done():
                        fut.set_result(None)

        self.seq += 1
        self.entries += 1
        self.journal.append(line, written)
        if key is not None:
            self.inflight[key] = watchers
        if self.entries >= self.cfg.compact_every or self.journal.size >= JOURNAL_MAX_BYTES:
            self.schedule_compaction()
        return waiter

    def _unavailable(self, exc: JournalError) -> errors.Unavailable:
        return errors.Unavailable(
            f"the task store cannot write to disk: {self.journal.path}: "
            f"{exc.strerror or exc}; nothing was changed (free some space and retry)",
            {"file": str(self.journal.path), "errno": exc.errno},
        )

    def _written(self, exc: JournalError | None) -> None:
        if exc is None:
            self.on_error("journal", None)  # the disk takes writes again
            if self.compaction_failed:
                self.schedule_compaction()  # and tasks.json can catch up now
            return
        self.entries -= 1
        self.refused += 1
        reason = exc.strerror or str(exc)
        self.on_error("journal", f"journal write failed: {self.journal.path}: {reason}")

    async def settled(self, key: str) -> None:
        """Wait until no change of `key` is on its way to disk (no yield if none is)."""
        while (watchers := self.inflight.get(key)) is not None:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            watchers.append(fut)
            await fut

    # ---- compaction ------------------------------------------------------------------
    async def compact(self) -> None:
        """Rewrite tasks.json from memory and drop the journal lines it now holds."""
        async with self._compact_lock:
            t0 = time.monotonic()
            if self.writing is not None:
                # A rewrite whose caller was cancelled may still be running: two at once
                # could rename an older snapshot over a newer one.
                await asyncio.wait([self.writing])
                if not self.writing.cancelled():
                    self.writing.exception()  # retrieved: it was logged when it failed
                self.writing = None
            # Copy-on-write tasks: this list is exactly the state at `seq`, and the mark
            # is queued in the same step, so the journal before `offset` holds exactly
            # the changes up to `seq`.
            seq, tasks, entries = self.seq, list(self.index.tasks.values()), self.entries
            refused = self.refused
            offset = await self.journal.mark()
            if self.refused != refused:
                # Memory held a change the disk then refused (undone since): this list
                # must not become tasks.json. Everything stays in the journal.
                raise JournalError(
                    errno.EAGAIN, "a change was refused meanwhile; compaction will retry"
                )
            records = (t.to_dict() for t in tasks)
            self.writing = snapshot_in_thread(self.paths.tasks_file, seq, records)
            count = await asyncio.shield(self.writing)
            self.writing = None
            await self.journal.swap(offset)
            self.entries -= entries
            self.compactions += 1
            self.last_compaction = {
                "at": time.time(),
                "tasks": count,
                "seq": seq,
                "duration_s": round(time.monotonic() - t0, 3),
            }
            log.debug("task store compacted", extra=self.last_compaction)

    def schedule_compaction(self) -> None:
        if self.compacting is None or self.compacting.done():
            self.compacting = asyncio.create_task(self._compact_logged(), name="store-compact")

    async def _compact_logged(self) -> None:
        try:
            await self.compact()
        except Exception as exc:
            self.compaction_failed = True
            self.on_error("compaction", f"compaction failed: {exc}")
            log.exception("task store compaction failed")
        else:
            self.compaction_failed = False
            self.on_error("compaction", None)

    async def final_compaction(self, fast: bool) -> None:
        """At stop: end a background rewrite, then bring tasks.json up to date."""
        if self.compacting is not None:
            if fast:
                # A rewrite cut short leaves the old tasks.json or a complete new one
                # (rename is atomic) and the journal still holds every change after it;
                # its thread is a daemon thread, so it does not hold up the exit.
                self.compacting.cancel()
            await asyncio.wait([self.compacting])  # its outcome is logged by itself
        # The journal alone is enough to recover, but a current tasks.json is what
        # users read; a fast stop (second signal) skips this rewrite.
        if self.entries and not fast:
            try:
                await self.compact()
            except Exception:
                log.exception("final compaction failed; the journal keeps every change")
