"""The daemon's life on disk and under signals: files, modes, heartbeat, reload, stop."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiwgd.cli.daemonctl import lock_held
from aiwgd.client import RpcError
from aiwgd.config import defaults, to_json
from tests.rawrpc import Conn, one, req
from tests.utils import BASE_CONFIG, DaemonProc, deep_merge, env_for_tests, wait_for, write_config


def state(d: DaemonProc) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(d.paths.state_file.read_text())
    return data


def log_records(d: DaemonProc) -> list[dict[str, Any]]:
    """Every record in daemon.log and its rotated files, oldest file first."""
    files = sorted(
        d.paths.daemon_dir.glob("daemon.log*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    out = []
    for f in files:
        out += [json.loads(line) for line in f.read_text().splitlines()]
    return out


def messages(d: DaemonProc) -> list[str]:
    return [r["msg"] for r in log_records(d)]


def rewrite(d: DaemonProc, extra: dict[str, Any]) -> None:
    write_config(d.root, deep_merge(BASE_CONFIG, extra))


# ---- files and modes --------------------------------------------------------------------


def test_files_modes_and_state(daemon: DaemonProc) -> None:
    p = daemon.paths
    assert stat.S_IMODE(p.daemon_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(p.aiwg_dir.stat().st_mode) == 0o700  # its config too is the owner's
    assert stat.S_ISSOCK(p.socket.stat().st_mode)
    assert stat.S_IMODE(p.socket.stat().st_mode) == 0o600
    assert p.pid_file.read_text() == f"{daemon.pid}\n"
    for f in (p.pid_file, p.state_file, p.log_file, p.lock_file):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f  # owner only
    assert lock_held(p)
    s = state(daemon)
    assert s["pid"] == daemon.pid
    assert s["root"] == str(daemon.root)
    assert s["state"] == "running"
    assert s["config"]["status"] == "ok" and s["config"]["errors"] == []
    assert isinstance(s["started_at"], float) and isinstance(s["uptime_s"], float)
    assert isinstance(s["heartbeat_at"], float)
    assert s["subsystems"]["rpc"]["state"] == "running"
    assert s["subsystems"]["events"]["state"] == "running"
    # The log is pure JSON lines; stderr gets the readable form.
    records = log_records(daemon)
    assert {"starting", "ready"} <= {r["msg"] for r in records}
    assert all({"time", "level", "logger", "msg"} <= set(r) for r in records)
    assert "INFO    aiwgd.daemon: ready" in daemon.stderr()


def test_missing_config_is_created_with_defaults(start_daemon: Any, project: Path) -> None:
    d = start_daemon(write=False)
    assert d.paths.config_file.read_text() == to_json(defaults())
    assert stat.S_IMODE(d.paths.config_file.stat().st_mode) == 0o600
    assert d.call("ping") == "pong"


def test_heartbeat_rewrites_state(start_daemon: Any) -> None:
    d = start_daemon({"daemon": {"heartbeat_interval_seconds": 0.1}})
    first = state(d)["heartbeat_at"]
    later = wait_for(lambda: state(d)["heartbeat_at"] > first and state(d), 5, "a heartbeat")
    assert later["uptime_s"] > 0
    assert d.call("daemon.status")["heartbeat_at"] >= later["heartbeat_at"]


def test_invalid_config_refuses_to_start(project: Path) -> None:
    write_config(project, {"daemon": {"max_parallel_actions": 0, "heartbeat_interval": 5}})
    d = DaemonProc(project).start(wait=False)
    assert d.wait_exit(15) == 1
    err = d.stderr()
    assert "invalid config" in err
    assert "daemon.max_parallel_actions: 0 is out of range (must be >= 1)" in err
    assert (
        'daemon.heartbeat_interval: unknown key; did you mean "heartbeat_interval_seconds"?' in err
    )
    assert "Traceback" not in err
    assert not d.paths.socket.exists() and not d.paths.pid_file.exists()


# ---- single instance and stale files ------------------------------------------------------


def test_second_instance_is_refused(daemon: DaemonProc) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aiwgd", "--root", str(daemon.root)],
        capture_output=True,
        text=True,
        timeout=15,
        env=env_for_tests(),
    )
    assert out.returncode == 1
    assert out.stderr.strip() == f"aiwgd: already running (PID {daemon.pid})"
    # The first one is untouched: same socket, same PID file.
    assert daemon.call("daemon.status")["pid"] == daemon.pid
    assert daemon.paths.pid_file.read_text() == f"{daemon.pid}\n"


def test_stale_files_after_kill9_never_block_a_start(start_daemon: Any) -> None:
    d1 = start_daemon()
    d1.kill9()
    p = d1.paths
    assert p.socket.exists() and p.pid_file.exists() and p.state_file.exists()
    assert not lock_held(p)
    d2 = start_daemon(write=False)
    assert d2.call("daemon.status")["pid"] == d2.pid != d1.pid
    assert p.pid_file.read_text() == f"{d2.pid}\n"


def test_stale_pid_file_naming_a_live_process_does_not_block(
    start_daemon: Any, project: Path
) -> None:
    from aiwgd.config import Paths

    Paths(project).aiwg_dir.mkdir(parents=True, exist_ok=True)
    Paths(project).pid_file.write_text("1\n")  # init is alive, but holds no lock of ours
    d = start_daemon()
    assert d.paths.pid_file.read_text() == f"{d.pid}\n"


# ---- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully(daemon: DaemonProc, sig: int) -> None:
    daemon.signal(sig)
    assert daemon.wait_exit() == 0
    p = daemon.paths
    assert not p.socket.exists()
    assert not p.pid_file.exists()
    assert not p.state_file.exists()
    assert not lock_held(p)
    msgs = messages(daemon)
    assert msgs[-1] == "stopped"
    stop = next(r for r in log_records(daemon) if r["msg"] == "stop requested")
    assert stop["reason"] == signal.Signals(sig).name


def test_rpc_stop_answers_then_stops(daemon: DaemonProc) -> None:
    assert daemon.call("daemon.stop") == {"stopping": True, "pid": daemon.pid}
    assert daemon.wait_exit() == 0
    assert not daemon.paths.socket.exists()


# ---- reload -----------------------------------------------------------------------------


def test_sighup_good_reload_applies_heartbeat_at_once(start_daemon: Any) -> None:
    d = start_daemon({"daemon": {"heartbeat_interval_seconds": 3600}})
    first = state(d)["heartbeat_at"]
    rewrite(d, {"daemon": {"heartbeat_interval_seconds": 0.1}})
    d.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in messages(d), 5, "the reload")
    # Not an hour from now: the new interval is in force at once.
    beats = set()
    wait_for(
        lambda: beats.add(state(d)["heartbeat_at"]) or len(beats - {first}) >= 3,
        5,
        "three heartbeats at the new interval",
    )
    assert d.call("daemon.status")["config"]["status"] == "ok"


def test_sighup_bad_reload_keeps_old_config_until_a_good_one(start_daemon: Any) -> None:
    d = start_daemon({"daemon": {"heartbeat_interval_seconds": 0.1}})
    d.paths.config_file.write_text('{"daemon": {"heartbeat_interval_seconds": 0.1,\n  "log": }}')
    d.signal(signal.SIGHUP)
    status = wait_for(
        lambda: (s := d.call("daemon.status"))["config"]["status"] == "reload_failed" and s,
        5,
        "the failed reload",
    )
    assert len(status["config"]["errors"]) == 1
    assert "invalid JSON at line 2 column 10: Expecting value" in status["config"]["errors"][0]
    assert status["state"] == "running"
    # Still on the old config: the 0.1 s heartbeat keeps beating.
    t = state(d)["heartbeat_at"]
    wait_for(lambda: state(d)["heartbeat_at"] > t, 5, "a heartbeat on the old config")
    assert state(d)["config"]["status"] == "reload_failed"  # state.json says so too
    errors = [r for r in log_records(d) if r["level"] == "error"]
    assert any("invalid JSON" in r.get("error", "") for r in errors)
    # The failure stays visible until a good reload clears it.
    rewrite(d, {"daemon": {"heartbeat_interval_seconds": 0.1}})
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: (
            d.call("daemon.status")["config"]
            == {
                "path": str(d.paths.config_file),
                "status": "ok",
                "errors": [],
                "at": d.call("daemon.status")["config"]["at"],
            }
        ),
        5,
        "the good reload",
    )


def test_rpc_reload_reports_every_error_with_code(daemon: DaemonProc) -> None:
    job = {"id": "a", "cron": "61 * * * *", "action": "x"}
    rewrite(
        daemon,
        {
            "daemon": {"max_parallel_actions": "3", "log": {"level": "loud"}},
            "schedule": {"jobs": [job]},
        },
    )
    with pytest.raises(RpcError) as exc:
        daemon.call("daemon.reload")
    assert exc.value.code == -32006
    assert sorted(exc.value.data["errors"]) == sorted(
        [
            'daemon.max_parallel_actions: "3" is not an integer',
            'daemon.log.level: "loud" is not allowed (must be one of "debug", "info", "warning", '
            '"error")',
            'schedule.jobs[0].cron: "61 * * * *" is not a valid cron expression '
            "(minute must be 0-59)",
        ]
    )
    assert "3 error(s)" in exc.value.message
    status = daemon.call("daemon.status")
    assert status["config"]["status"] == "reload_failed"
    assert status["config"]["errors"] == exc.value.data["errors"]
    rewrite(daemon, {})
    assert daemon.call("daemon.reload") == {
        "reloaded": True,
        "config": str(daemon.paths.config_file),
    }
    assert daemon.call("daemon.status")["config"]["errors"] == []


def test_log_level_reload_is_applied(daemon: DaemonProc) -> None:
    def count() -> int:
        return messages(daemon).count("config reloaded")

    assert count() == 0
    daemon.call("daemon.reload")
    assert count() == 1
    rewrite(daemon, {"daemon": {"log": {"level": "error"}}})
    daemon.call("daemon.reload")
    assert count() == 1  # an info line, no longer written
    rewrite(daemon, {"daemon": {"log": {"level": "info"}}})
    daemon.call("daemon.reload")
    assert count() == 2


def test_line_limit_reload_applies_to_open_connections(daemon: DaemonProc) -> None:
    pad = b"x" * 3000
    line = b'{"jsonrpc":"2.0","method":"ping","id":1,"params":{"p":"' + pad + b'"}}\n'
    with Conn(daemon.root) as c:
        c.send(line)
        assert json.loads(c.line())["error"]["code"] == -32602  # read fine, bad param
        rewrite(daemon, {"daemon": {"max_request_bytes": 2048}})
        daemon.call("daemon.reload")
        c.send(line)
        err = json.loads(c.line())["error"]
        assert err["code"] == -32004 and "over 2048 bytes" in err["message"]
        assert c.line() == b""
    assert one(daemon.root, req("ping")) == {"jsonrpc": "2.0", "result": "pong", "id": 1}


def test_log_rotation_by_size_loses_no_lines(start_daemon: Any) -> None:
    d = start_daemon({"daemon": {"log": {"max_size_mb": 0.001, "max_files": 100}}})
    n = 80
    for _ in range(n):
        d.call("daemon.reload")
    files = list(d.paths.daemon_dir.glob("daemon.log*"))
    assert len(files) >= 5, files  # ~1 KiB each: it did rotate, several times
    limit = int(0.001 * 1024 * 1024)
    for f in files:
        lines = f.read_text().splitlines()
        assert os.path.getsize(f) <= limit + max(len(x) + 1 for x in lines), f
    msgs = messages(d)
    assert msgs.count("config reloaded") == n
    assert msgs[0] == "starting" and "ready" in msgs  # the first lines survived too


def test_rotation_keeps_at_most_max_files(start_daemon: Any) -> None:
    d = start_daemon({"daemon": {"log": {"max_size_mb": 0.001, "max_files": 2}}})
    for _ in range(40):
        d.call("daemon.reload")
    names = sorted(f.name for f in d.paths.daemon_dir.glob("daemon.log*"))
    assert names == ["daemon.log", "daemon.log.1", "daemon.log.2"]


# ---- several daemons --------------------------------------------------------------------


def test_two_daemons_in_two_roots(start_daemon: Any) -> None:
    import shutil
    import tempfile

    other = Path(tempfile.mkdtemp(prefix="aiwg-", dir="/tmp")).resolve()
    try:
        a = start_daemon()
        b = start_daemon(root=other)
        assert a.pid != b.pid
        assert a.call("daemon.status")["root"] == str(a.root)
        assert b.call("daemon.status")["root"] == str(other)
        assert a.stop() == 0
        assert b.call("ping") == "pong"  # unaffected
        assert b.paths.pid_file.read_text() == f"{b.pid}\n"
    finally:
        shutil.rmtree(other, ignore_errors=True)


# ---- discovery --------------------------------------------------------------------------


def test_discover_lists_every_method_with_its_params(daemon: DaemonProc) -> None:
    doc = daemon.call("rpc.discover")
    assert doc["openrpc"].startswith("1.")
    methods = {m["name"]: m for m in doc["methods"]}
    core = {"ping", "daemon.status", "daemon.stop", "daemon.reload", "rpc.discover"}
    assert core <= set(methods)
    stop = methods["daemon.stop"]
    assert stop["paramStructure"] == "by-name"
    assert stop["params"] == [
        {
            "name": "fast",
            "required": False,
            "schema": {
                "type": "boolean",
                "default": False,
                "description": "skip the grace period: stop ladder at once",
            },
        }
    ]
    # An OpenRPC Error Object: its code and its meaning (tests/rpc/test_openrpc.py).
    (reload_error,) = methods["daemon.reload"]["errors"]
    assert reload_error["code"] == -32006 and "Config invalid" in reload_error["message"]
    assert methods["ping"]["params"] == []
    # Every listed method exists and validates with the same definitions: an unknown
    # param is -32602 (never -32601, never executed).
    for name, m in methods.items():
        assert m["summary"], name
        with pytest.raises(RpcError) as exc:
            daemon.call(name, zz_not_a_param=1)
        assert exc.value.code == -32602, (name, exc.value)
        assert "zz_not_a_param" in exc.value.message
