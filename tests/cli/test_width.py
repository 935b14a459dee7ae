"""Output that fits the terminal (issue 8): `events` and `status` lines are cut to the
width ($COLUMNS, else the terminal's), `events --json` prints one event per line, and
`task list` shows a short name (or the program's basename) and the priority."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.cli.clihelp import aiwg
from tests.taskhelp import prog, task_config, wait_terminal
from tests.utils import REPO, DaemonProc, env_for_tests


def columns(n: int | None) -> dict[str, str]:
    env = env_for_tests()
    env.pop("COLUMNS", None)
    if n is not None:
        env["COLUMNS"] = str(n)
    return env


def on_terminal(args: list[str], cols: int) -> tuple[int, str]:
    """`aiwg ARGS` with its output on a terminal `cols` wide (no $COLUMNS): (code, screen)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiwgd.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=columns(None),
        cwd=REPO,
    )
    os.close(slave)
    screen = b""
    try:
        with contextlib.suppress(OSError):  # EIO: the program exited, the terminal closed
            while chunk := os.read(master, 65536):
                screen += chunk
        return proc.wait(30), screen.decode().replace("\r\n", "\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.fixture
def d(start_daemon: object) -> DaemonProc:
    daemon: DaemonProc = start_daemon(task_config())  # type: ignore[operator]
    return daemon


def test_events_lines_fit_the_width(d: DaemonProc) -> None:
    d.call("events.emit", type="ci.finished", data={"log": "x" * 400, "ok": True})
    root = ["--root", str(d.root)]
    for width in (60, 80, 200):
        out = aiwg(*root, "events", env=columns(width))
        assert out.returncode == 0, out
        lines = out.stdout.splitlines()
        assert any("ci.finished" in line for line in lines), lines
        assert all(len(line) <= width for line in lines), (width, lines)
        ci = next(line for line in lines if "ci.finished" in line)
        assert ci.endswith("…") and len(ci) == width, ci
    # On a real terminal the terminal's width counts.
    code, screen = on_terminal([*root, "events"], 70)
    assert code == 0 and "ci.finished" in screen
    assert all(len(line) <= 70 for line in screen.splitlines()), screen
    # Wide enough: the event's id is shown too.
    ev = d.call("events.list", type="daemon.started")["events"][0]
    wide = aiwg(*root, "events", "--type", "daemon.*", env=columns(200)).stdout
    assert wide.rstrip("\n").endswith(ev["id"]) and "ci.finished" not in wide


def test_events_json_is_one_event_per_line(d: DaemonProc) -> None:
    for i in range(3):
        d.call("events.emit", type="ci.step", data={"i": i})
    root = ["--root", str(d.root)]
    for args in (["--json", "events", "--type", "ci.*"], ["events", "--type", "ci.*", "--json"]):
        out = aiwg(*root, *args, env=columns(40))
        assert out.returncode == 0, out
        events = [json.loads(line) for line in out.stdout.splitlines()]
        assert [e["data"]["i"] for e in events] == [0, 1, 2]
        assert all(e.keys() >= {"id", "time", "type", "source", "data"} for e in events)
    out = aiwg(*root, "--json", "events", "-n", "1")
    assert len(out.stdout.splitlines()) == 1 and json.loads(out.stdout)["type"] == "ci.step"
    none = aiwg(*root, "--json", "events", "--type", "nothing.*")
    assert (none.returncode, none.stdout) == (0, "")


def test_status_lines_fit_the_width(d: DaemonProc) -> None:
    root = ["--root", str(d.root)]
    for args in (["status"], ["--timeout", "5", "status"]):  # the fast path, then typer
        out = aiwg(*root, *args, env=columns(50))
        assert out.returncode == 0, out
        lines = out.stdout.splitlines()
        assert len(lines) > 5 and all(len(line) <= 50 for line in lines), lines
        assert any(line.endswith("…") for line in lines), lines
    # A pipe without $COLUMNS gets whole lines (for grep), as before.
    whole = aiwg(*root, "status", env=columns(None)).stdout.splitlines()
    assert f"root:    {d.root}" in whole and not any(x.endswith("…") for x in whole)


def test_task_list_shows_name_and_priority(d: DaemonProc, tmp_path: Path) -> None:
    root = ["--root", str(d.root)]
    cmd = d.call("task.submit", command=prog("--say", "hi"), priority=10)
    rule = d.call(
        "task.submit", command=["true"], metadata={"rule_id": "lint-on-save"}, priority="low"
    )
    agent = d.call("task.submit", prompt="explain " + "very " * 40 + "well", agent="rev")
    for t in (cmd, rule, agent):
        wait_terminal(d, t["id"])
    out = aiwg(*root, "task", "list", env=columns(80))
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "PRIO", "AGE", "DURATION", "NAME", "WHAT"]
    assert all(len(line) <= 80 for line in lines), lines
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    python = Path(sys.executable).name
    assert rows[cmd["id"]][2] == "10"
    assert rows[cmd["id"]][5:8] == ["taskprog.py", python, "taskprog.py"], rows[cmd["id"]]
    assert rows[rule["id"]][2] == "-10" and rows[rule["id"]][5:] == ["lint-on-save", "true"]
    assert rows[agent["id"]][5:7] == ["rev", "explain"] and lines[1:][0].endswith("…")
