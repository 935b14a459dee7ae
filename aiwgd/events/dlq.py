"""The dead-letter queue: events a subscriber failed on for the last time.

Kept in memory (bounded, oldest evicted first, evictions counted) and in
`.aiwg/daemon/dlq.jsonl`: each new entry is one fsynced appended line; removals and
compaction rewrite the whole file atomically (temp + fsync + rename). The file may run
up to 10% over the bound before it is compacted, so a steady stream of failures does not
rewrite it on every entry. File IO runs in a worker thread, one batch at a time, so a
burst of dead letters never stalls the event loop.

Lines are UTF-8 JSON, a lone surrogate (a file name that is not UTF-8) escaped as the
event log writes it. What could not be written is counted (`write_errors`) and the
reason is in status (`last_error`) until a later write succeeds; no failure of any kind
ends the writer, so later dead letters are still written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from aiwgd.infra.durable import write_all, write_atomic
from aiwgd.infra.jsonline import json_line

log = logging.getLogger("aiwgd.dlq")


def _slack(max_entries: int) -> int:
    return max(10, max_entries // 10)


class DeadLetters:
    def __init__(self, path: Path | None, max_entries: int) -> None:
        self.path = path
        self.max_entries = max_entries
        self.entries: list[dict[str, Any]] = []
        self.evicted = 0
        self.write_errors = 0  # writes (or single entries) that did not reach the file
        self.last_error: str | None = None  # cleared once a write succeeds again
        self._file_lines = 0
        self._pending: list[bytes] = []
        self._rewrite = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------
    def load(self) -> None:
        """Read the entries a previous run left; a damaged line is skipped and logged."""
        if self.path is None or not self.path.exists():
            return
        bad = 0
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                self._file_lines += 1
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, dict) or "id" not in entry or "event" not in entry:
                        raise ValueError("not a dead-letter entry")
                except ValueError:
                    bad += 1
                    continue
                self.entries.append(entry)
        if bad:
            log.warning(
                "skipped damaged lines in the dead-letter file",
                extra={"file": str(self.path), "lines": bad},
            )
        if len(self.entries) > self.max_entries:
            del self.entries[: len(self.entries) - self.max_entries]
        if bad or self._file_lines > len(self.entries):
            self._rewrite = True

    async def start(self) -> None:
        if self.path is not None and self._task is None:
            self._task = asyncio.create_task(self._writer(), name="dlq-writer")
            if self._rewrite:
                self._kick()

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def resize(self, max_entries: int) -> None:
        self.max_entries = max_entries
        if len(self.entries) > max_entries:
            self._evict()
            self._rewrite = True
            self._kick()

    # ---- entries -------------------------------------------------------------------
    def add(
        self,
        event: dict[str, Any],
        subscriber: str,
        error: str,
        attempts: int,
        replay_of: str | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": f"dl-{int(time.time()):x}-{secrets.token_hex(4)}",
            "event": event,
            "subscriber": subscriber,
            "error": error[:2000],
            "attempts": attempts,
            "time": time.time(),
        }
        if replay_of:
            entry["replay_of"] = replay_of
        self.entries.append(entry)
        self._evict()
        try:
            self._pending.append(json_line(entry))
        except (ValueError, TypeError, RuntimeError) as exc:  # not serialisable
            self._failed(f"dead letter {entry['id']} cannot be written as JSON: {exc}")
        else:
            self._kick()
        return entry

    def _evict(self) -> None:
        over = len(self.entries) - self.max_entries
        if over > 0:
            del self.entries[:over]
            self.evicted += over
            log.warning(
                "dead-letter queue full; oldest entries dropped",
                extra={"dropped": over, "max": self.max_entries},
            )

    def get(self, entry_id: str) -> dict[str, Any] | None:
        for entry in self.entries:
            if entry["id"] == entry_id:
                return entry
        return None

    def select(
        self, subscriber: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        found = [e for e in self.entries if subscriber is None or e["subscriber"] == subscriber]
        return found[-limit:] if limit else found

    async def remove(self, ids: list[str]) -> int:
        """Drop these entries and persist at once (the caller acts on the answer)."""
        wanted = set(ids)
        before = len(self.entries)
        self.entries = [e for e in self.entries if e["id"] not in wanted]
        removed = before - len(self.entries)
        if removed:
            self._rewrite = True
            self._kick()
            await self.flush()
        return removed

    async def purge(self, ids: list[str] | None = None) -> int:
        if ids is None:
            return await self.remove([e["id"] for e in self.entries])
        return await self.remove(ids)

    def status(self) -> dict[str, Any]:
        return {
            "count": len(self.entries),
            "max": self.max_entries,
            "evicted": self.evicted,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
        }

    def _failed(self, reason: str) -> None:
        self.write_errors += 1
        first = self.last_error is None
        self.last_error = reason
        if first or self.write_errors % 1000 == 0:  # a full disk fails every write
            log.error(
                "cannot write the dead-letter file; entries are kept in memory",
                extra={"file": str(self.path), "error": reason},
            )

    # ---- persistence ---------------------------------------------------------------
    def _kick(self) -> None:
        if self.path is None or self._task is None:
            return
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything added or removed so far is on disk."""
        if self._task is not None and not self._task.done():
            await self._idle.wait()

    async def _writer(self) -> None:
        assert self.path is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._rewrite:
                try:
                    if self._rewrite:
                        # A rewrite holds every entry, so pending appends are in it too.
                        self._rewrite, self._pending = False, []
                        snapshot = list(self.entries)
                        skipped = await asyncio.to_thread(self._write_all, snapshot)
                        self._file_lines = len(snapshot) - len(skipped)
                        if skipped:
                            self._failed(f"dead letters {skipped[:3]} cannot be JSON")
                        else:
                            self._written()
                    elif self._file_lines + len(self._pending) > self.max_entries + _slack(
                        self.max_entries
                    ):
                        self._rewrite = True  # over the bound and its slack: compact
                    else:
                        lines, self._pending = self._pending, []
                        await asyncio.to_thread(self._append, lines)
                        self._file_lines += len(lines)
                        self._written()
                except Exception as exc:  # any failure: the writer must outlive it
                    # Keep running on memory; the next write rewrites the whole file.
                    self._rewrite = True
                    if isinstance(exc, OSError):
                        self._failed(f"cannot write {self.path}: {exc.strerror or exc}")
                    else:
                        log.exception("dead-letter writer failed", extra={"file": str(self.path)})
                        self._failed(f"cannot write {self.path}: {type(exc).__name__}: {exc}")
                    break
            if not self._wake.is_set():
                self._idle.set()

    def _written(self) -> None:
        if self.last_error is not None:
            log.warning("the dead-letter file is written again", extra={"file": str(self.path)})
            self.last_error = None

    def _append(self, lines: list[bytes]) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_all(self, entries: list[dict[str, Any]]) -> list[str]:
        """Replace the file with `entries`; answer the ids that cannot be JSON (left out)."""
        assert self.path is not None
        lines: list[bytes] = []
        skipped: list[str] = []
        for entry in entries:
            try:
                lines.append(json_line(entry))
            except (ValueError, TypeError, RuntimeError):
                skipped.append(str(entry.get("id")))
        write_atomic(self.path, b"".join(lines).decode())  # json_line: valid UTF-8
        return skipped
