"""Start-up: loading tasks.json and replaying the journal, keeping whatever is damaged.

A snapshot that does not parse is renamed `tasks.json.damaged-<time>` (never deleted)
and whatever can still be read is salvaged: the file holds one task per line, so the
lines that are still whole JSON are loaded, and every id-looking string raises the id
floor so no id in the damaged file is ever handed out again.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiwgd.config.paths import Paths
from aiwgd.infra.durable import fsync_dir
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.ids import TaskIds
from aiwgd.tasks.store.index import TaskIndex
from aiwgd.tasks.store.journal import read_journal

log = logging.getLogger("aiwgd.snapshot")

_ID = re.compile(rb'"id"\s*:\s*"([0-9a-z]{3,40})"')
_SEQ = re.compile(rb'"seq"\s*:\s*(\d+)')


@dataclass
class Snapshot:
    tasks: list[Task] = field(default_factory=list)
    seq: int = 0  # the last journal entry the snapshot includes
    salvaged_ids: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def move_aside(path: Path, copy: bool = False) -> Path:
    """Rename (or copy) `path` to `<name>.damaged-<time>`, never overwriting one."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    if copy:
        shutil.copyfile(path, dest)
        os.chmod(dest, 0o600)
    else:
        os.rename(path, dest)
    fsync_dir(path.parent)
    return dest


def _task(rec: Any) -> Task:
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or not rec["id"]:
        raise ValueError("not a task record")
    return Task.from_dict(rec)


def _load_lines(path: Path) -> Snapshot | None:
    """The fast path for the layout write_snapshot() makes: one task per line.

    Each record is parsed and turned into a Task on its own, so the whole parse tree of
    a large store is never in memory at once. Anything unexpected returns None and the
    caller parses the file as plain JSON (which also diagnoses damage).
    """
    tasks: list[Task] = []
    with path.open("rb") as fh:
        header = fh.readline()
        if not header.startswith(b"{") or not header.rstrip().endswith(b"["):
            return None
        try:
            head = json.loads(header.rstrip() + b"]}")
            seq = head["seq"]
        except (ValueError, KeyError, TypeError):
            return None
        if head.get("tasks") != [] or not isinstance(seq, int):
            return None
        ended = False
        expect_more = True
        for line in fh:
            if ended:
                if line.strip():
                    return None  # text after the end: let the JSON parser judge
                continue
            text = line.rstrip(b"\r\n")
            if text == b"]}":
                ended = True
                continue
            if not expect_more:
                return None  # a record followed the last one without a comma
            expect_more = text.endswith(b",")
            try:
                tasks.append(_task(json.loads(text[:-1] if expect_more else text)))
            except (TypeError, ValueError):
                return None
        if not ended or (expect_more and tasks):
            return None
    return Snapshot(tasks, seq, report={"snapshot": "ok", "snapshot_tasks": len(tasks)})


def load_snapshot(path: Path) -> Snapshot:
    """Read tasks.json; a damaged file is moved aside and salvaged, never fatal."""
    try:
        fast = _load_lines(path)
    except FileNotFoundError:
        return Snapshot(report={"snapshot": "missing"})
    except OSError:
        fast = None  # reported below, by the plain read
    if fast is not None:
        return fast
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Snapshot(report={"snapshot": "missing"})
    problem = ""
    tasks: list[Task] = []
    bad = 0
    seq = 0
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
            raise ValueError('not an object with a "tasks" list')
        seq = doc.get("seq", 0)
        if not isinstance(seq, int):
            raise ValueError('"seq" is not an integer')
        for rec in doc["tasks"]:
            try:
                tasks.append(_task(rec))
            except (TypeError, ValueError):
                bad += 1
        if bad:
            problem = f"{bad} unreadable task record(s)"
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"not valid JSON ({exc})"
    if not problem:
        return Snapshot(tasks, seq, report={"snapshot": "ok", "snapshot_tasks": len(tasks)})
    if not tasks:
        tasks, seq = _salvage(raw)
    ids = [m.decode() for m in _ID.findall(raw)]
    dest = move_aside(path)
    log.error(
        "damaged task snapshot moved aside; salvaged what was readable",
        extra={"file": str(dest), "problem": problem, "salvaged": len(tasks)},
    )
    report = {
        "snapshot": "damaged",
        "damaged_file": str(dest),
        "problem": problem,
        "salvaged_tasks": len(tasks),
    }
    return Snapshot(tasks, seq, ids, report)


def _salvage(raw: bytes) -> tuple[list[Task], int]:
    """Tasks from the lines still whole, and the header's seq if it survived."""
    tasks: list[Task] = []
    for line in raw.splitlines():
        text = line.strip().rstrip(b",")
        if not text.startswith(b"{") or b'"tasks"' in text[:200]:
            continue
        try:
            tasks.append(_task(json.loads(text)))
        except (TypeError, ValueError):
            continue
    m = _SEQ.search(raw[:200])
    # Without a trustworthy seq, replaying the whole journal is safe: entries hold
    # absolute values, applied in order.
    seq = int(m.group(1)) if m else 0
    return tasks, seq


@dataclass
class Loaded:
    seq: int  # the last change on disk
    journal_entries: int
    truncate_to: int | None  # cut the journal here before appending (a torn tail)
    report: dict[str, Any]


def load_store(paths: Paths, index: TaskIndex, ids: TaskIds) -> Loaded:
    """Fill `index` from tasks.json and the journal; raise the id floor; report."""
    # The loader allocates one object graph per stored task and frees none: the
    # cyclic GC would rescan the growing heap many times over for nothing.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        snap = load_snapshot(paths.tasks_file)
        for task in snap.tasks:
            index.put(task)
    finally:
        if gc_was_on:
            gc.enable()
    for task_id in snap.salvaged_ids:
        ids.observe(task_id)
    id_file = ids.load()
    jr = read_journal(paths.tasks_journal)
    replayed, skipped = index.replay(jr.entries, snap.seq, ids.observe)
    damaged_journal = None
    if jr.bad_lines or jr.damaged_tail:
        # Lines we could not read are kept in a copy; compaction would drop them.
        damaged_journal = str(move_aside(paths.tasks_journal, copy=True))
        log.warning(
            "damaged journal lines skipped; a copy is kept", extra={"copy": damaged_journal}
        )
    if jr.torn_bytes:
        log.warning(
            "torn last journal line skipped (a write cut short by a crash; "
            "it was never acknowledged)",
            extra={"bytes": jr.torn_bytes, "file": str(paths.tasks_journal)},
        )
    report = {
        **snap.report,
        "journal_entries": len(jr.entries),
        "replayed": replayed,
        "skipped_entries": skipped,
        "torn_bytes": jr.torn_bytes,
        "bad_journal_lines": jr.bad_lines[:20],
        "damaged_journal": damaged_journal,
        "id_file": id_file,
    }
    return Loaded(
        seq=max([snap.seq, *(e["seq"] for e in jr.entries)]),
        journal_entries=len(jr.entries),
        truncate_to=jr.good_bytes if jr.torn_bytes else None,
        report=report,
    )
