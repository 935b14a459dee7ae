"""Spawn before record (issue 8): a kill -9 of the daemon right after it started a
task's program must never leave an untracked copy running, nor let the task run again
without its attempt count saying so.

The window is made real, without hooks in the daemon: eight tasks start at once, each
a shell that only appends "<task id> <pid>" to a file and then sleeps; the test kills
the daemon (SIGKILL) the moment the first line appears, a few rounds in a row. After
each restart, every process the killed daemon started must be gone (found by the
recorded runner or by the AIWG_TASK_ID mark in its environment), and each task has
run at most as many times as its attempt count says (an interrupted attempt counts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from aiwgd.client import Client
from tests.conftest import DaemonFactory
from tests.taskhelp import submit, task_config
from tests.utils import BASE_CONFIG, DaemonProc, alive, deep_merge, wait_for, write_config

TASKS = 8
ROUNDS = 4


def runs(pidfile: Path) -> dict[str, list[int]]:
    """{task id: [pid of each time its program started]}."""
    out: dict[str, list[int]] = {}
    text = pidfile.read_text() if pidfile.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:  # a line being written is skipped until it is whole
            out.setdefault(parts[0], []).append(int(parts[1]))
    return out


def kill_at_first_line(d: DaemonProc, pidfile: Path) -> None:
    """SIGKILL the daemon as soon as one task program has started (tight poll: the
    window is milliseconds wide)."""
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.stat().st_size):
        assert time.monotonic() < deadline, "no task program started"
        time.sleep(0.0005)
    d.kill9()


def check_after_restart(d2: DaemonProc, pidfile: Path, ids: list[str]) -> None:
    seen: dict[str, object] = {}

    def settled() -> dict[str, dict[str, object]] | None:
        tasks = {i: d2.call("task.get", id=i) for i in ids}
        started = runs(pidfile)
        seen.update(tasks=[(t["state"], t["attempt"], t["runner"]) for t in tasks.values()])
        seen.update(started=started)
        for i, t in tasks.items():
            runner = t["runner"]
            if t["state"] == "queued":
                return None
            if t["state"] == "running" and (
                not isinstance(runner, dict) or runner["pid"] not in started.get(i, [])
            ):
                return None  # its new attempt has not written its line yet
        return tasks

    try:
        tasks = wait_for(settled, 20, "every task running again (with its line) or ended")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast seen: {seen}\n{d2.stderr()[-3000:]}") from None
    started = runs(pidfile)
    current = {
        t["runner"]["pid"] for t in tasks.values() if t["state"] == "running" and t["runner"]
    }
    for task_id, pids in started.items():
        # Only the attempt the new daemon runs may be alive: no untracked copy.
        wait_for(
            lambda pids=pids: not [p for p in pids if alive(p) and p not in current],
            5,
            f"every copy of task {task_id} the killed daemon started to be gone",
        )
        t = tasks[task_id]
        # Each start is counted: a run cut short by the crash is an attempt too.
        assert len(pids) <= t["attempt"] or (
            t["state"] == "failed" and "interrupted" in str(t["error"])
        ), f"task {task_id} ran {len(pids)} times as attempt {t['attempt']} ({t['state']})"
        if len(pids) > 1:
            assert t["attempt"] >= len(pids)


def one_round(start_daemon: DaemonFactory, root: Path, pidfile: Path) -> None:
    script = f'echo "$AIWG_TASK_ID $$" >> {pidfile}; exec sleep 300'
    spec = {"command": ["sh", "-c", script], "max_retries": 3}
    # All of them queued behind a blocker, then started in one go by a reload that
    # raises the cap: the spawns follow each other with no pause between them.
    d = start_daemon(task_config(cap=1), root=root)
    blocker = submit(d, ["sleep", "300"])["id"]
    wait_for(lambda: d.call("task.get", id=blocker)["runner"], 10, "the blocker to run")
    with Client(root, timeout=10) as c:
        results = c.batch([("task.submit", spec)] * TASKS)
    ids = [r["id"] for r in results if isinstance(r, dict)]
    assert len(ids) == TASKS
    write_config(root, deep_merge(BASE_CONFIG, task_config(cap=TASKS + 1)))
    d.call("daemon.reload")
    kill_at_first_line(d, pidfile)

    d2 = start_daemon(root=root, write=False)
    check_after_restart(d2, pidfile, ids)
    if d2.call("task.get", id=blocker)["state"] in ("queued", "running"):
        d2.call("task.cancel", id=blocker)
    assert d2.stop() == 0
    wait_for(
        lambda: not [p for ps in runs(pidfile).values() for p in ps if alive(p)],
        10,
        "every task program gone after a clean stop",
    )


def test_kill9_right_after_spawn_leaves_no_untracked_copy(
    start_daemon: DaemonFactory, project: Path
) -> None:
    pidfiles: list[Path] = []
    try:
        for n in range(ROUNDS):
            root = project / f"r{n}"  # a fresh store each round
            root.mkdir()
            pidfiles.append(root / "started")
            one_round(start_daemon, root, pidfiles[-1])
    finally:
        for pidfile in pidfiles:
            for pids in runs(pidfile).values():
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        if alive(p):
                            os.kill(p, signal.SIGKILL)
