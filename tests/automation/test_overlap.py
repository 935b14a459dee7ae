"""Rule overlap and cooldown over a real daemon and the real watcher (issue 8).

A file-change rule used to start one task per changed file (3 saves at once = 3 full
test runs), and a save held back by `cooldown_s` was never run. Each run here is the
test program gated on a file (`--gate`), so "still running" is a state the test
controls, not a race it hopes to win.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config.load import parse_config
from aiwgd.config.schema import ValidationError
from tests.taskhelp import TERMINAL, prog, records
from tests.utils import REPO, DaemonProc, run_cli, wait_for

FINAL = ("succeeded", "failed", "rejected", "skipped")


def watch_src(debounce_ms: int = 50) -> dict[str, Any]:
    return {"enabled": True, "debounce_ms": debounce_ms, "paths": [{"path": "src/"}]}


def task_rule(rule_id: str, rec: Path, gate: Path, **extra: Any) -> dict[str, Any]:
    """A file.* rule whose task records its start and end, and waits for `gate`."""
    command = prog("--record", str(rec), "{{data.path}}", "--gate", str(gate))
    return {
        "id": rule_id,
        "trigger": {"type": "file.*"},
        "action": {"type": "task", "command": command},
        **extra,
    }


def rule_status(d: DaemonProc, rule_id: str) -> dict[str, Any]:
    return next(r for r in d.call("automation.status")["rules"] if r["id"] == rule_id)


def executions(d: DaemonProc, rule_id: str) -> list[dict[str, Any]]:
    """The rule's executions, oldest first."""
    items = d.call("automation.log", rule_id=rule_id, limit=1000)["executions"]
    return list(reversed(items))


def settled(d: DaemonProc, rule_id: str, count: int) -> list[dict[str, Any]] | None:
    """The executions once `count` exist, all final, every task ended; else None."""
    items = executions(d, rule_id)
    if len(items) != count:
        return None
    for e in items:
        if e["state"] not in FINAL:
            return None
        if e["task_id"] and e["task_state"] not in TERMINAL:
            return None
    return items


def save(path: Path) -> None:
    """Save as an editor does, by renaming over: one change, so one event per save even
    on a loaded machine (a truncate then a write can be seen as two saves)."""
    tmp = path.parent.parent / f".saving-{path.name}"  # outside the watched src/
    tmp.write_text("v2\n")
    os.replace(tmp, path)


def starts(rec: Path) -> list[str]:
    return [name for kind, name, _, _ in records(rec) if kind == "start"]


def wait_watching(d: DaemonProc) -> None:
    def watching() -> bool:
        w = d.call("daemon.status")["subsystems"]["watcher"]
        return bool(w["state"] == "watching" and w["index_complete"])

    wait_for(watching, 10, "the watcher")


def file_events(d: DaemonProc) -> list[dict[str, Any]]:
    return d.call("events.list", type="file.*", limit=1000)["events"]


@pytest.fixture
def src(project: Path) -> Path:
    path = project / "src"
    path.mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (path / name).write_text("v1\n")
    return path


def test_three_saves_at_once_give_one_run_and_one_queued_with_the_latest(
    start_daemon: Any, project: Path, src: Path
) -> None:
    rec, gate = project / "runs.log", project / "gate"
    # No overlap key: the default for a task rule is what fixes the complaint.
    d = start_daemon({"watch": watch_src(), "rules": [task_rule("tests", rec, gate)]})
    wait_watching(d)
    for name in ("a.py", "b.py", "c.py"):
        save(src / name)
    wait_for(lambda: rule_status(d, "tests")["counts"]["matched"] == 3, 15, "three matches")
    wait_for(lambda: starts(rec), 15, "the first run to start")
    (gate).touch()  # let the runs finish

    items = wait_for(lambda: settled(d, "tests", 3), 20, "three settled executions")
    ran = starts(rec)
    assert len(ran) == 2, f"one run and one queued run, not one per file: {ran}"
    # The queued run carries the latest event; the one in between gave way to it.
    newest = [e["data"]["path"] for e in file_events(d) if e["type"] == "file.modified"][-1]
    assert ran[1] == newest
    states = [e["state"] for e in items]
    assert states.count("succeeded") == 2 and states.count("skipped") == 1
    skipped = next(e for e in items if e["state"] == "skipped")
    assert skipped["task_id"] is None and "superseded by" in skipped["error"]
    counts = rule_status(d, "tests")["counts"]
    assert counts["matched"] == 3 and counts["executed"] == 2 and counts["skipped"] == 1
    assert rule_status(d, "tests")["overlap"] == "queue"
    # What a user sees.
    st = run_cli(d.root, "automation", "status")
    assert "tests  [on ]  file.* -> task  overlap queue" in st.stdout
    assert "matched 3, ran 2 (2 ok, 0 failed), held back 0, 1 skipped;" in st.stdout
    lg = run_cli(d.root, "automation", "log")
    assert f"skipped  superseded by {items[2]['id']}" in lg.stdout


def test_a_save_during_the_cooldown_runs_once_the_cooldown_ends(
    start_daemon: Any, project: Path, src: Path
) -> None:
    rec, gate = project / "runs.log", project / "gate"
    gate.touch()  # runs end at once: only the cooldown holds anything back
    # Long enough that the next two saves land inside it even on a loaded machine.
    cooldown = 4.0
    r = task_rule("tests", rec, gate, cooldown_s=cooldown)
    d = start_daemon({"watch": watch_src(), "rules": [r]})
    wait_watching(d)
    save(src / "a.py")
    wait_for(lambda: rule_status(d, "tests")["counts"]["executed"] == 1, 15, "the first run")
    # Two more saves inside the cooldown: held back, and the latest one is kept.
    save(src / "b.py")
    wait_for(lambda: rule_status(d, "tests")["counts"]["matched"] == 2, 15, "the 2nd match")
    save(src / "c.py")
    wait_for(lambda: rule_status(d, "tests")["counts"]["matched"] == 3, 15, "the 3rd match")
    assert rule_status(d, "tests")["counts"]["suppressed"] == 2

    assert rule_status(d, "tests")["deferred"] is not None
    items = wait_for(lambda: settled(d, "tests", 2), 20, "the held-back save to run")
    assert starts(rec) == ["src/a.py", "src/c.py"]
    # It ran when the cooldown ended, not before.
    assert items[1]["created_at"] - items[0]["created_at"] >= cooldown - 0.05
    assert [e["state"] for e in items] == ["succeeded", "succeeded"]


def test_replace_cancels_the_running_task_and_starts_anew(
    start_daemon: Any, project: Path, src: Path
) -> None:
    rec, gate = project / "runs.log", project / "gate"
    r = task_rule("tests", rec, gate, overlap="replace")
    d = start_daemon({"watch": watch_src(), "rules": [r], "daemon": {"stop_grace_seconds": 1}})
    wait_watching(d)
    save(src / "a.py")
    wait_for(lambda: starts(rec) == ["src/a.py"], 15, "the first run")
    save(src / "b.py")
    wait_for(lambda: starts(rec) == ["src/a.py", "src/b.py"], 15, "the replacing run")
    first, second = executions(d, "tests")
    old = d.call("task.get", id=first["task_id"])
    assert old["state"] == "cancelled"  # stopped before the new run started
    assert d.call("task.get", id=second["task_id"])["state"] == "running"
    assert ("end", "src/a.py") not in [(k, n) for k, n, _, _ in records(rec)]
    gate.touch()
    items = wait_for(lambda: settled(d, "tests", 2), 20, "the new run to end")
    assert [e["task_state"] for e in items] == ["cancelled", "completed"]
    assert "replaced by" in items[0]["error"]
    assert rule_status(d, "tests")["counts"]["replaced"] == 1


def test_replace_with_three_saves_at_once_finishes_only_the_latest(
    start_daemon: Any, project: Path, src: Path
) -> None:
    rec, gate = project / "runs.log", project / "gate"
    r = task_rule("tests", rec, gate, overlap="replace")
    d = start_daemon({"watch": watch_src(), "rules": [r], "daemon": {"stop_grace_seconds": 1}})
    wait_watching(d)
    for name in ("a.py", "b.py", "c.py"):
        save(src / name)
    wait_for(lambda: rule_status(d, "tests")["counts"]["matched"] == 3, 15, "three matches")

    def first_cancelled() -> bool:
        first = executions(d, "tests")[0]
        return bool(first["task_id"]) and first["task_state"] == "cancelled"

    # Whether the first task had started or was still being submitted, it is cancelled.
    wait_for(first_cancelled, 15, "the first run's task to be cancelled")
    gate.touch()
    items = wait_for(lambda: settled(d, "tests", 3), 20, "three settled executions")
    newest = [e["data"]["path"] for e in file_events(d) if e["type"] == "file.modified"][-1]
    ended = [name for kind, name, _, _ in records(rec) if kind == "end"]
    assert ended == [newest]  # only the latest save's run finished
    assert (items[-1]["state"], items[-1]["task_state"]) == ("succeeded", "completed")
    # The middle one gave way while it waited (skipped), or, if the saves reached the
    # daemon far enough apart, it started and was replaced in its turn.
    assert items[1]["state"] == "skipped" or items[1]["task_state"] == "cancelled"
    replaced = rule_status(d, "tests")["counts"]["replaced"]
    assert replaced == sum(1 for e in items if e["task_state"] == "cancelled")


def test_skip_drops_a_trigger_while_a_run_is_going(
    start_daemon: Any, project: Path, src: Path
) -> None:
    rec, gate = project / "runs.log", project / "gate"
    r = task_rule("tests", rec, gate, overlap="skip")
    d = start_daemon({"watch": watch_src(), "rules": [r]})
    wait_watching(d)
    save(src / "a.py")
    wait_for(lambda: starts(rec) == ["src/a.py"], 15, "the first run")
    save(src / "b.py")
    wait_for(lambda: len(executions(d, "tests")) == 2, 15, "the second trigger")
    gate.touch()
    items = wait_for(lambda: settled(d, "tests", 2), 20, "both to settle")
    assert starts(rec) == ["src/a.py"]
    assert [e["state"] for e in items] == ["succeeded", "skipped"]
    assert "still running" in items[1]["error"]
    assert rule_status(d, "tests")["counts"]["skipped"] == 1


RAW = {"id": "r", "trigger": {"type": "file.*"}, "action": {"type": "log", "message": "m"}}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            {"overlap": "sometimes"},
            'rules[0].overlap: "sometimes" is not allowed (must be one of "skip", '
            '"queue", "replace", "allow")',
        ),
        (
            {"overlap": "replace"},
            'rules[0].overlap: "replace" cancels the running task, so it needs a '
            '"task" action (this rule\'s action is "log"); use "queue" or "skip"',
        ),
    ],
)
def test_bad_overlap_is_a_config_error(extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config({"rules": [{**RAW, **extra}]})
    assert fragment in str(info.value), str(info.value)


def test_default_overlap_queues_tasks_and_lets_every_notification_through() -> None:
    task = {**RAW, "action": {"type": "task", "command": ["true"]}}
    cfg = parse_config({"rules": [task, {**RAW, "id": "n"}]})
    assert [r.overlap_policy for r in cfg.rules] == ["queue", "allow"]


def test_the_readme_rule_example_is_a_valid_rule() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### `rules`") : readme.index("## JSON-RPC API")]
    example = section.split("```json", 1)[1].split("```", 1)[0]
    cfg = parse_config({"rules": [json.loads(example)]})
    assert cfg.rules[0].overlap_policy == "replace" and cfg.rules[0].cooldown_s == 2
