"""What the health monitor and the resource monitor do to a service: an unhealthy
verdict restarts it (or only reports), `depends_on: healthy` waits for health, a
limit takes it down the ladder and the restart policy applies."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service, wait_state
from tests.utils import Subscriber, alive, wait_for


def _check(ok_file: Path, **extra: object) -> dict[str, object]:
    code = f"import os, sys; sys.exit(0 if os.path.exists({str(ok_file)!r}) else 1)"
    return {"command": [sys.executable, "-c", code], "interval_s": 0.1, "failures": 2, **extra}


def test_unhealthy_restarts_and_healthy_gates_dependents(
    start_daemon: DaemonFactory, project: Path
) -> None:
    ok = project / "ok"
    path = script(project, "sleeper", SLEEPER)
    services = {
        "api": service(path, health_check=_check(ok)),
        "ui": service(path, depends_on={"api": "healthy"}),
    }
    d = start_daemon(config={"services": services})
    sub = Subscriber(d, ["service.unhealthy"])
    unhealthy = sub.next()["data"]
    assert unhealthy["name"] == "api" and unhealthy["reason"]
    first = unhealthy["pid"]
    assert get(d, "ui")["reason"] == "waiting for api (healthy)"
    # Restarted for it: a new pid, the reason in the history.
    wait_for(lambda: get(d, "api")["pid"] not in (None, first), 10, "api restarted")
    hist = get(d, "api")["history"]
    assert any(h.get("reason", "").startswith("unhealthy: ") for h in hist)
    assert not alive(first)
    ok.write_text("")
    wait_for(lambda: get(d, "api")["health"] == "healthy", 10, "api healthy")
    wait_state(d, "ui", "ready")
    sub.close()


def test_over_a_limit_is_stopped_and_the_policy_restarts(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    cfg = service(path, limits={"max_runtime_s": 0.5}, start_limit={"burst": 2, "interval_s": 60})
    d = start_daemon(config={"monitor": {"interval_s": 0.1}, "services": {"w": cfg}})
    inst = wait_state(d, "w", "gave_up", timeout=15)
    exits = [h for h in inst["history"] if h["event"] == "exited"]
    assert len(exits) == 2, inst
    assert all(h["reason"].startswith("limit: ") for h in exits)
    assert d.call("ping") == "pong"
