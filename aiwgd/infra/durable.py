"""Crash-safe file primitives, in one place: atomic replace (temp + fsync + rename +
directory fsync), fsynced appends, private directories.

Standard library only: the config package (shared with the CLI) writes through here.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "append_line",
    "atomic_file",
    "ensure_private_dir",
    "fsync_dir",
    "write_all",
    "write_atomic",
    "write_json_atomic",
]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, mode: int = 0o600, durable: bool = True) -> Iterator[TextIO]:
    """A temp file beside `path` that replaces it only if the block ends cleanly.

    A reader never sees half a file; an error (or a crash) leaves the old one. The temp
    name is `.<name>.<pid>.tmp`, so start-up can sweep what a crash left. Not `durable`:
    no fsyncs, for a snapshot rewritten all the time (after a power cut the old one, or
    none, is as good); the rename still keeps readers from half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_atomic(path: Path, text: str, mode: int = 0o600, durable: bool = True) -> None:
    with atomic_file(path, mode, durable) as fh:
        fh.write(text)


def write_json_atomic(path: Path, data: Any, durable: bool = True) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n", durable=durable)


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and force it to mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` or raise: one write may take only part (a full disk,
    a file size limit) and says nothing; the next one raises with the reason."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # never for a regular file, but never loop on it either
            raise OSError(errno.EIO, "the write took no bytes")
        view = view[written:]


def append_line(fh: Any, line: str, sync: bool = True) -> None:
    """Append one line and (by default) fsync, so an acknowledged write survives a crash."""
    fh.write(line if line.endswith("\n") else line + "\n")
    fh.flush()
    if sync:
        os.fsync(fh.fileno())
