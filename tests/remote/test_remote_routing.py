"""Where a task runs when it does not say: its group's executor, agent.executor for a
prompt, tasks.default_executor; an explicit `executor` (also "local") wins. And the
config errors a user meets when the names do not add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory
from tests.remote.farm import daemon_log, farm_config, get, new_queue, program, submit_remote
from tests.taskhelp import wait_terminal
from tests.utils import run_cli, wait_for, write_config


def test_defaults_send_tasks_to_the_executor_their_group_agent_or_config_names(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    queue = new_queue()
    cfg = farm_config(redis.url, queue)
    prog = program(project)
    groups = {"near": {"max_parallel": 2, "executor": "local"}}
    cfg["tasks"] = {**cfg.get("tasks", {}), "groups": groups, "default_executor": "farm"}
    agent = {"command": [*prog, "--say", "{prompt}"], "executor": "farm"}
    cfg["agent"] = {**cfg.get("agent", {}), **agent}
    d = start_daemon(cfg)
    start_worker(url=redis.url, queue=queue, root=project)

    def ran(**params: Any) -> tuple[str | None, str]:
        task = d.call("task.submit", **params)
        done = wait_terminal(d, task["id"])
        assert done["state"] == "completed", done
        return done["executor"], done["output_tail"]

    # The worker's child carries AIWG_EXECUTION; a local child does not (PROG says "none").
    say_mark = [*prog, "--say", "{execution}"]
    where, said = ran(command=say_mark)  # tasks.default_executor
    assert where == "farm" and said.strip() != "none.0", said
    assert ran(command=say_mark, group="near") == (None, "none.0\n")  # its group's
    assert ran(command=say_mark, executor="local") == (None, "none.0\n")  # its own
    where, said = ran(prompt="hello")  # agent.executor
    assert (where, said) == ("farm", "hello\n")
    # A rerun runs where the task ran, whatever the defaults say.
    local = d.call("task.submit", command=say_mark, executor="local")
    again = d.call("task.rerun", id=local["id"])
    assert again["executor"] is None and again["rerun_of"] == local["id"], again


def test_config_names_an_executor_that_is_not_there(project: Path) -> None:
    cfg: dict[str, Any] = {
        "executors": {"farm": {"type": "rq", "url": "http://example.invalid"}},
        "tasks": {"default_executor": "gpu"},
    }
    path = project / "bad.json"
    path.write_text(json.dumps(cfg))
    res = run_cli(project, "config", "validate", str(path))
    assert res.returncode == 1
    assert "executors.farm.url" in res.stderr + res.stdout
    assert "use redis://, rediss:// or unix://" in res.stderr + res.stdout
    cfg["executors"]["farm"]["url"] = "unix:///tmp/r.sock"
    path.write_text(json.dumps(cfg))
    res = run_cli(project, "config", "validate", str(path))
    out = res.stderr + res.stdout
    assert res.returncode == 1, out
    assert 'tasks.default_executor: unknown executor "gpu" (configured: local, farm)' in out


def test_a_password_in_the_url_is_refused_without_being_shown(project: Path) -> None:
    path = project / "pw.json"
    url = "redis://:s3cret-pw@localhost:6379/0"
    path.write_text(json.dumps({"executors": {"farm": {"type": "rq", "url": url}}}))
    res = run_cli(project, "config", "validate", str(path))
    out = res.stderr + res.stdout
    assert res.returncode == 1, out
    assert "executors.farm.url" in out and "password_env" in out, out
    assert "s3cret-pw" not in out and ":***@localhost" in out, out


def test_a_task_queued_for_an_executor_a_reload_removed_says_why_and_waits(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory
) -> None:
    # No worker: the first task holds the executor's one slot, the second stays queued.
    cfg = farm_config(redis.url, new_queue(), max_parallel=1)
    d = start_daemon(cfg)
    argv = [*program(project), "--say", "hi"]
    first, second = submit_remote(d, argv), submit_remote(d, argv)
    wait_for(lambda: get(d, first["id"])["state"] == "running", 15, "the first one's attempt")
    assert get(d, second["id"])["queued_reason"] is None

    write_config(project, {k: v for k, v in cfg.items() if k != "executors"})
    d.call("daemon.reload")
    queued = get(d, second["id"])
    assert queued["state"] == "queued", queued
    assert "executor 'farm' is not configured" in queued["queued_reason"], queued
    assert "queued tasks wait for an executor that is not configured" in daemon_log(d)

    write_config(project, cfg)  # back: nothing was lost, the reason is gone
    d.call("daemon.reload")
    again = get(d, second["id"])
    assert again["state"] == "queued" and again["queued_reason"] is None, again
    for task in (first, second):
        d.call("task.cancel", id=task["id"])
