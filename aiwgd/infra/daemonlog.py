"""Structured logging: JSON lines to a size-rotated file, and to stderr either the
readable form or the same JSON lines (`daemon.log.format`).

Callers attach fields with `extra={...}`; every non-standard record attribute becomes a
key in the JSON object, so `log.info("task started", extra={"task_id": t})` is enough.

stderr is text by default: that is what a terminal and `docker logs` show a person,
and the file always has the JSON. `"format": "json"` is for a log collector reading a
container's or a unit's stderr. A reload switches the format at once.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": HumanFormatter, "json": JsonFormatter}


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler, told apart from other stream handlers on a reload."""


def setup(
    log_file: Path,
    level: str,
    max_bytes: int,
    backups: int,
    stderr: bool,
    stderr_format: str = "text",
) -> None:
    """Install the daemon's handlers on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    fh = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    fh.setFormatter(JsonFormatter())
    root.addHandler(fh)
    if stderr:
        sh = _Stderr(sys.stderr)
        sh.setFormatter(FORMATTERS[stderr_format]())
        root.addHandler(sh)
    root.setLevel(LEVELS[level])


def reconfigure(level: str, max_bytes: int, backups: int, stderr_format: str = "text") -> None:
    """Apply a reloaded log section without reopening anything."""
    root = logging.getLogger()
    root.setLevel(LEVELS[level])
    for handler in root.handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            handler.maxBytes = max_bytes
            handler.backupCount = backups
        elif isinstance(handler, _Stderr) and not isinstance(
            handler.formatter, FORMATTERS[stderr_format]
        ):
            handler.setFormatter(FORMATTERS[stderr_format]())


class Problems(logging.Handler):
    """Notes, while it is attached (the shutdown), what makes a stop unclean: every
    error, and every warning of a SIGKILL (its `signal` field).

    The stop ladder logs "killing child" (signal=SIGKILL) whenever something outlived
    its grace period or a fast stop skipped it; a subsystem that fails to stop logs an
    error, and so does a write that fails. Other warnings (an escaped process that
    SIGTERM stopped in time) do not make a stop unclean.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._levels: dict[logging.Handler, int] = {}
        self._root_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or getattr(record, "signal", None) == "SIGKILL":
            self.messages.append(record.getMessage())

    def __enter__(self) -> Problems:
        root = logging.getLogger()
        self._root_level = root.level
        if root.level > logging.WARNING:
            # `level: error` must not hide a SIGKILL from us: warnings reach this
            # handler, the others keep dropping them.
            for handler in root.handlers:
                self._levels[handler] = handler.level
                handler.setLevel(max(handler.level, root.level))
            root.setLevel(logging.WARNING)
        root.addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._root_level)
        for handler, level in self._levels.items():
            handler.setLevel(level)
        self._levels.clear()
