"""Services run, restart with backoff, give up, and stop without leftovers."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, marked, script, service, wait_state
from tests.utils import alive


def test_starts_ready_logs_and_stop_leaves_nothing(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    d = start_daemon(config={"services": {"web": service(path, "a", ready={"log_line": "^up "})}})
    inst = wait_state(d, "web", "ready")
    pid = inst["pid"]
    assert alive(pid)
    lines = d.call("service.logs", name="web")["lines"]
    assert any(line.startswith("up ") for line in lines)
    assert (project / ".aiwg/daemon/services/web.log").read_text().count("up ") == 1
    listed = d.call("service.list")["services"]
    assert [(s["name"], s["state"]) for s in listed] == [("web", "ready")]
    d.stop()
    assert not alive(pid)
    assert marked(project) == []
