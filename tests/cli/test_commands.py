"""The `aiwg` CLI as a user runs it: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.cli.daemonctl import lock_held, running_pid
from aiwgd.client import Client
from aiwgd.config import Paths, defaults
from aiwgd.config.schema import dump
from tests.cli.clihelp import one_line_error
from tests.utils import (
    BASE_CONFIG,
    REPO,
    DaemonProc,
    alive,
    env_for_tests,
    run_python,
    wait_for,
    write_config,
)


def aiwg(
    root: Path | None, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "aiwgd.cli", *(["--root", str(root)] if root else []), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, env=env or env_for_tests(), cwd=cwd or REPO
    )


@pytest.fixture
def detached(project: Path) -> Iterator[Path]:
    """A project whose detached daemon (if the test starts one) is gone afterwards."""
    write_config(project, BASE_CONFIG)
    yield project
    paths = Paths(project)
    pid = running_pid(paths)
    if pid and pid > 0:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not lock_held(paths), 10, "the detached daemon to die")


# ---- start / stop / restart -------------------------------------------------------------


def test_start_detached_prints_pid_and_is_ready(detached: Path) -> None:
    out = aiwg(detached, "start")
    assert out.returncode == 0, out
    m = re.fullmatch(r"aiwgd started \(PID (\d+)\)\n", out.stdout)
    assert m, out.stdout
    pid = int(m.group(1))
    with Client(detached, timeout=2) as c:  # no waiting: it answers already
        assert c.call("daemon.status")["pid"] == pid
    assert os.getsid(pid) == pid  # its own session: the terminal's signals miss it
    log = Paths(detached).log_file.read_text().splitlines()
    assert all(json.loads(line) for line in log)  # daemon.log stays pure JSON
    again = aiwg(detached, "start")
    assert again.returncode == 1
    assert one_line_error(again) == f"aiwg: already running (PID {pid})"
    stopped = aiwg(detached, "--json", "stop")
    assert stopped.returncode == 0
    assert json.loads(stopped.stdout) == {"stopped": True, "pid": pid}
    assert not alive(pid) and not Paths(detached).socket.exists()


def test_start_json(detached: Path) -> None:
    out = aiwg(detached, "start", "--json")
    assert out.returncode == 0, out
    data = json.loads(out.stdout)
    assert data["started"] is True and data["pid"] == running_pid(Paths(detached))


def test_start_failure_reports_reason_fast(detached: Path) -> None:
    write_config(detached, {"daemon": {"max_parallel_actions": 0, "log": {"levle": "info"}}})
    t0 = time.monotonic()
    out = aiwg(detached, "start")
    assert time.monotonic() - t0 < 10
    assert out.returncode == 1
    line = one_line_error(out)
    assert line.startswith("aiwg: daemon failed to start: invalid config ")
    assert "daemon.max_parallel_actions: 0 is out of range (must be >= 1)" in line
    assert 'daemon.log.levle: unknown key; did you mean "level"?' in line
    assert not lock_held(Paths(detached))


def test_stop_when_not_running_cleans_stale_files(detached: Path) -> None:
    pid = int(re.findall(r"\d+", aiwg(detached, "start").stdout)[0])
    os.kill(pid, signal.SIGKILL)
    paths = Paths(detached)
    wait_for(lambda: not lock_held(paths), 10, "the killed daemon's lock to drop")
    assert paths.socket.exists() and paths.pid_file.exists()
    out = aiwg(detached, "stop", "--json")
    assert out.returncode == 0, out
    data = json.loads(out.stdout)
    assert data["stopped"] is False and data["running"] is False
    assert set(data["cleaned"]) >= {str(paths.socket), str(paths.pid_file)}
    assert not paths.socket.exists() and not paths.pid_file.exists()
    out = aiwg(detached, "stop")
    assert (out.returncode, out.stdout) == (0, "aiwgd is not running\n")


def test_stop_never_signals_a_stranger_named_in_a_stale_pid_file(detached: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        paths = Paths(detached)
        paths.pid_file.parent.mkdir(parents=True, exist_ok=True)
        paths.pid_file.write_text(f"{stranger.pid}\n")
        out = aiwg(detached, "stop")
        assert out.returncode == 0 and "not running" in out.stdout, out
        assert stranger.poll() is None  # still alive
        assert not paths.pid_file.exists()
        status = aiwg(detached, "status")
        assert status.returncode == 3
    finally:
        stranger.kill()
        stranger.wait()


def test_restart_replaces_the_process(detached: Path) -> None:
    first = int(re.findall(r"\d+", aiwg(detached, "start").stdout)[0])
    out = aiwg(detached, "restart")
    assert out.returncode == 0, out
    second = int(re.fullmatch(r"aiwgd restarted \(PID (\d+)\)\n", out.stdout).group(1))  # type: ignore[union-attr]
    assert second != first and not alive(first)
    assert running_pid(Paths(detached)) == second


def test_start_foreground_runs_until_sigterm(detached: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiwgd.cli", "start", "--foreground", "--root", str(detached)],
        stderr=subprocess.PIPE,
        text=True,
        env=env_for_tests(),
    )
    try:
        wait_for(
            lambda: Client(detached, timeout=1).connect().call("ping") == "pong",
            15,
            "the foreground daemon",
        )
        assert running_pid(Paths(detached)) == proc.pid  # no fork: this is the daemon
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None and "aiwgd.daemon: stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- status -----------------------------------------------------------------------------


def test_status_running_human_and_json(daemon: DaemonProc) -> None:
    out = aiwg(daemon.root, "status")
    assert out.returncode == 0, out
    assert out.stdout.startswith(f"aiwgd is running (PID {daemon.pid}), up ")
    assert f"config:  {daemon.paths.config_file} [ok]" in out.stdout
    assert re.search(r"^  rpc +running", out.stdout, re.M)
    data = json.loads(aiwg(daemon.root, "status", "--json").stdout)
    assert data["running"] is True and data["answering"] is True
    assert data["pid"] == daemon.pid and data["config"]["status"] == "ok"
    assert "rpc" in data["subsystems"]


def test_status_shows_failed_reload(daemon: DaemonProc) -> None:
    write_config(daemon.root, {"watch": {"debounce_ms": -1}})
    assert aiwg(daemon.root, "rpc", "daemon.reload").returncode == 1
    out = aiwg(daemon.root, "status")
    assert out.returncode == 0
    assert "[reload_failed]" in out.stdout
    assert "  reload error: watch.debounce_ms: -1 is out of range (must be >= 0)" in out.stdout


def test_status_not_running_exit_3(project: Path) -> None:
    out = aiwg(project, "status")
    assert (out.returncode, out.stdout) == (3, "aiwgd is not running\n")
    data = json.loads(aiwg(project, "--json", "status").stdout)
    assert data == {"running": False, "last_state": None, "left": []}


def test_status_after_kill9_mentions_stale_state(daemon: DaemonProc) -> None:
    daemon.kill9()
    out = aiwg(daemon.root, "status")
    assert out.returncode == 3
    assert out.stdout.startswith(f"aiwgd is not running (stale state from PID {daemon.pid}")


def test_status_falls_back_to_state_json_when_socket_is_silent(daemon: DaemonProc) -> None:
    daemon.paths.socket.unlink()  # alive and locked, but nothing answers
    out = aiwg(daemon.root, "status")
    assert out.returncode == 1
    assert out.stdout.startswith(f"aiwgd is running (PID {daemon.pid}) but not answering")
    assert "last state.json (heartbeat " in out.stdout
    assert f"config:  {daemon.paths.config_file} [ok]" in out.stdout
    data = json.loads(aiwg(daemon.root, "status", "--json").stdout)
    assert data["answering"] is False and data["last_state"]["pid"] == daemon.pid


# ---- ping / rpc / logs ------------------------------------------------------------------


def test_ping(daemon: DaemonProc) -> None:
    out = aiwg(daemon.root, "ping")
    assert out.returncode == 0 and re.fullmatch(r"pong \(\d+\.\d ms\)\n", out.stdout), out
    data = json.loads(aiwg(daemon.root, "ping", "--json").stdout)
    assert data["result"] == "pong" and data["ms"] > 0


def test_commands_needing_the_daemon_exit_3_when_it_is_down(project: Path) -> None:
    for args in (["ping"], ["rpc", "daemon.status"]):
        out = aiwg(project, *args)
        assert out.returncode == 3, out
        assert one_line_error(out).startswith("aiwg: daemon not running: nothing answers on ")


def test_rpc_prints_result_json(daemon: DaemonProc) -> None:
    out = aiwg(daemon.root, "rpc", "daemon.status")
    assert out.returncode == 0
    assert json.loads(out.stdout)["pid"] == daemon.pid
    out = aiwg(daemon.root, "rpc", "ping", "{}", "--json")
    assert json.loads(out.stdout) == "pong"


@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        (["rpc", "nope.nothing"], "aiwg: error -32601: Method not found: nope.nothing", 1),
        (
            ["rpc", "daemon.stop", '{"fast": "yes"}'],
            'aiwg: error -32602: Invalid params: fast: "yes" is not true or false',
            2,  # usage: params the daemon refuses
        ),
        (
            ["rpc", "ping", "{bad"],
            "aiwg: PARAMS_JSON is not valid JSON: "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            2,
        ),
        (["rpc", "ping", "[1]"], "aiwg: PARAMS_JSON must be a JSON object of named params", 2),
    ],
)
def test_rpc_errors_are_one_line(
    daemon: DaemonProc, args: list[str], expected: str, code: int
) -> None:
    out = aiwg(daemon.root, *args)
    assert out.returncode == code
    assert one_line_error(out) == expected
    assert daemon.call("ping") == "pong"


def test_logs_last_n_lines(daemon: DaemonProc) -> None:
    for _ in range(5):
        daemon.call("daemon.reload")
    out = aiwg(daemon.root, "logs", "-n", "3")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 3
    assert all(re.match(r"\S+Z [A-Z]+ +aiwgd\.\w+: ", x) for x in lines), lines  # readable
    assert re.match(r"\S+Z INFO +aiwgd\.daemon: config reloaded$", lines[-1]), lines
    raw = aiwg(daemon.root, "logs", "-n", "4", "--json").stdout.splitlines()
    assert len(raw) == 4 and json.loads(raw[-1])["msg"] == "config reloaded"
    assert raw[-1] == daemon.paths.log_file.read_text().splitlines()[-1]  # the raw line
    assert aiwg(daemon.root, "logs", "-n", "0").stdout == ""


def test_logs_follow_prints_new_lines(daemon: DaemonProc) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiwgd.cli",
            "--root",
            str(daemon.root),
            "logs",
            "-n",
            "0",
            "-f",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env_for_tests(),
    )
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        # Keep reloading until the follower shows a line: it may still be starting up.
        def reloaded_line_seen() -> bool:
            daemon.call("daemon.reload")
            return any(json.loads(x)["msg"] == "config reloaded" for x in seen)

        wait_for(reloaded_line_seen, 15, "a followed log line", interval=0.2)
    finally:
        proc.terminate()
        proc.wait(10)


# ---- exit codes and usage ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["logs", "-n", "-1"],
        ["logs", "-n", "abc"],
        ["status", "--nope"],
        ["rpc"],
        ["config"],
    ],
)
def test_usage_errors_exit_2(project: Path, args: list[str]) -> None:
    out = aiwg(project, *args)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    assert "Usage: aiwg" in out.stderr or "Usage: aiwg" in out.stdout


def test_help_exits_0() -> None:
    out = aiwg(None, "--help")
    assert out.returncode == 0
    for cmd in ("start", "stop", "restart", "status", "logs", "ping", "rpc", "config"):
        assert cmd in out.stdout


def test_root_from_env_then_cwd(daemon: DaemonProc, tmp_path: Path) -> None:
    env = env_for_tests()
    env["AIWG_ROOT"] = str(daemon.root)
    assert aiwg(None, "ping", env=env).returncode == 0
    assert aiwg(None, "ping", cwd=daemon.root).returncode == 0
    assert aiwg(None, "ping", cwd=tmp_path).returncode == 3  # elsewhere: nobody there
    env["AIWG_ROOT"] = str(tmp_path)
    assert aiwg(daemon.root, "ping", env=env).returncode == 0  # --root beats the env


# ---- config -----------------------------------------------------------------------------


def test_config_validate(project: Path) -> None:
    path = write_config(project, {"daemon": {"heartbeat_interval_seconds": 5}})
    out = aiwg(project, "config", "validate")
    assert (out.returncode, out.stdout) == (0, f"{path}: valid\n")
    other = project / "other.json"
    other.write_text(
        json.dumps(
            {
                "watch": {"debounce_ms": 3_600_001, "debounce": 5},
                "schedule": {"jobs": [{"id": "x", "cron": "* * *", "action": "a"}]},
            }
        )
    )
    out = aiwg(project, "config", "validate", str(other))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f'{other}: watch.debounce: unknown key; did you mean "debounce_ms"?',
        f"{other}: watch.debounce_ms: 3600001 is out of range (must be <= 3600000)",
        f'{other}: schedule.jobs[0].cron: "* * *" is not a valid cron expression (needs 5 '
        "fields: minute hour day-of-month month day-of-week, or one of @yearly, @annually, "
        "@monthly, @weekly, @daily, @midnight, @hourly; got 3)",
    ]
    data = json.loads(aiwg(project, "config", "validate", str(other), "--json").stdout)
    assert data["valid"] is False and len(data["errors"]) == 3
    bad = project / "bad.json"
    text = '{\n  "daemon": {\n    "log": {"level": "info",}\n  }\n}\n'
    bad.write_text(text)
    out = aiwg(project, "config", "validate", str(bad))
    assert out.returncode == 1
    # The wording and column are the json module's (3.13 says "Illegal trailing comma"
    # where 3.11 says "Expecting property name"); the line, the file and the form are ours.
    with pytest.raises(json.JSONDecodeError) as why:
        json.loads(text)
    assert why.value.lineno == 3
    assert out.stderr.strip() == (
        f"{bad}: invalid JSON at line 3 column {why.value.colno}: {why.value.msg}"
    )
    missing = aiwg(project, "config", "validate", str(project / "nope.json"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_config_show_merges_partial_file(project: Path) -> None:
    write_config(
        project,
        {
            "daemon": {"max_parallel_actions": 1, "log": {"level": "debug"}},
            "watch": {"enabled": False, "debounce_ms": 0},
        },
    )
    out = aiwg(project, "config", "show")
    assert out.returncode == 0
    shown = json.loads(out.stdout)
    expected = dump(defaults())
    expected["daemon"]["max_parallel_actions"] = 1
    expected["daemon"]["log"]["level"] = "debug"
    expected["watch"]["enabled"] = False
    expected["watch"]["debounce_ms"] = 0  # 0 and false are values, not "unset"
    assert shown == expected
    assert json.loads(aiwg(project, "config", "show", "--json").stdout) == expected


def test_config_show_without_file_and_with_bad_file(project: Path) -> None:
    out = aiwg(project, "config", "show")
    assert out.returncode == 0 and json.loads(out.stdout) == dump(defaults())
    assert not Paths(project).config_file.exists()  # show never writes
    write_config(project, {"rules": "none"})
    out = aiwg(project, "config", "show")
    assert out.returncode == 1
    assert one_line_error(out) == f'aiwg: {Paths(project).config_file}: rules: "none" is not a list'


def test_config_init(project: Path) -> None:
    path = Paths(project).config_file
    out = aiwg(project, "config", "init", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == {"written": str(path)}
    assert json.loads(path.read_text()) == dump(defaults())
    path.write_text('{"rules": []}')
    out = aiwg(project, "config", "init")
    assert out.returncode == 1
    assert one_line_error(out) == f"aiwg: {path} already exists; use --force to overwrite it"
    assert path.read_text() == '{"rules": []}'  # untouched
    out = aiwg(project, "config", "init", "--force")
    assert (out.returncode, out.stdout) == (0, f"wrote {path}\n")
    assert json.loads(path.read_text()) == dump(defaults())


def test_cli_imports_nothing_heavy() -> None:
    # Every command group built, as `aiwg --help` lists them.
    code = (
        "import sys, typer.main, aiwgd.cli.main as m; g = typer.main.get_command(m.app); "
        "[g.get_command(None, n) for n in g.list_commands(None)]; "
        "heavy = {'asyncio', 'jsonrpcserver', 'watchfiles', 'psutil', 'aiwgd.rpc', "
        "'aiwgd.daemon', 'croniter'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = run_python(code, timeout=30)
    assert out.returncode == 0, out
    assert out.stdout.strip() == "[]"
