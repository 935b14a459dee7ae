"""Issue 11, queue control: task.rerun links a new task to the old one; names and the
queue options from the CLI (`aiwg task run --name/--after/--group`, `aiwg task list`,
`aiwg task pause|resume|rerun`), with one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiwgd.client import RpcError
from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import run_cli


def test_rerun_is_a_new_task_with_the_same_spec(start_daemon: DaemonFactory) -> None:
    d = start_daemon(config=task_config(tasks={"groups": {"g": {"max_parallel": 1}}}))
    old = submit(
        d,
        prog("--say", "again"),
        name="nightly",
        group="g",
        priority="high",
        env={"TOKEN": "s3cret"},
        timeout_s=30,
        limits={"max_fds": 500},
    )
    assert wait_terminal(d, old["id"])["state"] == "completed"
    new = d.call("task.rerun", id=old["id"])
    assert new["id"] != old["id"] and new["rerun_of"] == old["id"]
    same = ("command", "cwd", "priority", "group", "name", "timeout_s", "limits", "env")
    assert {k: new[k] for k in same} == {k: old[k] for k in same}
    assert old["rerun_of"] is None
    done = wait_terminal(d, new["id"])
    assert done["state"] == "completed" and "again" in done["output_tail"]
    with pytest.raises(RpcError) as info:
        d.call("task.rerun", id="nosuch")
    assert info.value.code == -32001


def test_names_and_queue_options_from_the_cli(start_daemon: DaemonFactory, project: Path) -> None:
    start_daemon(config=task_config(tasks={"groups": {"g": {"max_parallel": 1}}}))
    first = run_cli(project, "--json", "task", "run", "--name", "build-docs", "--", *prog())
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["id"]
    second = run_cli(
        project,
        "--json",
        "task",
        "run",
        "--name",
        "publish-docs",
        "--after",
        first_id,
        "--group",
        "g",
        "--wait",
        "--",
        *prog("--say", "published"),
    )
    assert second.returncode == 0, second.stderr
    shown = json.loads(second.stdout)
    assert shown["after"] == [first_id] and shown["group"] == "g" and shown["state"] == "completed"
    listed = run_cli(project, "task", "list")
    assert listed.returncode == 0, listed.stderr
    assert "build-docs" in listed.stdout and "publish-docs" in listed.stdout
    rerun = run_cli(project, "task", "rerun", first_id)
    assert rerun.returncode == 0 and f"(rerun of {first_id})" in rerun.stdout
    new_id = rerun.stdout.split()[1]
    got = run_cli(project, "task", "get", new_id)
    assert got.returncode == 0, got.stderr
    assert "name:        build-docs" in got.stdout
    assert f"rerun of:    {first_id}" in got.stdout
    stats = run_cli(project, "task", "stats")
    assert "group g: 0 running" in stats.stdout, stats.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["task", "run", "--after", "nosuch", "--", "true"], 'after[0]: no task with id "nosuch"'),
        (["task", "run", "--group", "nog", "--", "true"], 'group: unknown group "nog"'),
        (["task", "run", "--run-at", "soon", "--", "true"], "run_at:"),
        (["task", "run", "--delay", "-1", "--", "true"], "delay_s"),
        (["task", "pause"], "give a task ID or --group G"),
        (["task", "resume", "nosuch"], "nosuch"),
    ],
)
def test_cli_errors_are_one_line(
    start_daemon: DaemonFactory, project: Path, args: list[str], says: str
) -> None:
    start_daemon(config=task_config())
    got = run_cli(project, *args)
    assert got.returncode != 0
    assert says in got.stderr, got.stderr
    assert len(got.stderr.strip().splitlines()) == 1 and "Traceback" not in got.stderr
