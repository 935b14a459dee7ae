"""Issue 13: a worker that dies or goes silent mid-task. The daemon notices within the
heartbeat TTL, ends the attempt as interrupted and applies on_interrupt; the child left
behind is stopped by the next worker start; a late result from the silent worker never
replaces the result of the attempt that replaced it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from aiwgd.remote import keys
from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory
from tests.remote.farm import (
    SLACK,
    TTL,
    daemon_log,
    execution,
    executions,
    farm,
    get,
    log_text,
    pid_of,
    program,
    running_on,
    submit_remote,
)
from tests.taskhelp import wait_terminal
from tests.utils import alive, wait_for


def test_worker_killed_mid_task_requeues_to_another_worker(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, w1 = farm(redis, project, start_daemon, start_worker)
    runs = project / "marks"
    # Each attempt waits for a gate of its own: attempt 1 must not finish meanwhile.
    argv = [*program(project), "--mark", str(runs), "--gate", str(project / "gate.{attempt}")]
    task = submit_remote(d, [*argv, "--say", "done {execution}"], max_retries=1)
    assert task["on_interrupt"] == "requeue"
    assert running_on(d, task["id"])["worker"].startswith(w1.name)
    left = pid_of(runs, execution(task["id"], 1))
    w2 = start_worker(url=redis.url, queue=w1.queue, root=project)
    w1.kill9()
    killed = time.monotonic()
    runner = running_on(d, task["id"], attempt=2, timeout=TTL + SLACK)
    assert time.monotonic() - killed < TTL + SLACK
    assert runner["worker"].startswith(w2.name), runner
    (project / "gate.2").touch()
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed" and done["attempt"] == 2, done
    assert log_text(d, task["id"]).endswith(f"done {execution(task['id'], 2)}\n")
    # Attempt 1's child outlived its worker (own session); the next worker start on this
    # root and queue stops it. It never ran to its end: one run per attempt, each known.
    assert alive(left), "the killed worker's child is left behind until a worker starts"
    start_worker(url=redis.url, queue=w1.queue, root=project)
    wait_for(lambda: not alive(left), 10, f"the left-behind child {left} to be stopped")
    assert executions(runs) == [execution(task["id"], 1), execution(task["id"], 2)]
    assert executions(runs, "end") == [execution(task["id"], 2)]


def test_worker_killed_fails_a_task_that_must_not_rerun(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, w1 = farm(redis, project, start_daemon, start_worker)
    runs = project / "marks"
    argv = [*program(project), "--mark", str(runs), "--gate", str(project / "gate")]
    task = submit_remote(d, argv, max_retries=3, on_interrupt="fail")
    running_on(d, task["id"])
    w1.kill9()
    killed = time.monotonic()
    done = wait_terminal(d, task["id"], timeout=TTL + SLACK)
    assert time.monotonic() - killed < TTL + SLACK
    assert done["state"] == "failed" and done["attempt"] == 1, done
    assert "interrupted" in done["error"] and w1.name in done["error"], done["error"]
    assert executions(runs) == [execution(task["id"], 1)]


def test_a_silent_workers_late_result_is_ignored(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, w1 = farm(redis, project, start_daemon, start_worker)
    runs, gate = project / "marks", project / "gate"
    # Attempt 1 exits 7 once it may go on: its result must never become the task's.
    argv = [*program(project), "--mark", str(runs), "--gate", str(gate), "--fail-on", "1"]
    task = submit_remote(d, [*argv, "--say", "end of {execution}"], max_retries=1)
    assert running_on(d, task["id"])["worker"].startswith(w1.name)
    pid_of(runs, execution(task["id"], 1))
    w2 = start_worker(url=redis.url, queue=w1.queue, root=project)
    stopped = w1.signal_all(signal.SIGSTOP)  # worker, horse and child: silent, not dead
    assert len(stopped) >= 3, stopped
    runner = running_on(d, task["id"], attempt=2, timeout=TTL + SLACK)
    assert runner["worker"].startswith(w2.name), runner
    gate.touch()
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed" and done["exit_code"] == 0 and done["attempt"] == 2
    w1.signal_all(signal.SIGCONT)
    # The woken worker ends attempt 1 (stopped: the daemon asked "lost"; or exit 7) and
    # publishes that end; the daemon logs it as stale and keeps attempt 2's result.
    with redis.client() as c:
        out = keys.key(w1.queue, "out", execution(task["id"], 1))

        def ended() -> bool:
            return any(f.get(b"k") == b"end" for _, f in c.xrange(out))

        wait_for(ended, 15, "the silent worker to write attempt 1's end")
    wait_for(lambda: "stale" in daemon_log(d), 10, "the daemon to log the stale end")
    after = get(d, task["id"])
    assert after["state"] == "completed" and after["exit_code"] == 0 and after["attempt"] == 2
    assert f"end of {execution(task['id'], 1)}" not in log_text(d, task["id"])
    assert log_text(d, task["id"]).endswith(f"end of {execution(task['id'], 2)}\n")
