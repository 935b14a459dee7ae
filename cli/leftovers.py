"""What a dead daemon left running, found and stopped from outside it (stdlib only).

A daemon killed with SIGKILL stops nothing: its tasks' programs keep running. Its next
start stops them (the executor's recovery), but `aiwg status` and `aiwg stop` must not
wait for that: they read what the store on disk says runs and look for the processes
themselves. Two ways find them:

- the journal: every running task's `runner` ({pid, pgid, create_time}, written just
  after the spawn). `running_tasks()` reads `tasks.json` and replays `tasks.journal`
  over it with the store's rules (aiwgd/tasks/store/recovery.py, index.py apply());
  only a process whose create time is the recorded one counts, so a PID the kernel has
  given to someone else since is never touched;
- the mark: every process a task starts, and everything those start, carries
  `AIWG_TASK_ID=<id>` and `AIWG_ROOT=<root>` in its environment (aiwgd.procs.marks),
  even after leaving the task's process group, or when the runner was never written.

Services' processes are found the same two ways: the live processes `services.json`
records ({instance, pid, pgid, create_time}, aiwgd/services/persist.py) and the
`AIWG_SERVICE=<instance>` mark with this project's root mark.

Only for a daemon that is not running (no one holds its lock): a live daemon's
children are its own business.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiwgd.config.paths import Paths
from aiwgd.procs import marks

# The marks aiwgd.tasks.executors.local puts in each child's environment.
TASK_MARK, ROOT_MARK = "AIWG_TASK_ID", "AIWG_ROOT"
# ... and aiwgd.services.plan in each service's (not imported: the CLI stays light).
SERVICE_MARK = "AIWG_SERVICE"
# Runner fields of records written by 0.1 (aiwgd.tasks.model.upgrade_fields).
_LEGACY_RUNNER = {"pid": "pid", "pgid": "pgid", "proc_create_time": "create_time"}
# tasks.json holds one compact record per line: only these lines need parsing.
_RUNNING = b'"state":"running"'
DEFAULT_GRACE_S = 10.0  # daemon.stop_grace_seconds when the config cannot be read


@dataclass(frozen=True)
class Leftover:
    """A live process a task or a service of the dead daemon started."""

    pid: int
    create_time: float | None
    name: str
    task: str  # the task's id ("" for a service's process)
    service: str = ""  # the service instance's name ("" for a task's process)

    def to_dict(self) -> dict[str, Any]:
        if self.service:
            return {"pid": self.pid, "name": self.name, "task": None, "service": self.service}
        return {"pid": self.pid, "name": self.name, "task": self.task}


@dataclass(frozen=True)
class ServiceProcess(marks.MarkedProcess):
    """A marked process of a service (`value`: the instance), told apart in reports."""


# ---- what the store on disk says runs ------------------------------------------------


def _upgraded(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with a 0.1 record's pid/pgid/proc_create_time as today's `runner`."""
    if not _LEGACY_RUNNER.keys() & fields.keys():
        return fields
    out = {k: v for k, v in fields.items() if k not in _LEGACY_RUNNER}
    runner = {new: fields[old] for old, new in _LEGACY_RUNNER.items() if old in fields}
    out["runner"] = runner if any(v is not None for v in runner.values()) else None
    return out


def _task_fields(rec: Any) -> tuple[str, dict[str, Any]] | None:
    if isinstance(rec, dict) and isinstance(rec.get("id"), str):
        fields = _upgraded(rec)
        return rec["id"], {k: fields.get(k) for k in ("state", "runner")}
    return None


def _read_snapshot(path: Path, tasks: dict[str, dict[str, Any]]) -> int:
    """Running tasks of tasks.json into `tasks`; returns the journal seq it includes."""
    try:
        raw = path.read_bytes()
    except OSError:
        return 0  # none yet (or unreadable: the journal alone is still worth reading)
    head, _, body = raw.partition(b"\n")
    records: list[Any] = []
    try:  # the layout write_snapshot() makes: a header line, then one record a line
        seq = json.loads(head.rstrip() + b"]}")["seq"]
        lines = body.splitlines()
    except (ValueError, KeyError, TypeError):
        try:  # any other JSON layout (written by hand or by another tool)
            doc = json.loads(raw)
            seq, records, lines = doc.get("seq", 0), list(doc["tasks"]), []
        except (ValueError, KeyError, TypeError, AttributeError):
            seq, lines = 0, raw.splitlines()  # damaged: the lines that still parse
    for line in lines:
        if _RUNNING in line:  # a cheap test first: most stored tasks have ended
            with contextlib.suppress(ValueError):
                records.append(json.loads(line.strip().rstrip(b",")))
    for rec in records:
        found = _task_fields(rec)
        if found is not None and found[1]["state"] == "running":
            tasks[found[0]] = found[1]
    return seq if isinstance(seq, int) else 0


def _apply(entry: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    """One journal entry, as aiwgd.tasks.store.index.TaskIndex.apply() applies it."""
    op = entry.get("op")
    if op == "add":
        found = _task_fields(entry.get("task"))
        if found is not None:
            tasks[found[0]] = found[1]
    elif op == "set" and isinstance(entry.get("id"), str) and isinstance(entry.get("fields"), dict):
        # Entries hold absolute values; a task outside `tasks` (not running in the
        # snapshot) is tracked from here on with the fields this entry gives.
        fields = _upgraded(entry["fields"])
        rec = tasks.setdefault(entry["id"], {"state": None, "runner": None})
        rec.update({k: fields[k] for k in ("state", "runner") if k in fields})
    elif op == "del" and isinstance(entry.get("ids"), list):
        for task_id in entry["ids"]:
            tasks.pop(task_id, None)


def running_tasks(paths: Paths) -> dict[str, dict[str, Any] | None]:
    """Task id -> runner ({pid, pgid, create_time}, or None if never recorded) of every
    task the store on disk says is running: tasks.json with the journal replayed over it.
    """
    tasks: dict[str, dict[str, Any]] = {}
    seq = _read_snapshot(paths.tasks_file, tasks)
    with contextlib.suppress(OSError):
        for line in paths.tasks_journal.read_bytes().split(b"\n")[:-1]:  # [-1]: torn or ""
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a damaged line: recovery skips it too
            if isinstance(entry, dict) and isinstance(entry.get("seq"), int) and entry["seq"] > seq:
                _apply(entry, tasks)
    return {
        tid: rec["runner"] if isinstance(rec.get("runner"), dict) else None
        for tid, rec in tasks.items()
        if rec.get("state") == "running"
    }


# ---- the processes -------------------------------------------------------------------


def _group(pgid: int) -> list[int]:
    """The live members of process group `pgid` (from /proc)."""
    out = []
    for name in os.listdir(marks.PROC) if os.path.isdir(marks.PROC) else []:
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"{marks.PROC}/{name}/stat", "rb") as fh:
                    raw = fh.read()
                fields = raw[raw.rfind(b")") + 2 :].split()
                if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                    out.append(int(name))
    return out


def running_services(paths: Paths) -> list[dict[str, Any]]:
    """The service processes `services.json` records as live: [{instance, pid, pgid,
    create_time}] (empty when there is none, or it cannot be read)."""
    try:
        data = json.loads((paths.daemon_dir / "services.json").read_bytes())
    except (OSError, ValueError):
        return []
    procs = data.get("processes") if isinstance(data, dict) else None
    return [p for p in procs if isinstance(p, dict)] if isinstance(procs, list) else []


def _recorded(rec: dict[str, Any] | None) -> list[int]:
    """A recorded leader's live group ({pid, pgid, create_time}), if the leader is
    still the recorded process."""
    rec = rec or {}
    pid, pgid, created = rec.get("pid"), rec.get("pgid"), rec.get("create_time")
    if not isinstance(pid, int) or not isinstance(created, (int, float)):
        return []  # never recorded: the mark finds its processes
    if not marks.alive(pid, float(created)):
        return []  # ended, or the PID is someone else's now
    # The leader is still the recorded process, so its group is its owner's.
    members = _group(pgid) if isinstance(pgid, int) and pgid == pid else [pid]
    return sorted({pid, *members})


def _marked(paths: Paths) -> list[marks.MarkedProcess]:
    """Every live process carrying this project's task or service mark."""
    where = {ROOT_MARK: str(paths.root)}
    services = marks.find_marked(SERVICE_MARK, where=where)
    return [
        # A worker's children (aiwgd.remote) carry AIWG_EXECUTION too: not the daemon's.
        *marks.find_marked(TASK_MARK, where=where, without=("AIWG_EXECUTION",)),
        *(ServiceProcess(p.pid, p.create_time, p.value, p.name, p.ppid) for p in services),
    ]


def find(paths: Paths) -> list[Leftover]:
    """Live processes the (dead) daemon of `paths` left: its running tasks' and its
    services' recorded process groups, and everything carrying this project's task or
    service mark."""
    found: dict[int, Leftover] = {}
    for task_id, runner in running_tasks(paths).items():
        if runner is not None and "executor" in runner:
            continue  # an attempt on a remote worker: it goes on, the next start follows it
        for pid in _recorded(runner):
            found[pid] = Leftover(pid, marks.create_time(pid), marks.name_of(pid), task_id)
    for rec in running_services(paths):
        inst = str(rec.get("instance", "?"))
        for pid in _recorded(rec):
            found.setdefault(
                pid, Leftover(pid, marks.create_time(pid), marks.name_of(pid), "", inst)
            )
    for m in _marked(paths):
        service = isinstance(m, ServiceProcess)
        found.setdefault(
            m.pid,
            Leftover(
                m.pid,
                m.create_time,
                m.name,
                "" if service else m.value,
                m.value if service else "",
            ),
        )
    return sorted(found.values(), key=lambda p: p.pid)


def stop(paths: Paths, left: list[Leftover], grace: float) -> marks.StopReport:
    """The stop ladder for `left` (SIGTERM, `grace` seconds, SIGKILL), and for anything
    marked that appears meanwhile (a child forked by a dying parent)."""
    procs = [
        ServiceProcess(p.pid, p.create_time, p.service, p.name, 0)
        if p.service
        else marks.MarkedProcess(p.pid, p.create_time, p.task, p.name, 0)
        for p in left
    ]
    return marks.stop_marked(procs, grace, rescan=lambda: _marked(paths))


def grace_s(paths: Paths, fast: bool) -> float:
    """The config's stop grace (SIGTERM to SIGKILL), as the daemon would have waited."""
    if fast:
        return 0.0
    from aiwgd.config import ValidationError, load_file

    try:
        return float(load_file(paths.config_file).daemon.stop_grace_seconds)
    except (OSError, ValidationError):
        return DEFAULT_GRACE_S


def stopped_line(done: marks.StopReport) -> str:
    """`aiwg stop`'s line for what it did to a dead daemon's leftovers."""
    procs = [*done.stopped, *done.survivors]
    services = sum(isinstance(p, ServiceProcess) for p in procs)
    counts = [(len(procs) - services, "task"), (services, "service")]
    what = " and ".join(f"{n} {kind} process{'es' if n > 1 else ''}" for n, kind in counts if n)
    return f"stopped {what} it left: {done.describe()}"


def stop_report(done: marks.StopReport) -> list[dict[str, Any]]:
    """`aiwg stop --json`: each process and what stopped it (None: nothing could)."""
    how = [("SIGTERM", done.terminated), ("SIGKILL", done.killed), (None, done.survivors)]
    return [
        {"pid": p.pid, "name": p.name, "service": p.value, "task": None, "stopped_by": sig}
        if isinstance(p, ServiceProcess)
        else {"pid": p.pid, "name": p.name, "task": p.value, "stopped_by": sig}
        for sig, procs in how
        for p in procs
    ]
