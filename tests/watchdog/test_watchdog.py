"""The hung-process watchdog on a real daemon, with real processes started by the test
(outside the daemon) and by the daemon (a task), and the real kill log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import psutil
import pytest

from aiwgd.client import RpcError
from aiwgd.config import Paths
from tests.conftest import DaemonFactory
from tests.utils import (
    BASE_CONFIG,
    DaemonProc,
    Subscriber,
    deep_merge,
    run_cli,
    wait_for,
    write_config,
)

SCRIPT = "import time\nwhile True:\n    time.sleep(1)\n"
RULE = {"name": "fake-vitest", "match": r"fake-vitest\.py", "timeout_s": 0.5}


def watchdog_config(mode: str) -> dict[str, Any]:
    return {"watchdog": {"mode": mode, "interval_s": 0.1, "grace_s": 2, "rules": [RULE]}}


@pytest.fixture
def spawn() -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Start `fake-vitest.py` (a program that runs forever) with its cwd in a dir."""
    started: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        script = cwd / "fake-vitest.py"
        script.write_text(SCRIPT)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWG_")}
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=cwd, env={**environ, **(env or {})}
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside the project root."""
    where = Path(tempfile.mkdtemp(prefix="aiwg-out-", dir="/tmp")).resolve()
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def scans(d: DaemonProc) -> int:
    return int(d.call("daemon.status")["subsystems"]["watchdog"]["scans"])


def more_scans(d: DaemonProc, n: int = 5) -> None:
    """Wait until the watchdog has scanned `n` more times (what it decides, it has)."""
    target = scans(d) + n
    wait_for(lambda: scans(d) >= target, 10, f"{n} more watchdog scans")


def row_of(d: DaemonProc, pid: int) -> dict[str, Any] | None:
    rows = d.call("watchdog.list")["processes"]
    return next((r for r in rows if r["pid"] == pid), None)


def hung_events(d: DaemonProc, pid: int) -> list[dict[str, Any]]:
    events = d.call("events.list", type="process.hung", limit=1000)["events"]
    return [e for e in events if e["data"]["pid"] == pid]


def test_kill_mode_kills_a_hung_process_in_the_project_and_spares_one_outside(
    project: Path, outside: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    d = start_daemon(watchdog_config("kill"))
    sub = Subscriber(d, ["process.*"])
    try:
        inside = spawn(project)
        away = spawn(outside)
        hung = sub.next(lambda e: e["type"] == "process.hung" and e["data"]["pid"] == inside.pid)
        assert hung["data"]["rule"] == "fake-vitest" and hung["data"]["age_s"] >= 0.5
        assert hung["data"]["cwd"] == str(project)
        killed = sub.next(
            lambda e: e["type"] == "process.killed" and e["data"]["pid"] == inside.pid
        )
    finally:
        sub.close()
    data = killed["data"]
    assert data["kind"] == "watchdog" and data["rule"] == "fake-vitest"
    assert data["signals"] == ["SIGTERM"] and "fake-vitest.py" in data["command"]
    assert inside.wait(timeout=10) == -signal.SIGTERM

    # The same program with its cwd outside the root is not the project's: left alone.
    more_scans(d)
    assert away.poll() is None
    assert row_of(d, away.pid) is None
    assert not hung_events(d, away.pid)

    # The kill log, on disk (owner-only) and through watchdog.kills.
    path = Paths(project).kills_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["kind"], r["pid"], r["signals"]) for r in lines] == [
        ("watchdog", inside.pid, ["SIGTERM"])
    ]
    assert lines[0]["age_s"] >= 0.5 and lines[0]["rule"] == "fake-vitest"
    kills = d.call("watchdog.kills")["kills"]
    assert [(k["pid"], k["command"]) for k in kills] == [(inside.pid, lines[0]["command"])]
    row = row_of(d, inside.pid)
    assert row is not None and row["verdict"] == "killed"


def test_report_mode_reports_once_and_kills_nothing(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    d = start_daemon(watchdog_config("report"))
    proc = spawn(project)
    wait_for(lambda: hung_events(d, proc.pid), 10, "process.hung")
    more_scans(d)
    assert proc.poll() is None
    assert len(hung_events(d, proc.pid)) == 1  # once per process, not every scan
    row = row_of(d, proc.pid)
    assert row is not None and row["verdict"] == "hung" and row["rule"] == "fake-vitest"
    assert d.call("watchdog.kills")["kills"] == []
    assert not Paths(project).kills_file.exists()


def test_a_young_process_is_ok_with_its_progress(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    cfg = watchdog_config("kill")
    cfg["watchdog"]["rules"] = [{**RULE, "timeout_s": 600}]
    d = start_daemon(cfg)
    proc = spawn(project)
    row = wait_for(lambda: row_of(d, proc.pid), 10, "the process in watchdog.list")
    assert row["verdict"].startswith("ok (") and row["verdict"].endswith(" of 10 min)"), row
    assert row["state"] == "watched" and proc.poll() is None


def test_a_running_task_of_the_daemon_is_spared(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(watchdog_config("kill"))
    (project / "fake-vitest.py").write_text(SCRIPT)
    task = d.call("task.submit", command=[sys.executable, str(project / "fake-vitest.py")])
    try:
        wait_for(lambda: d.call("task.get", id=task["id"])["state"] == "running", 10, "start")
        pid = d.call("task.get", id=task["id"])["runner"]["pid"]
        wait_for(
            lambda: (r := row_of(d, pid)) is not None and r["age_s"] > 0.5, 10, "past its timeout"
        )
        more_scans(d)
        row = row_of(d, pid)
        assert row is not None and row["verdict"] == "spared: daemon child", row
        assert d.call("task.get", id=task["id"])["state"] == "running"
        assert not hung_events(d, pid)
        assert d.call("watchdog.kills")["kills"] == []
    finally:
        d.call("task.cancel", id=task["id"])


def test_cli_prints_the_list_and_the_kills(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    d = start_daemon(watchdog_config("kill"))
    proc = spawn(project)
    wait_for(lambda: d.call("watchdog.kills")["kills"], 10, "the kill")
    shown = run_cli(project, "watchdog")
    assert shown.returncode == 0, shown.stderr
    assert "mode kill, scope project" in shown.stdout
    line = next(x for x in shown.stdout.splitlines() if x.strip().startswith(str(proc.pid)))
    assert "killed" in line and "fake-vitest" in line
    kills = run_cli(project, "watchdog", "--kills")
    assert kills.returncode == 0, kills.stderr
    assert str(proc.pid) in kills.stdout and "SIGTERM" in kills.stdout
    as_json = json.loads(run_cli(project, "watchdog", "--kills", "--json").stdout)
    assert as_json["kills"][0]["pid"] == proc.pid


def test_cli_without_a_daemon_is_one_line(project: Path) -> None:
    out = run_cli(project, "watchdog")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_process_with_the_daemons_mark_is_spared_the_root_alone_is_not(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    # An orphan a task left carries AIWG_TASK_ID and AIWG_ROOT; a user's shell may
    # export AIWG_ROOT (the CLI reads it) and its test runner is no task of ours.
    d = start_daemon(watchdog_config("kill"))
    env = {"AIWG_ROOT": str(project)}
    marked = spawn(project, {**env, "AIWG_TASK_ID": "42"})
    root_only = spawn(project, env)
    wait_for(lambda: d.call("watchdog.kills")["kills"], 10, "the kill")
    assert root_only.wait(timeout=10) == -signal.SIGTERM
    more_scans(d)
    row = row_of(d, marked.pid)
    assert row is not None and row["verdict"] == "spared: daemon mark", row
    assert marked.poll() is None
    assert [k["pid"] for k in d.call("watchdog.kills")["kills"]] == [root_only.pid]


def test_cli_config_validate_names_each_bad_watchdog_key(project: Path) -> None:
    write_config(
        project,
        {
            "watchdog": {
                "mode": "nuke",
                "interval_s": 0.01,
                "rules": [
                    {"name": "a", "match": "(unclosed", "timeout_s": 5},
                    {"name": "a", "match": "ok", "timeout_s": 0},
                ],
            }
        },
    )
    out = run_cli(project, "config", "validate")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    for expected in (
        'watchdog.mode: "nuke" is not allowed (must be one of "report", "kill")',
        "watchdog.interval_s: 0.01 is out of range (must be >= 0.05)",
        'watchdog.rules[0].match: "(unclosed" is not a valid regular expression',
        "watchdog.rules[1].timeout_s: 0.0 is out of range (must be > 0)",
    ):
        assert expected in out.stderr, out.stderr
    # Duplicate names are checked once every rule parses: the second file has only that.
    write_config(
        project,
        {"watchdog": {"rules": [{"name": "a", "match": "x", "timeout_s": 1}] * 2}},
    )
    out = run_cli(project, "config", "validate")
    assert 'watchdog.rules[1].name: "a" is used twice; names must be unique' in out.stderr


STUBBORN = """import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"])
print(child.pid, flush=True)
while True:
    time.sleep(1)
"""


def test_sigterm_ignored_gets_sigkill_after_the_grace_with_its_descendants(
    project: Path, start_daemon: DaemonFactory
) -> None:
    cfg = watchdog_config("kill")
    cfg["watchdog"]["grace_s"] = 0.3
    d = start_daemon(cfg)
    script = project / "fake-vitest.py"
    script.write_text(STUBBORN)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=project, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())
        kills = wait_for(lambda: d.call("watchdog.kills")["kills"], 10, "the kill")
        assert kills[0]["pid"] == proc.pid and kills[0]["signals"] == ["SIGTERM", "SIGKILL"]
        assert proc.wait(timeout=10) == -signal.SIGKILL
        # Its child went down the same ladder (SIGTERM is enough for it).
        assert f"pid {grandchild} (python" in kills[0]["processes"], kills[0]
        wait_for(lambda: not psutil.pid_exists(grandchild) or _zombie(grandchild), 10, "child")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_user_scope_reaches_outside_the_project_and_a_reload_switches_mode(
    project: Path, outside: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    cfg = watchdog_config("report")
    cfg["watchdog"]["scope"] = "user"
    d = start_daemon(cfg)
    away = spawn(outside)
    wait_for(lambda: hung_events(d, away.pid), 10, "process.hung for the outside process")
    assert away.poll() is None
    cfg["watchdog"]["mode"] = "kill"
    write_config(project, deep_merge(BASE_CONFIG, cfg))
    d.call("daemon.reload")
    assert away.wait(timeout=10) == -signal.SIGTERM
    wait_for(lambda: d.call("watchdog.kills")["kills"], 10, "the kill recorded")
    status = d.call("daemon.status")["subsystems"]["watchdog"]
    assert (status["enabled"], status["mode"], status["scope"]) == (True, "kill", "user")
    assert (status["killed"], status["reported"], status["kill_failures"]) == (1, 1, 0)
    assert status["last_scan_at"] is not None and status["last_scan_ms"] >= 0


def test_answers_match_their_declared_schemas(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    d = start_daemon(watchdog_config("kill"))
    spawn(project)
    wait_for(lambda: d.call("watchdog.kills")["kills"], 10, "the kill")
    schemas = {m["name"]: m["result"]["schema"] for m in d.call("rpc.discover")["methods"]}
    jsonschema.validate(d.call("watchdog.list"), schemas["watchdog.list"])
    jsonschema.validate(d.call("watchdog.kills", limit=5), schemas["watchdog.kills"])
    with pytest.raises(RpcError) as bad:
        d.call("watchdog.kills", limit=0)
    assert bad.value.code == -32602 and "limit" in str(bad.value)


def test_disabled_it_looks_at_nothing_until_a_reload_enables_it(
    project: Path, start_daemon: DaemonFactory, spawn: Any
) -> None:
    cfg = watchdog_config("kill")
    cfg["watchdog"]["enabled"] = False
    d = start_daemon(cfg)
    proc = spawn(project)
    wait_for(lambda: psutil.Process(proc.pid).cmdline(), 10, "the process to exec")
    listed = d.call("watchdog.list")
    assert (listed["enabled"], listed["processes"], listed["scanned_at"]) == (False, [], None)
    status = d.call("daemon.status")["subsystems"]["watchdog"]
    assert (status["state"], status["scans"]) == ("disabled", 0)
    cfg["watchdog"]["enabled"] = True
    write_config(project, deep_merge(BASE_CONFIG, cfg))
    d.call("daemon.reload")
    assert proc.wait(timeout=10) == -signal.SIGTERM


SPAWNER = """import subprocess, sys, time
if len(sys.argv) == 1:  # the service; its child leaves for a session of its own
    subprocess.Popen([sys.executable, __file__, "child"], start_new_session=True)
while True:
    time.sleep(1)
"""


def test_a_service_and_what_it_started_in_its_own_session_are_spared(
    project: Path, start_daemon: DaemonFactory
) -> None:
    (project / "fake-vitest.py").write_text(SPAWNER)
    cfg = watchdog_config("kill")
    cfg["services"] = {"runner": {"command": [sys.executable, "fake-vitest.py"]}}
    d = start_daemon(cfg)

    def both_old() -> list[dict[str, Any]]:
        rows = d.call("watchdog.list")["processes"]
        return rows if len(rows) == 2 and all(r["age_s"] > 0.5 for r in rows) else []

    wait_for(both_old, 10, "the service and its child past their timeout")
    more_scans(d)
    rows = d.call("watchdog.list")["processes"]
    assert [r["verdict"] for r in rows] == ["spared: daemon child"] * 2, rows
    assert all(psutil.pid_exists(r["pid"]) for r in rows)
    assert d.call("watchdog.kills")["kills"] == []
