"""The minimal life of a daemon: start, ping, status, stop."""

from __future__ import annotations

from tests.utils import DaemonProc, run_cli


def test_ping_status_and_clean_stop(daemon: DaemonProc) -> None:
    assert daemon.call("ping") == "pong"
    status = daemon.call("daemon.status")
    assert status["pid"] == daemon.pid
    assert status["config"]["status"] == "ok"
    assert daemon.stop() == 0
    assert not daemon.paths.socket.exists()
    assert not daemon.paths.pid_file.exists()
    result = run_cli(daemon.root, "status")
    assert result.returncode == 3, result
