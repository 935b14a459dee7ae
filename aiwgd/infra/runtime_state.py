"""`.aiwg/daemon/runtime.json`: small facts that must survive a restart.

The file holds one top-level section per owner ("schedule": last fire times and jobs
switched off by RPC; "automation": rules switched off by RPC). Each owner reads and
replaces only its own section. Writes are synchronous read-modify-write with an atomic
replace, done on the event loop thread, so two owners in the same daemon never
interleave and a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from aiwgd.infra.durable import write_json_atomic

log = logging.getLogger("aiwgd.runtime")

__all__ = ["read_section", "write_section"]


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        # Never refuse to start over a damaged state file: keep it for a human and go on
        # with defaults (what is lost is only last-fire times and RPC on/off switches).
        aside = path.with_name(path.name + ".bad")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        log.error(
            "runtime state unreadable; starting without it",
            extra={"file": str(path), "kept_as": str(aside), "error": str(exc)},
        )
        return {}
    return data if isinstance(data, dict) else {}


def read_section(path: Path, key: str) -> dict[str, Any]:
    """The owner's section (an empty dict when absent or unreadable)."""
    section = _read_all(path).get(key)
    return section if isinstance(section, dict) else {}


def write_section(path: Path, key: str, value: dict[str, Any]) -> None:
    """Replace one section, keeping the others; raises OSError if the disk refuses."""
    data = _read_all(path)
    data[key] = value
    write_json_atomic(path, data)
