"""The automation engine over a real daemon: rules -> tasks, guards, approvals, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from tests.httphook import HookServer
from tests.utils import DaemonProc, run_cli, wait_for, write_config

# A task command that records exactly the argv it received.
ARGV_DUMP = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def rule(rule_id: str, trigger: str, action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "trigger": {"type": trigger}, "action": action, **extra}


def rules_config(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"rules": list(rules), **extra}


def status_of(d: DaemonProc, rule_id: str) -> dict[str, Any]:
    return next(r for r in d.call("automation.status")["rules"] if r["id"] == rule_id)


def executions(d: DaemonProc, rule_id: str | None = None) -> list[dict[str, Any]]:
    params = {"rule_id": rule_id} if rule_id else {}
    return d.call("automation.log", limit=1000, **params)["executions"]


def events_of(d: DaemonProc, etype: str) -> list[dict[str, Any]]:
    return d.call("events.list", type=etype, limit=10_000)["events"]


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with HookServer() as h:
        yield h


def wait_watching(d: DaemonProc) -> None:
    """Wait until the watcher is watching with its first index done (before editing files)."""

    def watching() -> bool:
        w = d.call("daemon.status")["subsystems"]["watcher"]
        return bool(w["state"] == "watching" and w["index_complete"])

    wait_for(watching, 10, "the watcher")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- rules -> tasks ------------------------------------------------------------------------


def test_event_to_rule_to_task_with_argv_templates(start_daemon: Any, project: Path) -> None:
    out = project / "argv.json"
    action = {
        "type": "task",
        "command": [
            sys.executable,
            "-c",
            ARGV_DUMP,
            str(out),
            "{{data.path}}",
            "{{type}}",
            "--id={{id}}",
        ],
    }
    r = rule(
        "lint",
        "file.modified",
        action,
        conditions=[{"field": "data.path", "op": "glob", "value": "*.py"}],
    )
    d = start_daemon(rules_config(r))
    nasty = "src/my file; $(touch pwned) \"q\" 'x'.py"
    d.call("events.emit", type="file.modified", data={"path": "README.md"})  # no match
    ev = d.call("events.emit", type="file.modified", data={"path": nasty})
    got = wait_for(lambda: out.exists() and json.loads(out.read_text()), 15, "the task to run")
    # Each value is its own argv element, verbatim; nothing went through a shell.
    assert got == [nasty, "file.modified", f"--id={ev['id']}"]
    assert not (project / "pwned").exists()

    def ended() -> list[dict[str, Any]]:
        return [e for e in executions(d, "lint") if e["task_state"] == "completed"]

    exe = wait_for(ended, 10, "the execution to learn how its task ended")[0]
    assert exe["state"] == "succeeded" and exe["event_id"] == ev["id"]
    assert exe["task_state"] == "completed"
    task = d.call("task.get", id=exe["task_id"])
    assert task["source"] == "rule"
    assert task["metadata"]["rule_id"] == "lint" and task["metadata"]["event_id"] == ev["id"]
    st = status_of(d, "lint")
    assert st["counts"]["matched"] == 1 and st["counts"]["succeeded"] == 1
    assert st["last_result"] == f"succeeded (task {exe['task_id']})"


def test_file_edit_to_watcher_to_rule_to_task(start_daemon: Any, project: Path) -> None:
    src = project / "src"
    src.mkdir()
    target = src / "my module.py"
    target.write_text("x = 1\n")
    (src / "notes.txt").write_text("n\n")
    out = project / "ran.json"
    # The README's safe pattern: the value is its own argv element, never shell text.
    script = f'printf "%s" "$1" > "{out}"'
    action = {"type": "task", "command": ["sh", "-c", script, "--", "{{data.path}}"]}
    r = rule(
        "on-edit",
        "file.modified",
        action,
        conditions=[{"field": "data.path", "op": "glob", "value": "src/*.py"}],
    )
    watch = {"enabled": True, "debounce_ms": 50, "paths": [{"path": "src/"}]}
    d = start_daemon(rules_config(r, watch=watch))

    wait_watching(d)
    (src / "notes.txt").write_text("no rule for this\n")
    target.write_text("x = 2\n")
    ran = wait_for(lambda: out.exists() and out.read_text(), 15, "the rule's task to run")
    assert ran == "src/my module.py"
    exe = executions(d, "on-edit")
    assert len(exe) == 1 and exe[0]["event_type"] == "file.modified"
    st = status_of(d, "on-edit")["counts"]
    assert st["matched"] == 1 and st["executed"] == 1


def test_template_missing_field_fails_that_execution_only(start_daemon: Any) -> None:
    d = start_daemon(
        rules_config(
            rule("bad", "x.*", {"type": "log", "message": "path {{data.path}}"}),
            rule(
                "good",
                "x.*",
                {"type": "emit", "event_type": "x_done.ok", "data": {"n": "{{data.n}}"}},
            ),
        )
    )
    d.call("events.emit", type="x.happened", data={"n": 7})
    bad = wait_for(lambda: executions(d, "bad"), 5, "the failed execution")[0]
    assert bad["state"] == "failed" and bad["attempts"] == 1  # never retried
    assert "{{data.path}}: the event has no field 'data.path'" in bad["error"]
    done = wait_for(lambda: events_of(d, "x_done.ok"), 5, "the other rule's event")
    assert done[0]["data"] == {"n": 7} and done[0]["source"] == "rule"
    assert d.call("dlq.list")["entries"] == []


# ---- loop guard --------------------------------------------------------------------------


def test_a_self_triggering_rule_cannot_run_away(start_daemon: Any) -> None:
    loop = rule(
        "loop", "loop.*", {"type": "emit", "event_type": "loop.again", "data": {}}, max_per_minute=5
    )
    cool = rule("cool", "cool.*", {"type": "log", "message": "cool"}, cooldown_s=60)
    d = start_daemon(rules_config(loop, cool))
    d.call("events.emit", type="loop.start", data={})
    wait_for(lambda: status_of(d, "loop")["counts"]["suppressed"] >= 1, 10, "the guard")
    counts = status_of(d, "loop")["counts"]
    assert counts["executed"] == 5 and counts["matched"] == 6
    assert len(events_of(d, "loop.again")) == 5  # and then it stopped
    assert d.call("ping") == "pong"

    for _ in range(3):
        d.call("events.emit", type="cool.x", data={})
    wait_for(lambda: status_of(d, "cool")["counts"]["matched"] == 3, 5, "three matches")
    counts = status_of(d, "cool")["counts"]
    assert counts["executed"] == 1 and counts["suppressed"] == 2
    dry = d.call("automation.test", event={"type": "cool.y"})["rules"]
    assert next(r for r in dry if r["rule_id"] == "cool")["guard"].startswith("cooldown: ")


def test_a_rule_writing_into_its_own_watched_path_is_held_back(
    start_daemon: Any, project: Path
) -> None:
    src = project / "src"
    src.mkdir()
    (src / "log.txt").write_text("")
    # Every run appends to the very file whose change triggers the rule.
    action = {
        "type": "task",
        "command": ["sh", "-c", 'echo tick >> "$1"', "sh", str(src / "log.txt")],
    }
    r = rule("echo", "file.modified", action, max_per_minute=3)
    watch = {"enabled": True, "debounce_ms": 50, "paths": [{"path": "src/"}]}
    d = start_daemon(rules_config(r, watch=watch))

    wait_watching(d)
    (src / "log.txt").write_text("start\n")
    wait_for(lambda: status_of(d, "echo")["counts"]["suppressed"] >= 1, 15, "the guard")
    assert status_of(d, "echo")["counts"]["executed"] == 3
    ticks = (src / "log.txt").read_text().count("tick")
    assert ticks == 3  # three runs, then the loop is cut
    assert d.call("ping") == "pong"


# ---- approvals ---------------------------------------------------------------------------


def test_approval_flow(start_daemon: Any) -> None:
    gated = rule(
        "gated",
        "deploy.*",
        {"type": "emit", "event_type": "deploy_ok.done", "data": {"what": "{{data.what}}"}},
        requires_approval=True,
    )
    d = start_daemon(rules_config(gated))
    d.call("events.emit", type="deploy.requested", data={"what": "v1"})
    d.call("events.emit", type="deploy.requested", data={"what": "v2"})
    pending = wait_for(lambda: d.call("automation.pending")["pending"], 5, "pending")
    wait_for(lambda: d.call("automation.pending")["count"] == 2, 5, "two pending")
    pending = d.call("automation.pending")["pending"]
    assert [p["event"]["data"]["what"] for p in pending] == ["v1", "v2"]
    assert events_of(d, "deploy_ok.done") == []  # nothing ran without approval
    assert len(events_of(d, "automation.pending")) == 2

    first, second = pending[0]["id"], pending[1]["id"]
    cli = run_cli(d.root, "automation", "approve", first)
    assert cli.returncode == 0, cli.stderr
    done = wait_for(lambda: events_of(d, "deploy_ok.done"), 5, "the approved action")
    assert done[0]["data"] == {"what": "v1"}
    with pytest.raises(RpcError) as info:
        d.call("automation.approve", execution_id=first)
    assert info.value.code == -32002 and "is not pending" in info.value.message

    rejected = d.call("automation.reject", execution_id=second, reason="not today")
    assert rejected["state"] == "rejected" and rejected["error"] == "not today"
    assert d.call("automation.pending")["count"] == 0
    assert len(events_of(d, "deploy_ok.done")) == 1
    with pytest.raises(RpcError) as info:
        d.call("automation.reject", execution_id="ex-nope")
    assert info.value.code == -32001
    states = {e["id"]: e["state"] for e in executions(d, "gated")}
    assert states == {first: "succeeded", second: "rejected"}


# ---- webhooks ----------------------------------------------------------------------------


def test_webhook_posts_the_event_with_an_hmac_signature(
    start_daemon: Any, hooks: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWG_TEST_HOOK_SECRET", "s3cret")
    url = hooks.url("/hook/{{data.name}}")
    d = start_daemon(
        rules_config(
            rule(
                "hook",
                "ci.*",
                {"type": "webhook", "url": url, "secret_env": "AIWG_TEST_HOOK_SECRET"},
            ),
            rule("plain", "ci.*", {"type": "webhook", "url": hooks.url("/p")}),
        )
    )
    ev = d.call("events.emit", type="ci.finished", data={"name": "build", "ok": True})
    wait_for(lambda: len(hooks.requests) == 2, 10, "two webhook requests")
    by_path = {r["path"]: r for r in hooks.requests}
    signed = by_path["/hook/build"]
    assert json.loads(signed["body"]) == ev  # the event itself, as JSON
    expected = "sha256=" + hmac.new(b"s3cret", signed["body"], hashlib.sha256).hexdigest()
    assert signed["headers"]["X-Aiwg-Signature"] == expected
    assert signed["headers"]["X-Aiwg-Event"] == "ci.finished"
    assert signed["headers"]["X-Aiwg-Delivery"] == ev["id"]
    assert signed["headers"]["Content-Type"] == "application/json"
    assert "X-Aiwg-Signature" not in by_path["/p"]["headers"]
    wait_for(lambda: status_of(d, "hook")["counts"]["succeeded"] == 1, 5, "success recorded")
    assert executions(d, "hook")[0]["result"]["status"] == 200


def test_failing_webhook_is_retried_then_dead_lettered_then_replayed(
    start_daemon: Any,
) -> None:
    port = closed_port()
    d = start_daemon(
        rules_config(
            rule(
                "hook",
                "ci.*",
                {"type": "webhook", "url": f"http://127.0.0.1:{port}/h", "timeout_s": 2},
            ),
            events={"max_retries": 2, "retry_base_ms": 20},
        )
    )
    ev = d.call("events.emit", type="ci.failed", data={})
    entries = wait_for(lambda: d.call("dlq.list")["entries"], 10, "a dead letter")
    assert len(entries) == 1
    dead = entries[0]
    assert dead["subscriber"] == "automation:hook" and dead["attempts"] == 3
    assert dead["event"]["id"] == ev["id"]
    assert "Connection refused" in dead["error"]
    exe = executions(d, "hook")[0]
    assert exe["state"] == "failed" and exe["attempts"] == 3
    assert "Connection refused" in exe["error"]
    assert status_of(d, "hook")["counts"]["failed"] == 1

    # The receiver comes back: replaying the dead letter delivers it.
    with HookServer(port) as server:
        out = d.call("dlq.replay", all=True)
        assert out["replayed"] == [dead["id"]]
        wait_for(lambda: server.requests, 10, "the replayed webhook")
        assert server.bodies[0]["id"] == ev["id"]
        wait_for(lambda: status_of(d, "hook")["counts"]["succeeded"] == 1, 5, "success")
    assert d.call("dlq.list")["entries"] == []


def test_webhook_error_status_counts_as_failure(start_daemon: Any) -> None:
    with HookServer(status=500) as server:
        d = start_daemon(
            rules_config(
                rule("hook", "ci.*", {"type": "webhook", "url": server.url("/")}),
                events={"max_retries": 1, "retry_base_ms": 10},
            )
        )
        d.call("events.emit", type="ci.x", data={})
        entry = wait_for(lambda: d.call("dlq.list")["entries"], 10, "a dead letter")[0]
        assert "answered HTTP 500" in entry["error"]
        assert len(server.requests) == 2  # first try + one retry


# ---- switches, dry runs, reload ----------------------------------------------------------


def test_enable_disable_persist_across_restart(start_daemon: Any) -> None:
    r = rule("r", "t.*", {"type": "log", "message": "hi"})
    d = start_daemon(rules_config(r, rule("other", "t.*", {"type": "log", "message": "x"})))
    assert d.call("automation.disable", rule_id="r")["rule_enabled"] is False
    d.call("events.emit", type="t.a", data={})
    wait_for(lambda: status_of(d, "other")["counts"]["executed"] == 1, 5, "the other rule")
    assert status_of(d, "r")["counts"]["matched"] == 0
    cli = run_cli(d.root, "automation", "disable")
    assert cli.returncode == 0 and cli.stdout.strip() == "automation disabled"
    d.stop()

    d2 = start_daemon(write=False)
    st = d2.call("automation.status")
    assert st["enabled"] is False
    assert status_of(d2, "r")["enabled"] is False and status_of(d2, "r")["override"] is False
    d2.call("events.emit", type="t.b", data={})
    dry = d2.call("automation.test", event={"type": "t.b"})
    assert all(not r["would_run"] for r in dry["rules"])
    d2.call("automation.enable")
    d2.call("automation.enable", rule_id="r")
    d2.call("events.emit", type="t.c", data={})
    wait_for(lambda: status_of(d2, "r")["counts"]["executed"] == 1, 5, "r to run again")
    # One before the restart (counters survive it) and t.c; t.b was ignored while off.
    assert status_of(d2, "other")["counts"]["executed"] == 2
    with pytest.raises(RpcError) as info:
        d2.call("automation.enable", rule_id="nope")
    assert info.value.code == -32001 and "no rule with id 'nope'" in info.value.message


def test_dry_run_explains_and_runs_nothing(start_daemon: Any) -> None:
    d = start_daemon(
        rules_config(
            rule(
                "py",
                "file.*",
                {"type": "task", "command": ["ruff", "check", "{{data.path}}"]},
                conditions=[{"field": "data.path", "op": "matches", "value": r"\.py$"}],
            ),
            rule("other", "task.*", {"type": "log", "message": "x"}),
            rule("needs", "file.*", {"type": "log", "message": "{{data.owner}}"}),
        )
    )
    res = d.call("automation.test", event={"type": "file.modified", "data": {"path": "a b.py"}})
    by = {r["rule_id"]: r for r in res["rules"]}
    assert by["py"]["would_run"] is True
    assert by["py"]["action"] == {"type": "task", "command": ["ruff", "check", "a b.py"]}
    assert by["other"]["matched"] is False
    assert by["other"]["reasons"] == ["type 'file.modified' does not match trigger 'task.*'"]
    assert by["needs"]["would_run"] is False and "data.owner" in by["needs"]["error"]
    res = d.call("automation.test", event={"type": "file.modified", "data": {"path": "a.ts"}})
    assert res["rules"][0]["reasons"] == [
        'conditions[0]: data.path = "a.ts" does not match /\\.py$/'
    ]
    assert d.call("automation.log")["executions"] == []  # a dry run runs nothing
    cli = run_cli(d.root, "automation", "test", "file.created", '{"path": "x.py"}')
    assert cli.returncode == 0
    assert 'py: WOULD RUN: {"type": "task", "command": ["ruff", "check", "x.py"]}' in cli.stdout
    for params, fragment in [
        ({}, "event: is required"),
        ({"event": {"data": {}}}, "event.type: is required"),
        ({"event": {"type": "a", "dat": {}}}, 'event.dat: unknown key; did you mean "data"?'),
    ]:
        with pytest.raises(RpcError) as info:
            d.call("automation.test", **params)
        assert info.value.code == -32602 and fragment in info.value.message
    with pytest.raises(RpcError) as info:
        d.call("automation.log", limit=0)
    assert info.value.code == -32602 and "limit: 0 is out of range" in info.value.message


def test_reload_swaps_rules_live_and_keeps_pending(start_daemon: Any) -> None:
    gated = rule("gated", "g.*", {"type": "log", "message": "ok"}, requires_approval=True)
    a = rule("a", "t.*", {"type": "emit", "event_type": "from.a", "data": {}})
    d = start_daemon(rules_config(gated, a))
    d.call("events.emit", type="g.x", data={})
    pend = wait_for(lambda: d.call("automation.pending")["pending"], 5, "a pending")[0]

    b = rule("b", "t.*", {"type": "emit", "event_type": "from.b", "data": {}})
    write_config(d.root, {"watch": {"enabled": False, "paths": []}, **rules_config(gated, b)})
    assert d.call("daemon.reload")["reloaded"] is True
    assert [r["id"] for r in d.call("automation.status")["rules"]] == ["gated", "b"]
    d.call("events.emit", type="t.y", data={})
    wait_for(lambda: events_of(d, "from.b"), 5, "the new rule to act")
    assert events_of(d, "from.a") == []
    assert d.call("automation.pending")["pending"][0]["id"] == pend["id"]  # not lost
    assert d.call("automation.approve", execution_id=pend["id"])["rule_id"] == "gated"

    bad = rule(
        "bad",
        "t.*",
        {"type": "log", "message": "m"},
        conditions=[{"field": "data.x", "op": "matches", "value": "(["}],
    )
    write_config(d.root, {"watch": {"enabled": False, "paths": []}, **rules_config(bad)})
    with pytest.raises(RpcError) as info:
        d.call("daemon.reload")
    assert info.value.code == -32006
    assert "rules[0].conditions[0].value" in info.value.message
    assert [r["id"] for r in d.call("automation.status")["rules"]] == ["gated", "b"]
    d.call("events.emit", type="t.z", data={})
    wait_for(lambda: len(events_of(d, "from.b")) == 2, 5, "the kept rules to keep working")


def test_pending_approval_survives_a_restart(start_daemon: Any) -> None:
    gated = rule(
        "gated",
        "g.*",
        {"type": "emit", "event_type": "g_ok.done", "data": {"n": "{{data.n}}"}},
        requires_approval=True,
    )
    d = start_daemon(rules_config(gated))
    ev = d.call("events.emit", type="g.x", data={"n": 1})
    pend = wait_for(lambda: d.call("automation.pending")["pending"], 5, "a pending")[0]
    d.stop()
    d2 = start_daemon(write=False)
    again = d2.call("automation.pending")["pending"]
    assert [(p["id"], p["event"]["id"]) for p in again] == [(pend["id"], ev["id"])]
    d2.call("automation.approve", execution_id=pend["id"])
    done = wait_for(lambda: events_of(d2, "g_ok.done"), 5, "the approved action")
    assert done[0]["data"] == {"n": 1}
    d2.stop()
    assert start_daemon(write=False).call("automation.pending")["count"] == 0


def test_cli_status_log_and_pending_render(start_daemon: Any) -> None:
    d = start_daemon(rules_config(rule("r", "t.*", {"type": "log", "message": "hello"})))
    d.call("events.emit", type="t.a", data={})
    wait_for(lambda: executions(d), 5, "an execution")
    st = run_cli(d.root, "automation", "status")
    assert st.returncode == 0
    assert "automation is enabled; 0 pending approval" in st.stdout
    assert "r  [on ]  t.* -> log" in st.stdout
    lg = run_cli(d.root, "automation", "log")
    assert lg.returncode == 0 and "t.a" in lg.stdout and "succeeded" in lg.stdout
    pend = run_cli(d.root, "--json", "automation", "pending")
    assert pend.returncode == 0 and json.loads(pend.stdout) == {"pending": [], "count": 0}
    bad = run_cli(d.root, "automation", "approve", "ex-nope")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "aiwg: error -32001: no pending execution with id 'ex-nope'"
