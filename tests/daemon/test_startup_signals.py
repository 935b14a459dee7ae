"""Signals during start-up (issue 8, "Starting up"): from the first line of `main()`
on, a SIGHUP never kills the daemon (it reloads once start-up is done) and SIGTERM or
SIGINT lead to a clean stop: exit 0, lock released, no socket or PID file left.

Start-up is made slow for real: a store of many finished tasks to load (the format
bench/store.py writes). Each signal is sent right after the daemon logs "starting".
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.config.paths import Paths
from aiwgd.tasks.model import IdGenerator, Task, TaskState
from aiwgd.tasks.store.journal import write_snapshot
from tests.conftest import DaemonFactory
from tests.utils import BASE_CONFIG, DaemonProc, deep_merge, wait_for, write_config

STORED = 50_000


@pytest.fixture(scope="module")
def big_store() -> Iterator[Path]:
    """A tasks.json of STORED finished tasks, written once for the module."""
    where = Path(tempfile.mkdtemp(prefix="aiwg-big-", dir="/tmp"))
    gen = IdGenerator()
    now = time.time()

    def records() -> Iterator[dict[str, object]]:
        for i in range(STORED):
            t = Task(id=gen.new(), command=["/bin/true", f"arg-{i}"], created_at=now - 3600)
            t.state = TaskState.COMPLETED
            t.started_at, t.finished_at, t.exit_code = now - 3000, now - 2990, 0
            yield t.to_dict()

    write_snapshot(where / "tasks.json", 0, records())
    try:
        yield where / "tasks.json"
    finally:
        shutil.rmtree(where, ignore_errors=True)


def start_slow(start_daemon: DaemonFactory, project: Path, big_store: Path) -> DaemonProc:
    """A daemon with a big store to load, once it has logged "starting"."""
    paths = Paths(project)
    paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(big_store, paths.tasks_file)
    config = {"tasks": {"max_finished": 1_000_000, "retention_days": 365}}
    d = start_daemon(config, wait=False)
    wait_for(lambda: "starting" in d.stderr(), 20, "the daemon to log 'starting'", 0.002)
    return d


def assert_clean_stop(d: DaemonProc, project: Path) -> None:
    assert d.wait_exit(60) == 0, d.stderr()
    assert "stopped" in d.stderr()
    paths = Paths(project)
    assert not paths.pid_file.exists(), "stale PID file"
    assert not paths.socket.exists(), "stale socket"
    # The lock is free: another daemon starts at once.
    again = DaemonProc(project).start()
    try:
        assert again.call("ping") == "pong"
    finally:
        assert again.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_during_startup_stops_cleanly(
    start_daemon: DaemonFactory, project: Path, big_store: Path, sig: int
) -> None:
    d = start_slow(start_daemon, project, big_store)
    d.signal(sig)
    assert_clean_stop(d, project)
    assert "start-up aborted" in d.stderr()  # it did land during start-up
    assert "ready" not in d.stderr().split("start-up aborted")[0]


def test_sighup_during_startup_does_not_kill_and_reloads_after(
    start_daemon: DaemonFactory, project: Path, big_store: Path
) -> None:
    d = start_slow(start_daemon, project, big_store)
    # The file changed while the daemon was starting: the SIGHUP asks for it.
    write_config(project, deep_merge(BASE_CONFIG, {"daemon": {"heartbeat_interval_seconds": 7}}))
    d.signal(signal.SIGHUP)
    d.wait_ready(60)
    status = wait_for(
        lambda: (s := d.call("daemon.status"))["config"]["at"] is not None and s,
        20,
        "the reload asked for during start-up",
    )
    assert status["config"]["status"] == "ok"
    assert d.stop() == 0
