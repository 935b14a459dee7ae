"""A child's output: raw bytes into a capped log file that keeps the head and the tail,
plus a bounded text tail for the store.

The end of a long output is what people need (a test summary, an agent's answer), so
a log over its cap keeps its head and each attempt's tail (the last min(cap / 2,
MAX_KEEP) bytes), and says how many bytes were cut in between. The log file is
append-only, so `task.logs` readers and followers can trust byte offsets: the head
(cap - tail) is written as it comes; past it, output is held in a ring file beside the
log (`<log>.tail`, the tail's size: bounded disk, no memory) and appended, after a line
saying how much was cut, when the attempt ends. A follower sees the head live, a line
saying the rest is held back, then the tail. Output that ends between the head and the
cap is all kept, after those lines.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import time
from collections.abc import Callable

from aiwgd.infra.durable import write_all

log = logging.getLogger("aiwgd.output")

DEFAULT_LOG_CAP = 10 * 1024 * 1024
DEFAULT_TAIL_BYTES = 16 * 1024
MAX_KEEP = 1024 * 1024  # a test summary or an agent's answer fits many times over
COPY_CHUNK = 64 * 1024


def ring_path(log_path: str) -> str:
    """Where the held-back tail of `log_path` waits while its attempt runs."""
    return log_path + ".tail"


class RingFile:
    """The last `size` bytes written to it, in a file overwritten in place."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.total = 0  # bytes ever written; the file holds the last min(total, size)
        # O_TRUNC: a ring left by a daemon that died mid-attempt is stale.
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if len(view) > self.size:  # only its last `size` bytes can survive
            self.total += len(view) - self.size
            view = view[-self.size :]
        pos = self.total % self.size
        first = view[: self.size - pos]
        _pwrite_all(self.fd, first, pos)
        if len(first) < len(view):
            _pwrite_all(self.fd, view[len(first) :], 0)
        self.total += len(view)

    def kept(self) -> int:
        return min(self.total, self.size)

    def copy_to(self, fd: int) -> None:
        """Append what the ring holds, oldest byte first, to `fd`."""
        if self.total <= self.size:
            spans = [(0, self.total)]
        else:
            start = self.total % self.size
            spans = [(start, self.size - start), (0, start)]
        for offset, length in spans:
            end = offset + length
            while offset < end:
                chunk = os.pread(self.fd, min(COPY_CHUNK, end - offset), offset)
                if not chunk:
                    raise OSError(f"{self.path} is shorter than it should be")
                write_all(fd, chunk)
                offset += len(chunk)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class OutputSink:
    """Raw output into a log capped to its head and tail, plus a bounded text tail.

    Past the cap the pipe is still drained, so the child never blocks on a full pipe.
    The text tail is decoded incrementally: a multi-byte character split across two
    reads decodes whole; bytes that are not UTF-8 become U+FFFD.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        cap: int = DEFAULT_LOG_CAP,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        # A str, not a Path: on Python 3.12 every Path that is parsed interns its
        # parts for good, and each task's log name is new (a leak of ~55 bytes a task).
        self.path = None if path is None else os.fspath(path)
        self.on_data = on_data  # told after each chunk is written (log followers)
        # When the child last wrote (monotonic; the start until then): `no_output_s`.
        self.last_output_mono = time.monotonic()
        self.cap = cap
        # The tail is small next to a large cap: output that fits the cap is then
        # streamed live, as it comes, up to the last megabyte.
        self.keep = min(cap // 2, MAX_KEEP)  # each attempt's last bytes kept
        self.head_cap = cap - self.keep  # the file's first bytes (attempts share them)
        self.tail_bytes = tail_bytes
        self.written = 0  # bytes in the log file, counted against the head
        self.held = 0  # bytes of this attempt past the head (the ring keeps the last)
        self.dropped = 0  # of those, how many were cut (known at close)
        self._ring: RingFile | None = None
        self._ring_error: str | None = None
        self._ends_line = True  # the log's last byte is a newline (or it is empty)
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
                    os.makedirs(os.path.dirname(self.path), exist_ok=True)
                    self._fd = os.open(self.path, flags, 0o600)
                # A retry appends to the same file: the head is for the whole file.
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
        self.last_output_mono = time.monotonic()
        self._add_tail(self._decoder.decode(data))
        if not self._open():
            return
        room = max(0, self.head_cap - self.written)
        # Followers wake only when the file grew: held-back output adds nothing to it.
        grew = room > 0 or not self.held
        if room:
            head = data[:room]
            self._write(head)
            self.written += len(head)
        if len(data) > room:
            self._hold(memoryview(data)[room:])
        if grew and self.on_data is not None:
            self.on_data()

    def close(self) -> None:
        self._can_open = False
        self._add_tail(self._decoder.decode(b"", final=True))
        if self.held and self._fd is not None:
            self._write_held()
        if self._ring is not None:
            self._ring.discard()
            self._ring = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def tail(self) -> str:
        return self._tail

    def _hold(self, data: memoryview) -> None:
        """Output past the head: into the ring, whose last bytes the log gets at close."""
        if not self.held:
            self._write(
                f"{'' if self._ends_line else chr(10)}[aiwgd] log cap of {self.cap} bytes: "
                f"output past the first {self.head_cap} bytes is held back; its last "
                f"{self.keep} bytes are written here when the attempt ends\n".encode()
            )
            if self.path is not None and self.keep:
                try:
                    self._ring = RingFile(ring_path(self.path), self.keep)
                except OSError as exc:
                    self._ring_failed(exc)
        self.held += len(data)
        if self._ring is not None:
            try:
                self._ring.write(data)
            except OSError as exc:
                self._ring_failed(exc)

    def _ring_failed(self, exc: OSError) -> None:
        # A full disk loses the held-back tail, never the task: keep draining the pipe.
        log.error(
            "cannot keep the task log's tail", extra={"path": str(self.path), "error": str(exc)}
        )
        self._ring_error = str(exc)
        if self._ring is not None:
            self._ring.discard()
            self._ring = None

    def _write_held(self) -> None:
        assert self._fd is not None
        kept = self._ring.kept() if self._ring is not None else 0
        self.dropped = self.held - kept
        if self._ring_error is not None:
            note = (
                f"[aiwgd] {self.held} bytes of output past the cap were lost: {self._ring_error}\n"
            )
        elif self.dropped:
            note = f"[aiwgd] {self.dropped} bytes of output cut; the last {kept} bytes follow\n"
        else:
            note = f"[aiwgd] nothing was cut; the {kept} held-back bytes follow\n"
        self._write(note.encode())
        if self._ring is None or self._fd is None:
            return
        try:
            self._ring.copy_to(self._fd)
        except OSError as exc:
            log.error("cannot write task log", extra={"path": str(self.path), "error": str(exc)})

    def _write(self, data: bytes | memoryview) -> None:
        if self._fd is None or not data:
            return
        raw = bytes(data)
        try:
            write_all(self._fd, raw)
        except OSError as exc:
            # A full disk loses log output, never the task: keep draining the pipe.
            log.error("cannot write task log", extra={"path": str(self.path), "error": str(exc)})
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            return
        self._ends_line = raw.endswith(b"\n")

    def _add_tail(self, text: str) -> None:
        if not text or self.tail_bytes <= 0:
            # 0 keeps no tail (a slice [-0:] would keep everything).
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


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        if written <= 0:
            raise OSError(f"a write to fd {fd} took no bytes")
        data, offset = data[written:], offset + written
