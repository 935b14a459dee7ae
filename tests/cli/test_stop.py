"""`aiwg stop` returns once the daemon has exited, its socket and PID file gone: woken by
the exit itself where Linux gives a pidfd, by the lock where it does not (issue 9)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.cli import daemonctl
from aiwgd.cli.daemonctl import lock_held
from aiwgd.config.paths import Paths
from tests.cli.clihelp import aiwg, kill_detached
from tests.conftest import DaemonFactory
from tests.utils import BASE_CONFIG, write_config

needs_pidfd = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open here")


@pytest.fixture
def detached(project: Path) -> Iterator[Path]:
    write_config(project, BASE_CONFIG)
    yield project
    kill_detached(project)


def exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


@needs_pidfd
def test_stop_returns_after_the_exit_with_its_files_gone(detached: Path) -> None:
    # Started by `aiwg start`: not our child, so nothing here reaps it; the pidfd says
    # when it ended all the same.
    pid = int(re.findall(r"\d+", aiwg("--root", str(detached), "start").stdout)[0])
    pidfd = os.pidfd_open(pid)
    try:
        assert not exited(pidfd)
        out = aiwg("--root", str(detached), "stop")
        assert (out.returncode, out.stdout) == (0, f"aiwgd stopped (PID {pid})\n"), out
        assert exited(pidfd)  # already over when `aiwg stop` returned, not a moment later
    finally:
        os.close(pidfd)
    paths = Paths(detached)
    assert not paths.socket.exists() and not paths.pid_file.exists()
    assert not lock_held(paths)


def test_without_a_pidfd_stop_waits_for_the_lock(
    start_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = start_daemon()
    monkeypatch.setattr(daemonctl, "_pidfd", lambda pid: None)  # as on macOS
    done = daemonctl.stop(daemon.paths)
    assert done.pid == daemon.pid
    # The daemon frees its lock last, after removing its socket and PID file.
    assert not lock_held(daemon.paths)
    assert not daemon.paths.socket.exists() and not daemon.paths.pid_file.exists()
    assert daemon.wait_exit(10) == 0


@needs_pidfd
def test_a_pid_file_naming_another_process_does_not_hold_stop(project: Path) -> None:
    # The lock is free (no daemon) while the process the pidfd names lives on: the wait
    # ends after a short look, long before its timeout.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfd = os.pidfd_open(other.pid)
    try:
        t0 = time.monotonic()
        assert daemonctl._wait_gone(Paths(project), 30.0, pidfd)
        assert time.monotonic() - t0 < 5
        assert other.poll() is None
    finally:
        os.close(pidfd)
        other.kill()
        other.wait()
