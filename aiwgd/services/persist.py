"""services.json: each service's restart history and the processes it runs, and the
recovery that stops what a killed daemon's services left running.

The file is rewritten atomically (write-temp, fsync, rename) after starts and exits.
A daemon killed with -9 leaves its services running, re-parented away from us: the
next start stops them (the recorded pid/pgid/create time, and every process carrying
a service mark of this root) before starting anew. They are never silently adopted:
what was stopped is logged, kept in the status, and added to each service's history.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import Any

from aiwgd.infra.durable import write_json_atomic
from aiwgd.procs import marks
from aiwgd.procs.tree import kill_leftovers
from aiwgd.services.model import HistoryEntry
from aiwgd.services.plan import ROOT_MARK, SERVICE_MARK

log = logging.getLogger("aiwgd.services")

HISTORY = 100
Histories = dict[str, deque[HistoryEntry]]


def load(path: Path) -> tuple[Histories, list[dict[str, Any]]]:
    """(history per service, processes recorded as running); empty when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        log.error("cannot read services.json; starting without history", extra={"error": str(exc)})
        return {}, []
    hist: Histories = {}
    raw_hist = data.get("history") if isinstance(data, dict) else None
    for name, entries in (raw_hist or {}).items():
        if isinstance(entries, list):
            parsed = [HistoryEntry.from_json(e) for e in entries if isinstance(e, dict)]
            hist[name] = deque((e for e in parsed if e is not None), maxlen=HISTORY)
    procs = data.get("processes") if isinstance(data, dict) else None
    return hist, [p for p in (procs or []) if isinstance(p, dict)]


def save(path: Path, hist: Histories, processes: list[dict[str, Any]]) -> None:
    data = {
        "history": {name: [e.to_json() for e in entries] for name, entries in hist.items()},
        "processes": processes,
    }
    try:
        write_json_atomic(path, data)
    except OSError as exc:  # a full disk must not stop the services
        log.error("cannot write services.json", extra={"error": str(exc)})


def stop_previous(root: Path, recorded: list[dict[str, Any]], grace: float) -> list[dict[str, Any]]:
    """Stop the previous daemon run's service processes (blocking: call from a thread).

    Returns what was stopped: [{instance, pid, name, how}].
    """

    def scan() -> list[marks.MarkedProcess]:
        return marks.find_marked(SERVICE_MARK, where={ROOT_MARK: str(root)})

    out: list[dict[str, Any]] = []
    found = scan()
    if found:
        report = marks.stop_marked(found, grace, rescan=scan)
        for p in report.terminated:
            out.append({"instance": p.value, "pid": p.pid, "name": p.name, "how": "SIGTERM"})
        for p in report.killed:
            out.append({"instance": p.value, "pid": p.pid, "name": p.name, "how": "SIGKILL"})
        for p in report.survivors:
            out.append({"instance": p.value, "pid": p.pid, "name": p.name, "how": "survived"})
    seen = {o["pid"] for o in out}
    # One that replaced its environment carries no mark: its recorded group still names it.
    for rec in recorded:
        pgid, created = rec.get("pgid"), rec.get("create_time")
        if isinstance(pgid, int) and isinstance(created, (int, float)):
            for pid in kill_leftovers(pgid, float(created)):
                if pid not in seen:
                    out.append(
                        {
                            "instance": rec.get("instance", "?"),
                            "pid": pid,
                            "name": "?",
                            "how": "SIGKILL",
                        }
                    )
    if out:
        log.warning(
            "stopped service processes a previous daemon run left", extra={"processes": out}
        )
    return out
