"""The stop ladder for a hung process and everything it started, on procs/marks.py's
ladder (SIGTERM, the grace, SIGKILL what is left, through pidfds checked against the
create time). Blocking: the watchdog runs it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field

import psutil

from aiwgd.procs import marks

__all__ = ["Stopped", "stop_tree"]


@dataclass
class Stopped:
    """What the ladder did to the hung process itself (`signals`) and to its tree."""

    signals: list[str] = field(default_factory=list)  # sent to the hung process, in order
    processes: str = ""  # every process of the tree and what stopped it (StopReport)
    survivors: list[int] = field(default_factory=list)  # of the tree, after SIGKILL
    survived: bool = False  # the hung process itself is among them (e.g. in D state)
    alive: bool = False  # no signal was sent, yet it still runs (not ours to signal)

    @property
    def killed(self) -> bool:
        """The hung process was signalled and is gone."""
        return bool(self.signals) and not self.survived


def _tree(pid: int, created: float, never: set[int]) -> list[marks.MarkedProcess]:
    """The process (if it is still the one created at `created`) and its descendants,
    leaving out `never` (the daemon and its ancestors)."""
    if not marks.alive(pid, created):
        return []
    out = [marks.MarkedProcess(pid, created, "", marks.name_of(pid), 0)]
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            if child.pid in never:
                continue
            with contextlib.suppress(psutil.Error):
                out.append(
                    marks.MarkedProcess(
                        child.pid, child.create_time(), "", marks.name_of(child.pid), child.ppid()
                    )
                )
    return out


def _never() -> set[int]:
    me = os.getpid()
    out = {me}
    with contextlib.suppress(psutil.Error):
        out.update(p.pid for p in psutil.Process(me).parents())
    return out


def stop_tree(pid: int, created: float, grace: float) -> Stopped:
    """SIGTERM the process and its descendants, wait up to `grace` seconds, SIGKILL
    what is left (a child forked meanwhile too); returns once all are gone."""
    never = _never()
    if pid in never:
        return Stopped()
    procs = _tree(pid, created, never)
    if not procs:
        return Stopped()  # it ended by itself since the scan
    report = marks.stop_marked(procs, grace, rescan=lambda: _tree(pid, created, never)[1:])
    target = procs[0]
    out = Stopped(
        processes=report.describe(),
        survivors=[p.pid for p in report.survivors],
        survived=target in report.survivors,
    )
    if target in report.terminated:
        out.signals = [signal.SIGTERM.name]
    elif target in report.killed or target in report.survivors:
        # The ladder always tries SIGTERM first.
        out.signals = [signal.SIGTERM.name, signal.SIGKILL.name]
    else:
        out.alive = marks.alive(pid, created)
    return out
