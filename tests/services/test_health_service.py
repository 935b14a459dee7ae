"""Health checks on real services in a real daemon: what `service.get`, the
`service.unhealthy` event and the health score in `daemon.status` show while a probed
HTTP server on 127.0.0.1 answers 200, then 500, then 200 again; and an unhealthy
service with `action: restart` is restarted (a new process, the old one gone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service, wait_state
from tests.services.test_health_probes import gone, http_server, url
from tests.utils import DaemonProc, wait_for


def health(d: DaemonProc) -> dict[str, Any]:
    score: dict[str, Any] = d.call("daemon.status")["health"]
    return score


def unhealthy_events(d: DaemonProc) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = d.call("events.list", type="service.unhealthy")["events"]
    return events


def test_service_health_reported_in_service_get_events_and_the_score(
    start_daemon: DaemonFactory, project: Path
) -> None:
    with http_server(200) as srv:
        check = {"http": url(srv), "interval_s": 0.05, "failures": 2, "action": "report"}
        web = service(script(project, "web", SLEEPER), health_check=check)
        d = start_daemon({"services": {"web": web}})
        wait_for(lambda: get(d, "web")["health"] == "healthy", 10, "web to be healthy")
        assert get(d, "web")["health_detail"]["last_detail"] == "HTTP 200"
        assert health(d) == {"score": 100, "unhealthy": []}

        srv.status = 500
        wait_for(lambda: get(d, "web")["health"] == "unhealthy", 10, "web to be unhealthy")
        score = health(d)
        assert score["unhealthy"] == ["service:web"] and score["score"] < 100
        (event,) = unhealthy_events(d)
        assert event["data"]["name"] == "web"
        assert event["data"]["reason"] == "HTTP 500 (expected 200)"
        detail = get(d, "web")["health_detail"]
        assert detail["failures"] >= 2 and detail["last_detail"] == "HTTP 500 (expected 200)"
        # action report: the service keeps running, reported once.
        assert get(d, "web")["state"] in ("running", "ready") and get(d, "web")["restarts"] == 0

        srv.status = 200
        wait_for(lambda: get(d, "web")["health"] == "healthy", 10, "web to recover")
        assert health(d) == {"score": 100, "unhealthy": []}
        assert len(unhealthy_events(d)) == 1


def test_unhealthy_service_with_action_restart_is_restarted(
    start_daemon: DaemonFactory, project: Path
) -> None:
    # The probe fails while SICK exists; the service itself is a plain sleeper.
    probe = script(
        project, "probe", "import os, sys\nsys.exit(1 if os.path.exists('SICK') else 0)\n"
    )
    check = {
        "command": [service(probe)["command"][0], probe],
        "interval_s": 0.05,
        "failures": 2,
        "timeout_s": 5,
        "action": "restart",
    }
    web = service(script(project, "web", SLEEPER), health_check=check)
    d = start_daemon({"services": {"web": web}})
    wait_for(lambda: get(d, "web")["health"] == "healthy", 15, "web to be healthy")
    first = wait_state(d, "web", "running", "ready")["pid"]

    (project / "SICK").touch()
    wait_for(lambda: unhealthy_events(d), 15, "service.unhealthy")
    wait_for(lambda: get(d, "web")["restarts"] >= 1, 15, "the restart")
    assert unhealthy_events(d)[0]["data"]["reason"] == "exit code 1"
    wait_for(lambda: gone(first), 10, "the unhealthy process to be gone")

    (project / "SICK").unlink()
    after = wait_for(
        lambda: (i := get(d, "web"))["health"] == "healthy" and i, 15, "healthy after the restart"
    )
    assert after["pid"] not in (None, first)
