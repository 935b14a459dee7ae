"""A child's output: raw bytes into a capped log file, plus a bounded text tail."""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("aiwgd.output")

DEFAULT_LOG_CAP = 10 * 1024 * 1024
DEFAULT_TAIL_BYTES = 16 * 1024


class OutputSink:
    """Raw output into a capped log file, plus a bounded tail decoded without breaking.

    The log keeps the bytes as they came; beyond `cap` a marker line is written and the
    rest is dropped (but still counted, and the pipe still drained so the child never
    blocks on a full pipe). The tail is text: an incremental UTF-8 decoder means a
    multi-byte character split across two reads decodes whole; bytes that are not
    UTF-8 become U+FFFD.
    """

    def __init__(
        self,
        path: Path | None,
        cap: int = DEFAULT_LOG_CAP,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        on_data: Callable[[], None] | None = None,
    ) -> None:
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
                log.error("cannot open task log", extra={"path": str(self.path), "error": str(exc)})
        return self._fd is not None

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
