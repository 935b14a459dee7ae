"""Issue 13: remote tasks across restarts and under a shared cap. A Redis restart or a
daemon restart mid-task loses no output and runs nothing twice; two workers on one
queue never run more than the executor's max_parallel at once."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory
from tests.remote.farm import (
    execution,
    executions,
    farm,
    farm_config,
    get,
    log_text,
    marks,
    new_queue,
    pid_of,
    program,
    running_on,
    submit_remote,
)
from tests.taskhelp import max_concurrency, wait_terminal
from tests.utils import alive, wait_for

LINES = "".join(f"line {n}\n" for n in range(100))


def test_redis_restart_mid_task_loses_no_output(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, _ = farm(redis, project, start_daemon, start_worker)
    runs, gate = project / "marks", project / "gate"
    argv = [*program(project), "--mark", str(runs), "--lines", "0:50", "--gate", str(gate)]
    task = submit_remote(d, [*argv, "--lines", "50:100"])
    running_on(d, task["id"])
    wait_for(lambda: "line 49\n" in log_text(d, task["id"]), 10, "the first half in the log")
    redis.stop()
    gate.touch()  # the second half is written while Redis is away
    wait_for(lambda: executions(runs, "end"), 10, "the program to end")
    redis.start()
    done = wait_terminal(d, task["id"], timeout=30)
    assert done["state"] == "completed" and done["exit_code"] == 0 and done["attempt"] == 1
    assert log_text(d, task["id"]) == LINES
    assert executions(runs) == [execution(task["id"], 1)]


def test_daemon_restart_reattaches_to_a_running_remote_task(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    cfg = farm_config(redis.url, queue)
    d = start_daemon(cfg)
    start_worker(url=redis.url, queue=queue, root=project)
    runs, gate = project / "marks", project / "gate"
    argv = [*program(project), "--mark", str(runs), "--lines", "0:50", "--gate", str(gate)]
    task = submit_remote(d, [*argv, "--lines", "50:100"], max_retries=2)
    running_on(d, task["id"])
    pid = pid_of(runs, execution(task["id"], 1))
    wait_for(lambda: "line 49\n" in log_text(d, task["id"]), 10, "the first half in the log")
    assert d.stop() == 0
    assert alive(pid), "a daemon stop leaves a remote attempt running"
    gate.touch()  # it goes on and ends while no daemon listens
    wait_for(lambda: executions(runs, "end"), 10, "the program to end")
    d2 = start_daemon(cfg, write=False)
    done = wait_terminal(d2, task["id"])
    assert done["state"] == "completed" and done["attempt"] == 1, done
    assert log_text(d2, task["id"]) == LINES  # no line lost, none twice
    assert executions(runs) == [execution(task["id"], 1)]  # re-attached, not re-run


def test_a_daemon_stop_does_not_wait_out_the_grace_for_remote_tasks(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    cfg = farm_config(redis.url, queue)
    cfg["daemon"]["stop_grace_seconds"] = 60  # what local tasks get to finish
    d = start_daemon(cfg)
    start_worker(url=redis.url, queue=queue, root=project)
    runs = project / "marks"
    task = submit_remote(d, [*program(project), "--mark", str(runs), "--gate", str(project / "g")])
    running_on(d, task["id"])
    # Detached at once (it runs on there): the daemon is gone long before the grace.
    assert d.stop(timeout=15) == 0
    assert alive(pid_of(runs, execution(task["id"], 1)))


def test_daemon_restart_keeps_a_job_still_queued_in_redis(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    cfg = farm_config(redis.url, queue)
    d = start_daemon(cfg)
    runs = project / "marks"
    task = submit_remote(d, [*program(project), "--mark", str(runs), "--say", "ran"], max_retries=2)
    wait_for(lambda: (get(d, task["id"])["runner"] or {}).get("phase") == "queued", 10)
    assert d.stop() == 0  # no worker yet: the job waits in RQ
    d2 = start_daemon(cfg, write=False)
    start_worker(url=redis.url, queue=queue, root=project)
    done = wait_terminal(d2, task["id"])
    assert done["state"] == "completed" and done["attempt"] == 1, done
    assert log_text(d2, task["id"]) == "ran\n"
    assert executions(runs) == [execution(task["id"], 1)]  # the same job, not enqueued again


def test_two_workers_share_a_queue_under_max_parallel(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    d = start_daemon(farm_config(redis.url, queue, max_parallel=2))
    # Room for 4 at once on the workers: only the executor's max_parallel holds it to 2.
    start_worker(url=redis.url, queue=queue, root=project, max_parallel=2)
    start_worker(url=redis.url, queue=queue, root=project, max_parallel=2)
    runs = project / "marks"
    argv = [*program(project), "--mark", str(runs), "--sleep", "0.5"]
    tasks = [submit_remote(d, argv) for _ in range(4)]
    for task in tasks:
        assert wait_terminal(d, task["id"])["state"] == "completed"
    recs = marks(runs)
    assert len(recs) == 8, recs
    assert max_concurrency(recs) == 2, recs
