"""Secrets stay secret: what a task's child inherits, and what is kept of its env.

Issue 8: tasks inherited the daemon's whole environment, including the variables that
`*_env` config keys name (webhook secrets), and a task's own `env` values were shown by
`task.get` and written to the journal and tasks.json. Now a child never sees a variable
a `*_env` key names; a task's env values reach its child but are kept only in memory
(names stay, values show as "<redacted>"); after a restart a queued task whose values
are gone fails with a message saying to resubmit it, and never runs without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import wait_for

TOKEN = "tok-s3cret-9f1c2e"  # a task's own secret value
HOOK_SECRET = "hook-s3cret-77aa"  # named by a rule's webhook secret_env
JOB_SECRET = "job-s3cret-42bb"  # named by a schedule job's webhook secret_env
REDACTED = "<redacted>"

PRINTENV = """\
import json, os, sys
with open(sys.argv[1], "w") as fh:
    json.dump(dict(os.environ), fh)
"""


def secret_config(**extra: Any) -> dict[str, Any]:
    cfg = task_config(cap=1, grace=0.2, **extra)
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    cfg["rules"] = [
        {
            "id": "never",
            "trigger": {"type": "never.happens"},
            "action": {**hook, "secret_env": "AIWG_T_HOOK_SECRET"},
        }
    ]
    cfg["schedule"] = {
        "enabled": False,
        "jobs": [
            {
                "id": "yearly",
                "cron": "0 0 1 1 *",
                "enabled": False,
                "action": {**hook, "secret_env": "AIWG_T_JOB_SECRET"},
            }
        ],
    }
    return cfg


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon started by the test inherits these (env_for_tests copies os.environ)."""
    monkeypatch.setenv("AIWG_T_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("AIWG_T_JOB_SECRET", JOB_SECRET)
    monkeypatch.setenv("AIWG_T_PLAIN", "plain-value")


def files_holding(root: Path, needle: str) -> list[str]:
    hits = []
    for path in (root / ".aiwg").rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_child_gets_task_env_but_not_config_secrets_and_values_are_never_kept(
    start_daemon: DaemonFactory, project: Path, secret_env: None
) -> None:
    d = start_daemon(secret_config())
    script, out = project / "printenv.py", project / "env.json"
    script.write_text(PRINTENV)
    task = submit(d, [sys.executable, str(script), str(out)], env={"API_TOKEN": TOKEN})
    assert task["env"] == {"API_TOKEN": REDACTED}  # the submit reply already hides it
    assert wait_terminal(d, task["id"])["state"] == "completed"

    child = json.loads(out.read_text())
    assert child["API_TOKEN"] == TOKEN  # the value reached the child
    assert child["AIWG_T_PLAIN"] == "plain-value"  # the rest of the daemon's env did too
    assert "AIWG_T_HOOK_SECRET" not in child and "AIWG_T_JOB_SECRET" not in child

    got = d.call("task.get", id=task["id"])
    assert got["env"] == {"API_TOKEN": REDACTED}
    listed = d.call("task.list")["tasks"][0]
    assert listed["env"] == {"API_TOKEN": REDACTED}
    journal = d.paths.tasks_journal.read_text()
    assert task["id"] in journal and "API_TOKEN" in journal and TOKEN not in journal
    assert files_holding(project, TOKEN) == []
    assert d.stop() == 0
    stored = json.loads(d.paths.tasks_file.read_text())["tasks"]
    assert [t["env"] for t in stored if t["id"] == task["id"]] == [{"API_TOKEN": REDACTED}]
    assert files_holding(project, TOKEN) == []  # tasks.json, journal, logs, events


def test_queued_task_whose_env_values_were_lost_in_a_restart_fails_clearly(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = secret_config()
    d = start_daemon(cfg)
    gate, script, out = project / "gate", project / "printenv.py", project / "env.json"
    script.write_text(PRINTENV)
    blocker = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=blocker["id"])["state"] == "running", 10, "blocker")
    queued = submit(d, [sys.executable, str(script), str(out)], env={"API_TOKEN": TOKEN})
    plain = submit(d, [sys.executable, str(script), str(project / "plain.json")])
    assert d.stop() == 0
    gate.touch()
    d2 = start_daemon(cfg, write=False)
    ended = wait_terminal(d2, queued["id"])
    assert ended["state"] == "failed"
    assert "API_TOKEN" in ended["error"] and "resubmit" in ended["error"], ended["error"]
    assert not out.exists()  # it never ran without its values
    assert wait_terminal(d2, plain["id"])["state"] == "completed"  # no env: runs as usual
    assert files_holding(project, TOKEN) == []
