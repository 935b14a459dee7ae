"""A service over its memory limit: the monitor tells the service manager, which takes
it down the ladder and restarts it per its restart policy."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory
from tests.monitor.helpers import GROW, monitor_config, script
from tests.utils import Subscriber, alive, wait_for


def test_service_over_memory_is_killed_and_restarted(
    project: Path, start_daemon: DaemonFactory
) -> None:
    argv = [*script(project, "grow.py", GROW), "400"]
    service = {
        "command": argv,
        "restart": "always",
        "limits": {"memory_mb": 60},
        "backoff": {"initial_s": 0.05, "max_s": 0.1, "jitter": 0},
    }
    d = start_daemon(monitor_config(services={"hog": service}))
    events = Subscriber(d, ["process.*"])
    killed = events.next(timeout=15)
    data = killed["data"]
    assert killed["type"] == "process.killed" and killed["source"] == "monitor"
    assert (data["kind"], data["name"], data["reason"]) == ("service", "hog", "memory")
    wait_for(lambda: not alive(data["pid"]), 10, "the killed instance to be gone")

    def restarted() -> bool:
        rows = d.call("monitor.processes")["processes"]
        return any(r["owner"] == "service:hog" and r["pid"] != data["pid"] for r in rows)

    wait_for(restarted, 15, "the service to be started again")
    events.close()
