"""The project's own health: a cron job whose task runs the test suite (README, the
`schedule` section) and records pass or fail; and the health score in daemon.status.

A real daemon; the "test suite" is a tiny script that passes, or fails while a file
says it is broken. `schedule.run` fires the job now instead of waiting for the cron.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aiwgd.config.load import parse_config
from tests.conftest import DaemonFactory
from tests.utils import run_cli, wait_for

FAKE_SUITE = """\
import os, sys
if os.path.exists("BROKEN"):
    print("test_login FAILED\\n1 failed, 2 passed")
    sys.exit(1)
print("3 passed")
"""


def health_job(command: list[str]) -> dict[str, Any]:
    """The README's example job, with the project's test command."""
    return {
        "id": "project-health",
        "cron": "*/30 * * * *",
        "overlap": "skip",
        "action": {"type": "task", "command": command, "timeout_s": 900},
    }


def job(d: Any) -> dict[str, Any]:
    return next(j for j in d.call("schedule.list")["jobs"] if j["id"] == "project-health")


def rule_log(d: Any) -> str:
    """The daemon's log, where a rule's log action writes."""
    path: Path = d.paths.log_file
    return path.read_text() if path.exists() else ""


def run_now(d: Any) -> dict[str, Any]:
    """Fire the job, wait for its task to end; the task as `task.get` shows it."""
    assert d.call("schedule.run", id="project-health")["fired"] is True
    result = wait_for(
        lambda: (
            (r := job(d)["last_result"] or "").startswith("task ") and " running" not in r and r
        ),
        20,
        "the job's task to end",
    )
    task_id = result.split()[1]
    task: dict[str, Any] = d.call("task.get", id=task_id)
    assert result == f"task {task_id} {task['state']}"
    return task


# The README's rule that tells someone when the suite failed.
TESTS_BROKE = {
    "id": "tests-broke",
    "trigger": {"type": "task.failed"},
    "conditions": [{"field": "data.metadata.job_id", "op": "eq", "value": "project-health"}],
    "action": {"type": "log", "message": "the test suite failed: task {{data.id}}"},
}


def test_readme_health_job_config_loads() -> None:
    cfg = parse_config(
        {"schedule": {"jobs": [health_job(["make", "test"])]}, "rules": [TESTS_BROKE]}
    )
    (loaded,) = cfg.schedule.jobs
    assert loaded.id == "project-health" and loaded.overlap == "skip"
    assert not isinstance(loaded.action, str) and loaded.action.command == ["make", "test"]


def test_scheduled_health_check_runs_the_suite_and_records_pass_then_fail(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "fake_suite.py").write_text(FAKE_SUITE)
    command = [sys.executable, "fake_suite.py"]  # relative: the task runs in the project
    d = start_daemon(
        {"schedule": {"enabled": True, "jobs": [health_job(command)]}, "rules": [TESTS_BROKE]}
    )
    assert job(d)["next_fire"] is not None  # on the cron, every 30 minutes

    passed = run_now(d)
    assert (passed["state"], passed["exit_code"]) == ("completed", 0)
    assert "3 passed" in passed["output_tail"]

    (project / "BROKEN").touch()
    failed = run_now(d)
    assert (failed["state"], failed["exit_code"]) == ("failed", 1)
    assert "1 failed, 2 passed" in failed["output_tail"]

    # What a user reads: the job's last result, and a task.failed event a rule can
    # match on the job id (to notify someone).
    listed = run_cli(d.root, "schedule", "list")
    assert listed.returncode == 0 and f"task {failed['id']} failed" in listed.stdout
    events = d.call("events.list", type="task.failed", limit=10)["events"]
    assert [e["data"]["metadata"]["job_id"] for e in events] == ["project-health"]
    # ... and the rule did: its log action ran once, for the failed run only.
    wait_for(
        lambda: f"the test suite failed: task {failed['id']}" in rule_log(d),
        10,
        "the tests-broke rule to log the failure",
    )
    assert rule_log(d).count("the test suite failed") == 1


def test_daemon_status_carries_the_health_score(start_daemon: DaemonFactory) -> None:
    d = start_daemon()
    status = d.call("daemon.status")
    assert status["health"] == {"score": 100, "unhealthy": []}
    # The same in the snapshot scripts and `aiwg status --json` read.
    cli = run_cli(d.root, "--json", "status")
    assert cli.returncode == 0 and '"score": 100' in cli.stdout
