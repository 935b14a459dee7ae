"""Rule history survives a restart (issue 8): `automation log` and the rule counters.

`.aiwg/daemon/automation.jsonl` always had every finished execution; a restart used to
start both the log and the counters from nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.taskhelp import prog
from tests.utils import DaemonProc, run_cli, wait_for

RULES = [
    {
        "id": "note",
        "trigger": {"type": "ci.*"},
        "action": {"type": "log", "message": "ci {{data.n}}"},
    },
    {
        "id": "build",
        "trigger": {"type": "ci.*"},
        "action": {"type": "task", "command": prog("--say", "{{data.n}}")},
    },
]


def rule_status(d: DaemonProc, rule_id: str) -> dict[str, Any]:
    return next(r for r in d.call("automation.status")["rules"] if r["id"] == rule_id)


def log_of(d: DaemonProc, rule_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = d.call("automation.log", rule_id=rule_id)["executions"]
    return items


def test_log_and_counters_survive_a_restart(start_daemon: Any, project: Path) -> None:
    d = start_daemon({"rules": RULES})
    first = d.call("events.emit", type="ci.done", data={"n": 1})
    second = d.call("events.emit", type="ci.done", data={"n": 2})

    def builds_ended() -> bool:
        items = log_of(d, "build")
        return len(items) == 2 and all(e["task_state"] == "completed" for e in items)

    wait_for(builds_ended, 20, "both build tasks to complete")
    wait_for(lambda: rule_status(d, "note")["counts"]["executed"] == 2, 10, "the log rule")
    before = {rid: rule_status(d, rid) for rid in ("note", "build")}
    log_before = {rid: log_of(d, rid) for rid in ("note", "build")}
    d.stop()

    d2 = start_daemon(write=False)
    for rid in ("note", "build"):
        st = rule_status(d2, rid)
        assert st["counts"] == before[rid]["counts"], rid
        assert st["counts"]["executed"] == 2 and st["counts"]["succeeded"] == 2
        assert st["last_result"] == before[rid]["last_result"]
        assert st["last_fired_at"] == before[rid]["last_fired_at"]
        # The same executions, newest first, with how their tasks ended.
        assert log_of(d2, rid) == log_before[rid]
    assert [e["event_id"] for e in log_of(d2, "note")] == [second["id"], first["id"]]
    assert [e["task_state"] for e in log_of(d2, "build")] == ["completed", "completed"]

    # What a user sees.
    cli = run_cli(d2.root, "automation", "log", "--rule", "build")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.count("ci.done") == 2 and "completed" in cli.stdout
    st = run_cli(d2.root, "automation", "status")
    assert "matched 2, ran 2 (2 ok, 0 failed)" in st.stdout

    # New executions count on from there.
    d2.call("events.emit", type="ci.done", data={"n": 3})
    wait_for(lambda: rule_status(d2, "note")["counts"]["executed"] == 3, 10, "a third run")
    assert len(log_of(d2, "note")) == 3


def test_a_damaged_history_line_is_skipped_not_fatal(start_daemon: Any, project: Path) -> None:
    d = start_daemon({"rules": RULES[:1]})
    d.call("events.emit", type="ci.done", data={"n": 1})
    wait_for(lambda: rule_status(d, "note")["counts"]["executed"] == 1, 10, "one run")
    d.stop()
    history = d.paths.daemon_dir / "automation.jsonl"
    good = history.read_text()
    # A crash mid-append leaves a torn last line; a stray line may not be an object.
    history.write_text(good + "[1, 2]\n" + json.dumps({"id": "x"}) + "\n" + good[:40])

    d2 = start_daemon(write=False)
    assert rule_status(d2, "note")["counts"]["executed"] == 1
    assert len(log_of(d2, "note")) == 1
