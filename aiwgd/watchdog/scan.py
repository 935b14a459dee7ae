"""One look at the machine's processes: which ones a watchdog rule matches, how old they
are, and which of them the watchdog must never touch. Blocking (psutil and /proc
reads): the watchdog runs it in a thread.

A process is a candidate when it is the daemon's user's (real and effective uid), a
rule's regular expression is found in its command line (the first matching rule wins)
and, in `project` scope, its working directory is inside the project root. A candidate
is spared, whatever its age, when it is:

- the daemon, one of its ancestors (whoever started it) or one of its descendants: every
  service, task and probe and all they started, orphans included (the daemon is their
  child subreaper);
- in a tree of the ChildRegistry (a child's known descendants that escaped it);
- carrying this daemon's mark: `AIWG_ROOT=<root>` with an owner mark beside it
  (`AIWG_TASK_ID`, a service's, ...). `AIWG_ROOT` alone is not enough: the CLI reads
  it too, so a user's shell may export it.

A process is named by (pid, create time) everywhere, so a PID reused between two scans
is a new process. Ages come from the kernel's start time and CLOCK_BOOTTIME, which a
change of the wall clock does not move.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from aiwgd.procs import marks

__all__ = ["Found", "Rule", "Scan", "age_of", "scan"]

ROOT_MARK = "AIWG_ROOT"
COMMAND_MAX = 4_096  # a command line kept for events and the list, cut beyond this


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    timeout_s: float


@dataclass(frozen=True)
class Found:
    """A candidate: a live process a rule matched, in scope, at one scan."""

    pid: int
    create_time: float
    command: str
    cwd: str | None
    rule: str
    timeout_s: float
    age_s: float
    spared: str | None  # why it is never touched ("daemon child", ...); None: watched


@dataclass(frozen=True)
class Scan:
    found: list[Found]
    duration_s: float


def age_of(create_time: float) -> float:
    """Seconds since a process (created at `create_time`, psutil's value) started."""
    started = create_time - marks.boot_time()  # seconds after boot, as the kernel counts
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _family(pid: int) -> tuple[set[int], set[int]]:
    """(ancestors, descendants) of `pid`."""
    with contextlib.suppress(psutil.Error):
        me = psutil.Process(pid)
        return {p.pid for p in me.parents()}, {p.pid for p in me.children(recursive=True)}
    return set(), set()


def _registry_trees(children: dict[int, float | None]) -> set[int]:
    """The live registered children (by pid and create time) and their descendants."""
    out: set[int] = set()
    for pid, created in children.items():
        if not marks.alive(pid, created):
            continue
        out.add(pid)
        with contextlib.suppress(psutil.Error):
            out.update(p.pid for p in psutil.Process(pid).children(recursive=True))
    return out


def _marked(proc: psutil.Process, root: str) -> bool:
    try:
        env = proc.environ()
    except psutil.Error:
        return False
    if env.get(ROOT_MARK) != root:
        return False
    return any(k.startswith("AIWG_") and k != ROOT_MARK for k in env)


def _matching(uid: int, rules: Sequence[Rule]) -> list[tuple[psutil.Process, str, Rule]]:
    """The processes of `uid` whose command line a rule matches, with it and the rule.

    Read straight from /proc: the owner of /proc/PID (one stat) and its cmdline (one
    read), nothing else for the processes no rule matches, which is nearly all of
    them. psutil.process_iter reads three files and builds an object per process: most
    of an idle daemon's CPU when it scanned every 60 s.
    """
    if not os.path.isdir(marks.PROC):  # no /proc here: psutil's way
        return _matching_psutil(uid, rules)
    out = []
    with os.scandir(marks.PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"{entry.path}/cmdline", "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue  # gone meanwhile
            if not raw:
                continue  # a kernel thread, or a zombie
            command = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            rule = next((r for r in rules if r.pattern.search(command)), None)
            if rule is None:
                continue
            with contextlib.suppress(psutil.Error):
                out.append((psutil.Process(int(entry.name)), command, rule))
    return out


def _matching_psutil(uid: int, rules: Sequence[Rule]) -> list[tuple[psutil.Process, str, Rule]]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info.get("cmdline")
        if not argv:
            continue
        command = " ".join(argv)
        rule = next((r for r in rules if r.pattern.search(command)), None)
        if rule is not None:
            out.append((proc, command, rule))
    return out


def scan(
    rules: Sequence[Rule],
    root: Path,
    project_scope: bool,
    children: dict[int, float | None],
) -> Scan:
    """Every candidate now. `children`: the ChildRegistry's live children (pid: create
    time) and the descendants they were seen with, snapshotted on the event loop."""
    started = time.monotonic()
    uid = os.getuid()
    me = os.getpid()
    root_text = str(root)
    family: tuple[set[int], set[int]] | None = None
    registered: set[int] = set()
    found: list[Found] = []
    for proc, command, rule in _matching(uid, rules):
        try:
            with proc.oneshot():
                uids, status, created = proc.uids(), proc.status(), proc.create_time()
        except psutil.Error:
            continue  # gone meanwhile
        if uids.real != uid or uids.effective != uid:
            continue  # someone else's (setuid), whoever owns /proc/PID
        if status == psutil.STATUS_ZOMBIE:
            continue
        try:
            cwd: str | None = proc.cwd()
        except psutil.Error:
            cwd = None
        if project_scope and (cwd is None or not _inside(cwd, root_text)):
            continue
        if family is None:  # only once something matched: most scans find nothing
            family = _family(me)
            registered = _registry_trees(children)
        ancestors, descendants = family
        spared: str | None = None
        if proc.pid == me:
            spared = "daemon"
        elif proc.pid in ancestors:
            spared = "daemon ancestor"
        elif proc.pid in descendants or proc.pid in registered:
            spared = "daemon child"
        elif _marked(proc, root_text):
            spared = "daemon mark"
        found.append(
            Found(
                pid=proc.pid,
                create_time=created,
                command=command[:COMMAND_MAX],
                cwd=cwd,
                rule=rule.name,
                timeout_s=rule.timeout_s,
                age_s=age_of(created),
                spared=spared,
            )
        )
    return Scan(found, time.monotonic() - started)
