"""Issue 13 end to end: tasks sent to an `rq` executor run on a real `aiwg worker` and
look, through the task API and the CLI, like local ones: output, exit code, cancel,
timeout, retries, task.logs --follow, events, and `aiwg worker list`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiwgd.client import Client
from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory
from tests.remote.farm import (
    execution,
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
from tests.rpc.test_openrpc import Checker
from tests.taskhelp import assert_all_gone, wait_terminal
from tests.utils import Subscriber, run_cli, wait_for


def test_tasks_run_on_the_worker_with_output_and_exit_code(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, _ = farm(redis, project, start_daemon, start_worker)
    run = [*program(project), "--mark", str(project / "marks"), "--say", "hi from {execution}"]
    ok = submit_remote(d, run)
    bad = submit_remote(d, [*run, "--exit", "3"])
    done = wait_terminal(d, ok["id"])
    assert done["state"] == "completed" and done["exit_code"] == 0, done
    # The program prints its AIWG_EXECUTION mark: the worker ran it, not the daemon.
    assert done["output_tail"] == f"hi from {execution(ok['id'], 1)}\n"
    assert done["attempt"] == 1 and done["executor"] == "farm" and done["runner"] is None
    failed = wait_terminal(d, bad["id"])
    assert failed["state"] == "failed" and failed["exit_code"] == 3, failed
    assert log_text(d, bad["id"]) == f"hi from {execution(bad['id'], 1)}\n"
    ends = sorted(ex for kind, ex, _, _ in marks(project / "marks") if kind == "end")
    assert ends == sorted([execution(ok["id"], 1), execution(bad["id"], 1)])


def test_placement_and_worker_list_show_the_running_task(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, w = farm(redis, project, start_daemon, start_worker)
    name = w.name
    gate = project / "gate"
    task = submit_remote(d, [*program(project), "--gate", str(gate), "--say", "through"])
    runner = running_on(d, task["id"])
    assert runner["worker"].startswith(name) and runner["pid"] > 0, runner
    res = run_cli(project, "worker", "list")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if name in line)
    assert task["id"] in row and "farm" in row, res.stdout
    res = run_cli(project, "worker", "list", "--json")
    assert res.returncode == 0, res.stderr
    listed = [w for w in json.loads(res.stdout)["workers"] if w["name"].startswith(name)]
    assert [w["task"] for w in listed if w["task"]] == [task["id"]], listed
    # What RPC clients get matches the schemas rpc.discover declares for them.
    schemas = Checker(d)
    schemas.call("executor.workers")
    schemas.call("task.get", id=task["id"])
    status = schemas.call("daemon.status")
    farm_health = status["subsystems"]["supervisor"]["executors"]["farm"]
    assert farm_health["ok"] is True and farm_health["queue"], farm_health
    gate.touch()
    assert wait_terminal(d, task["id"])["output_tail"] == "through\n"

    def idle() -> bool:
        res = run_cli(project, "worker", "list", "--json")
        return res.returncode == 0 and not any(w["task"] for w in json.loads(res.stdout)["workers"])

    wait_for(idle, 10, "the worker list to show no task")


def test_cancel_stops_the_remote_child_and_a_queued_job_never_runs(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    d = start_daemon(farm_config(redis.url, queue))
    gated = [*program(project), "--mark", str(project / "marks"), "--gate", str(project / "g")]
    # No worker yet: the job waits in RQ; cancelled there, no worker may take it later.
    early = submit_remote(d, gated)
    wait_for(lambda: (get(d, early["id"]).get("runner") or {}).get("phase") == "queued", 10)
    assert d.call("task.cancel", id=early["id"])["state"] == "cancelled"
    start_worker(url=redis.url, queue=queue, root=project)
    # A running one that ignores SIGTERM: the worker's ladder ends in SIGKILL.
    task = submit_remote(d, [*program(project), "--ignore-term", *gated[2:]])
    running_on(d, task["id"])
    pid = pid_of(project / "marks", execution(task["id"], 1))
    got = d.call("task.cancel", id=task["id"], _timeout=15)
    assert got["state"] == "cancelled", got
    assert_all_gone([pid], timeout=5)
    # RQ's queue is FIFO: a later job completing means the cancelled one was skipped.
    after = submit_remote(d, [*program(project), "--say", "next"])
    assert wait_terminal(d, after["id"])["state"] == "completed"
    assert execution(early["id"], 1) not in [ex for _, ex, _, _ in marks(project / "marks")]


def test_timeout_stops_the_remote_child(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, _ = farm(redis, project, start_daemon, start_worker)
    gated = [*program(project), "--mark", str(project / "marks"), "--gate", str(project / "g")]
    task = submit_remote(d, gated, timeout_s=1)
    pid = pid_of(project / "marks", execution(task["id"], 1))
    done = wait_terminal(d, task["id"])
    assert done["state"] == "timed_out", done
    assert_all_gone([pid], timeout=5)


def test_retries_run_each_attempt_as_a_new_execution(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, _ = farm(redis, project, start_daemon, start_worker)
    argv = [*program(project), "--mark", str(project / "marks"), "--say", "{execution}"]
    task = submit_remote(d, [*argv, "--exit", "3"], max_retries=2)
    done = wait_terminal(d, task["id"])
    assert done["state"] == "failed" and done["attempt"] == 3 and done["exit_code"] == 3, done
    runs = [ex for kind, ex, _, _ in marks(project / "marks") if kind == "start"]
    assert runs == [execution(task["id"], n) for n in (1, 2, 3)]
    assert done["output_tail"].endswith(f"{execution(task['id'], 3)}\n"), done["output_tail"]


def test_logs_follow_and_events_of_a_remote_task(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    d, _ = farm(redis, project, start_daemon, start_worker)
    events = Subscriber(d, ["task.*"])
    gate = project / "gate"
    argv = [*program(project), "--say", "first", "--gate", str(gate), "--say", "second"]
    task = submit_remote(d, argv)
    got: list[dict[str, Any]] = []

    def on_note(note: dict[str, Any]) -> None:
        got.append(note)
        if "".join(n["params"]["data"] for n in got) == "first\n":
            gate.touch()  # only now may the task go on and end

    with Client(d.root, timeout=30) as c:
        result = c.stream("task.logs", on_note, id=task["id"], follow=True)
    assert {n["method"] for n in got} == {"task.output"}
    assert "".join(n["params"]["data"] for n in got) == "first\nsecond\n"
    assert result["state"] == "completed" and result["eof"] and result["next_offset"] == 13
    mine = [task["id"]]
    started = events.next(lambda e: e["type"] == "task.started" and e["data"]["id"] in mine)
    ended = events.next(lambda e: e["type"] == "task.completed" and e["data"]["id"] in mine)
    assert started["data"]["id"] == ended["data"]["id"] == task["id"]
    events.close()
