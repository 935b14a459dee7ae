"""Issue 13: what task.submit says about a remote executor it cannot use. Refusals are
JSON-RPC errors with a precise message and store nothing; env values never go remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory
from tests.remote.farm import (
    INVALID,
    UNAVAILABLE,
    farm_config,
    new_queue,
    program,
    rpc_error,
    submit_remote,
)
from tests.taskhelp import wait_terminal


def test_unreachable_redis_is_refused_and_nothing_stored(
    project: Path, start_daemon: DaemonFactory
) -> None:
    url = f"unix://{project}/no-redis.sock"
    d = start_daemon(farm_config(url, new_queue()))
    err = rpc_error(d, "task.submit", command=["true"], executor="farm")
    assert err.code == UNAVAILABLE, (err.code, err.message)
    assert "farm" in err.message and url in err.message, err.message
    assert "cannot reach Redis" in err.message, err.message
    assert d.call("task.list")["total"] == 0
    # An executor nobody configured is a bad parameter, and says which ones exist.
    err = rpc_error(d, "task.submit", command=["true"], executor="nope")
    assert err.code == INVALID and '"nope"' in err.message and "farm" in err.message, err.message
    assert d.call("task.list")["total"] == 0
    # Local still works beside an unreachable executor.
    assert wait_terminal(d, d.call("task.submit", command=["true"])["id"])["state"] == "completed"


def test_wrong_password_is_refused(
    redis_with_password: RedisServer,
    project: Path,
    start_daemon: DaemonFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIWG_TEST_REDIS_PW", "not-" + (redis_with_password.password or ""))
    cfg = farm_config(redis_with_password.url, new_queue(), password_env="AIWG_TEST_REDIS_PW")
    d = start_daemon(cfg)
    err = rpc_error(d, "task.submit", command=["true"], executor="farm")
    assert err.code == UNAVAILABLE and "password" in err.message, err.message
    assert "AIWG_TEST_REDIS_PW" in err.message, err.message
    assert str(redis_with_password.password) not in err.message
    assert d.call("task.list")["total"] == 0


def test_the_right_password_runs_the_task(
    redis_with_password: RedisServer,
    project: Path,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = redis_with_password.password or ""
    monkeypatch.setenv("AIWG_TEST_REDIS_PW", password)
    queue = new_queue()
    d = start_daemon(farm_config(redis_with_password.url, queue, password_env="AIWG_TEST_REDIS_PW"))
    start_worker(
        url=redis_with_password.url,
        queue=queue,
        root=project,
        password_env="AIWG_TEST_REDIS_PW",
        env={"AIWG_TEST_REDIS_PW": password},
    )
    task = submit_remote(d, [*program(project), "--say", "authenticated"])
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed" and done["output_tail"] == "authenticated\n", done


def test_env_values_are_refused_for_a_remote_executor(
    redis: RedisServer, project: Path, start_daemon: DaemonFactory
) -> None:
    d = start_daemon(farm_config(redis.url, new_queue()))
    err = rpc_error(d, "task.submit", command=["true"], executor="farm", env={"TOKEN": "v4lue"})
    assert err.code == INVALID and "env" in err.message, err.message
    assert d.call("task.list")["total"] == 0
    with redis.client() as c:
        assert c.dbsize() == 0, "nothing reached Redis"
    # The local executor takes env values as before.
    local = d.call("task.submit", command=["true"], executor="local", env={"TOKEN": "v4lue"})
    assert wait_terminal(d, local["id"])["state"] == "completed"
