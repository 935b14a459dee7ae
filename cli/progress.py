"""What a long command waits for, on stderr (stdlib only).

On a terminal (stderr a TTY, TERM not "dumb") one line that a spinner keeps redrawing
with carriage returns, cleared at the end so the command's final line stands alone; in
colour unless NO_COLOR is set. Anywhere else (a pipe, a CI log) plain lines: one per
step, no carriage return, no escape sequence. `--json` turns it off (Mode.OFF).

A step's text may be a callable, asked again at every tick: a wait that changes
meaning on its own (a grace period running out) says so without the caller waking up.
`detail` is for the terminal only (elapsed times, counters): plain lines would repeat
it every tick, so they carry the text alone, written when it changes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import TextIO

Text = str | Callable[[], str]

TICK_S = 0.1  # spinner frame and re-evaluation interval
FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
CYAN, DIM, RESET = "\x1b[36m", "\x1b[2m", "\x1b[0m"


class Mode(StrEnum):
    TTY = "tty"
    PLAIN = "plain"
    OFF = "off"


def mode_for(stream: TextIO, enabled: bool = True) -> Mode:
    if not enabled:
        return Mode.OFF
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        tty = False
    return Mode.TTY if tty and os.environ.get("TERM") != "dumb" else Mode.PLAIN


def _frames(stream: TextIO) -> str:
    try:
        FRAMES.encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII_FRAMES
    return FRAMES


def _columns(stream: TextIO) -> int:
    try:
        # A pseudo-terminal nobody sized says 0.
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def seconds(s: float) -> str:
    """An elapsed time as a person reads it: 4.2s, 1m05s."""
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


class Progress:
    """A step reporter; use as a context manager (the spinner thread ends with it).

    `plain_after_s`: on a pipe, a step is written only once it has lasted this long,
    so a quick command leaves its output (and its one-line error) as it was, while a
    step that hangs still says what it waits for.
    """

    def __init__(
        self,
        mode: Mode | None = None,
        stream: TextIO | None = None,
        plain_after_s: float = 0.0,
        shown: str | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.mode = mode_for(self.stream) if mode is None else mode
        self.plain_after_s = plain_after_s
        self.color = not os.environ.get("NO_COLOR")
        self._frames = _frames(self.stream)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._text: Text = ""
        self._detail: Callable[[], str] | None = None
        self._since = time.monotonic()
        self._t0 = self._since
        self._printed = shown  # the plain line last written (the caller's own, at first)
        self._width = 0  # of the terminal line drawn last
        self._frame = 0

    @classmethod
    def unless(
        cls, as_json: bool, plain_after_s: float = 0.0, shown: str | None = None
    ) -> Progress:
        """A reporter on stderr, off for --json (its output is for programs)."""
        mode = Mode.OFF if as_json else None
        return cls(mode, plain_after_s=plain_after_s, shown=shown)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the caller's side -------------------------------------------------------------
    def step(self, text: Text, detail: Callable[[], str] | None = None) -> None:
        """The step now waited for; drawn (or written) at once where it can be."""
        if self.mode == Mode.OFF:
            return
        with self._lock:
            if text != self._text:
                self._since = time.monotonic()
            self._text, self._detail = text, detail
            self._draw()
        if self._thread is None and (
            self.mode == Mode.TTY or callable(text) or self.plain_after_s > 0
        ):
            self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._thread.start()

    def echo(self, line: str, stream: TextIO | None = None) -> None:
        """Print a line of the command's own output (stdout unless told) without
        mixing it into the spinner's line, which is drawn again below it."""
        with self._lock:
            self._clear()
            out = stream or sys.stdout
            try:
                out.write(line + "\n")
                out.flush()
            except (OSError, ValueError):
                pass
            if self.mode == Mode.TTY:
                self._draw()

    def close(self) -> None:
        """Stop the spinner and clear its line (plain lines stay: they are the record)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._clear()

    # -- drawing -----------------------------------------------------------------------
    def _clear(self) -> None:
        if self.mode == Mode.TTY and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                self._frame += 1
                self._draw()

    def _draw(self) -> None:
        text = self._text() if callable(self._text) else self._text
        if not text:
            return
        if self.mode == Mode.PLAIN:
            if text != self._printed and time.monotonic() - self._since >= self.plain_after_s:
                self._printed = text
                self._write(text + "\n")
            return
        extra = self._detail() if self._detail is not None else ""
        elapsed = seconds(time.monotonic() - self._t0)
        tail = f"{extra}  {elapsed}" if extra else f"  {elapsed}"
        frame = self._frames[self._frame % len(self._frames)]
        room = _columns(self.stream) - 3  # the frame, its space, the cursor's last column
        line = f"{text}{tail}"
        if len(line) > room:
            cut = "…" if self._frames is FRAMES else "~"
            line = line[: max(room - 1, 0)] + cut
        width = len(line) + 2
        pad = " " * max(self._width - width, 0)  # what the longer line before left
        if self.color:
            head, rest = line[: len(text)], line[len(text) :]
            line = f"{CYAN}{frame}{RESET} {head}{DIM}{rest}{RESET}"
        else:
            line = f"{frame} {line}"
        self._write(f"\r{line}{pad}")
        self._width = width

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: progress is not the job
            pass
