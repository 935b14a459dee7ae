"""A real full disk for tests: a small tmpfs mounted over a directory, and a filler file.

Mounting needs root (CI runs as root); where it is not allowed the test is skipped with
a one-line reason. tmpfs allocates whole pages, so once the filler has taken every free
page a write only goes on while it fits in the last page its file already holds: the
next one comes back short, then fails with ENOSPC, exactly as on a real full disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on `where` for the block; always unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full disk needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            # Something still holds a file there (a process the test failed to stop):
            # detach it now so the directory can be removed; the kernel frees it later.
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(where: Path) -> Path:
    """Take every free byte of the file system holding `where`; returns the filler."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) < size:
                        break  # short: the last free page is used up
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler
