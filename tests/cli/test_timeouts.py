"""A paused or hung daemon (issue 8): quick commands give up after a few seconds with one
line saying so, `aiwg --timeout S` sets that limit, and long calls (task wait, logs -f)
keep waiting as long as what they wait for takes."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cli.clihelp import aiwg, one_line_error
from tests.taskhelp import prog, task_config
from tests.utils import DaemonProc

QUICK_S = 5.0  # the documented default for quick calls (README: "Timeouts")


@pytest.fixture
def paused(daemon: DaemonProc) -> Iterator[DaemonProc]:
    """The daemon stopped by SIGSTOP (its socket still accepts: the kernel queues)."""
    daemon.signal(signal.SIGSTOP)
    try:
        yield daemon
    finally:
        daemon.signal(signal.SIGCONT)


def test_quick_calls_give_up_after_a_few_seconds(paused: DaemonProc) -> None:
    # The fast path (ping), a typer command (task list) and events, at once: each must
    # give up after the default on its own, so running them side by side proves the same.
    commands = (["ping"], ["task", "list"], ["events"])
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(commands)) as pool:
        runs = [
            (args, pool.submit(aiwg, "--root", str(paused.root), *args, timeout=25))
            for args in commands
        ]  # was: 30 s, then an error
        outs = [(args, run.result()) for args, run in runs]
    took = time.monotonic() - t0
    for args, out in outs:
        assert out.returncode == 1, (args, out)
        line = one_line_error(out)
        assert line.startswith("aiwg: no answer from the daemon on "), line
        assert f"within {QUICK_S:g}s" in line and "aiwg --timeout SECONDS" in line, line
    assert QUICK_S <= took < QUICK_S + 8, took


def test_global_timeout_option(paused: DaemonProc) -> None:
    for args in (["--timeout", "0.5", "ping"], ["--timeout=0.5", "task", "list"]):
        t0 = time.monotonic()
        out = aiwg("--root", str(paused.root), *args, timeout=25)
        assert time.monotonic() - t0 < 0.5 + 8
        assert out.returncode == 1, out
        assert "within 0.5s" in one_line_error(out)
    # status says the daemon runs but does not answer (exit 1), after the same limit.
    out = aiwg("--root", str(paused.root), "--timeout", "0.5", "status", timeout=25)
    assert out.returncode == 1, out
    assert out.stdout.startswith(f"aiwgd is running (PID {paused.pid}) but not answering: ")
    assert "within 0.5s" in out.stdout.splitlines()[0]
    for bad in ("0", "-1", "soon"):
        usage = aiwg("--timeout", bad, "ping", timeout=25)
        assert usage.returncode == 2 and "Traceback" not in usage.stderr, usage


def test_the_fast_path_and_typer_agree_on_timeout(daemon: DaemonProc) -> None:
    for args in (["--timeout", "2", "ping"], ["--timeout", "2", "--json", "status"]):
        out = aiwg("--root", str(daemon.root), *args)
        assert out.returncode == 0, out
    from aiwgd.cli.fastpath import parse

    assert parse(["--timeout", "2", "ping"]) is not None
    assert parse(["--timeout=2.5", "--json", "status"]) is not None
    # Not global here, or not a number typer takes: typer answers (usage, exit 2).
    for argv in (["ping", "--timeout", "2"], ["--timeout", "0", "ping"], ["--timeout", "x"]):
        assert parse(argv) is None, argv


@pytest.fixture
def tasks_daemon(start_daemon: object) -> DaemonProc:
    d: DaemonProc = start_daemon(task_config())  # type: ignore[operator]
    return d


def test_long_calls_outlast_the_quick_timeout(tasks_daemon: DaemonProc) -> None:
    root = str(tasks_daemon.root)
    slow = prog("--say", "started", "--sleep", "1.5", "--say", "done")  # the child sleeps
    for how in ("--wait", "--follow"):
        t0 = time.monotonic()
        out = aiwg("--root", root, "--timeout", "0.5", "task", "run", how, "--", *slow)
        assert out.returncode == 0, (how, out)
        assert time.monotonic() - t0 >= 1.5
        if how == "--follow":
            assert out.stdout == "started\ndone\n", out
    out = aiwg("--root", root, "--json", "task", "run", "--", *slow)
    task_id = json.loads(out.stdout)["id"]
    out = aiwg("--root", root, "--timeout", "0.5", "task", "logs", task_id, "-f")
    assert (out.returncode, out.stdout) == (0, "started\ndone\n"), out
    out = aiwg("--root", root, "--timeout", "0.5", "task", "wait", task_id)
    assert (out.returncode, out.stdout) == (0, f"task {task_id} completed\n"), out
