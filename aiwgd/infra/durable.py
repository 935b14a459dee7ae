"""Crash-safe file primitives: atomic replace, fsynced append, private dirs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aiwgd.config.load import write_atomic

__all__ = ["append_line", "ensure_private_dir", "write_atomic", "write_json_atomic"]


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and force it to mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def append_line(fh: Any, line: str, sync: bool = True) -> None:
    """Append one line and (by default) fsync, so an acknowledged write survives a crash."""
    fh.write(line if line.endswith("\n") else line + "\n")
    fh.flush()
    if sync:
        os.fsync(fh.fileno())
