"""HealthMonitor: the state a service's health goes through, driven by a real HTTP
server on 127.0.0.1 whose answer the test switches (200 / 500) and by real hanging
commands. on_change is what the service manager sees: it is called on transitions
only. Intervals are 0.05 s; every wait is a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiwgd.config.health import HealthCheck
from aiwgd.services.health import Health, HealthMonitor, daemon_health, health_score
from tests.services.test_health_probes import HANG, gone, http_server, pids_in, script, url

FAST = 0.05


async def until(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """on_change: each call with the monitor's consecutive failures at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[Health, str, int]] = []
        self.at: list[float] = []
        self.monitor: HealthMonitor | None = None

    def __call__(self, state: Health, detail: str) -> None:
        assert self.monitor is not None
        self.calls.append((state, detail, self.monitor.failures))
        self.at.append(time.monotonic())


def monitor_for(check: HealthCheck, root: Path) -> tuple[HealthMonitor, Recorder]:
    rec = Recorder()
    m = HealthMonitor(check, name="web", cwd=str(root), env=dict(os.environ), on_change=rec)
    rec.monitor = m
    return m, rec


def test_unknown_then_healthy_then_unhealthy_after_n_failures_then_healthy(
    project: Path,
) -> None:
    async def main() -> None:
        with http_server(200) as srv:
            check = HealthCheck(http=url(srv), interval_s=FAST, failures=3, timeout_s=1)
            m, rec = monitor_for(check, project)
            m.start()
            assert m.state is Health.UNKNOWN and m.status()["state"] == "unknown"
            await until(lambda: rec.calls, "the first success")
            assert rec.calls == [(Health.HEALTHY, "HTTP 200", 0)]

            srv.status = 500
            await until(lambda: len(rec.calls) == 2, "unhealthy")
            assert rec.calls[1] == (Health.UNHEALTHY, "HTTP 500 (expected 200)", 3)
            # More failures: still unhealthy, and no second call.
            await until(lambda: m.failures >= 5, "more failures")
            assert len(rec.calls) == 2 and m.status()["state"] == "unhealthy"

            srv.status = 200
            await until(lambda: len(rec.calls) == 3, "recovery")
            assert rec.calls[2] == (Health.HEALTHY, "HTTP 200", 0)
            status = m.status()
            assert status["state"] == "healthy" and status["failures"] == 0
            assert status["last_detail"] == "HTTP 200"
            assert status["failed_checks"] >= 5 and status["checks"] > status["failed_checks"]
            assert abs(status["last_at"] - time.time()) < 5
            m.stop()
            await m.wait_stopped()
            assert not m.running and m.state is Health.UNKNOWN and len(rec.calls) == 3

    asyncio.run(main())


def test_a_restart_starts_over_at_unknown_and_reports_healthy_again(project: Path) -> None:
    async def main() -> None:
        with http_server(200) as srv:
            m, rec = monitor_for(HealthCheck(http=url(srv), interval_s=FAST), project)
            m.start()
            await until(lambda: rec.calls, "healthy")
            m.start()  # the instance restarted
            assert m.state is Health.UNKNOWN
            await until(lambda: len(rec.calls) == 2, "healthy after the restart")
            assert [c[0] for c in rec.calls] == [Health.HEALTHY, Health.HEALTHY]
            m.stop()
            await m.wait_stopped()

    asyncio.run(main())


def test_failures_inside_the_start_period_do_not_count_a_success_ends_it(
    project: Path,
) -> None:
    async def main() -> None:
        with http_server(500) as srv:
            check = HealthCheck(
                http=url(srv), interval_s=FAST, failures=1, start_period_s=60, timeout_s=1
            )
            m, rec = monitor_for(check, project)
            m.start()
            await until(lambda: m.checks >= 4, "four failed probes")
            assert m.state is Health.UNKNOWN and m.failures == 0 and not rec.calls
            assert m.failed_checks >= 4
            assert m.last_detail == "HTTP 500 (expected 200)"

            srv.status = 200
            await until(lambda: rec.calls, "healthy inside the start period")
            assert rec.calls == [(Health.HEALTHY, "HTTP 200", 0)]
            # That success ended the start period: one failure (failures=1) now counts.
            srv.status = 500
            await until(lambda: len(rec.calls) == 2, "unhealthy")
            assert rec.calls[1] == (Health.UNHEALTHY, "HTTP 500 (expected 200)", 1)
            m.stop()
            await m.wait_stopped()

    asyncio.run(main())


def test_failures_count_once_the_start_period_is_over(project: Path) -> None:
    async def main() -> None:
        with http_server(500) as srv:
            check = HealthCheck(
                http=url(srv), interval_s=FAST, failures=2, start_period_s=0.4, timeout_s=1
            )
            m, rec = monitor_for(check, project)
            started = time.monotonic()
            m.start()
            await until(lambda: rec.calls, "unhealthy after the start period")
            assert rec.calls == [(Health.UNHEALTHY, "HTTP 500 (expected 200)", 2)]
            assert rec.at[0] - started >= 0.4
            m.stop()
            await m.wait_stopped()

    asyncio.run(main())


def test_stop_cancels_a_hung_probe_and_kills_its_processes(project: Path) -> None:
    pidfile = project / "hang.pids"
    cmd = [*script(project, "hang.py", HANG), str(pidfile)]

    async def main() -> None:
        check = HealthCheck(command=cmd, interval_s=FAST, timeout_s=600, failures=1)
        m, rec = monitor_for(check, project)
        m.start()
        await until(pidfile.exists, "the probe to start", 20)
        leader, kid = pids_in(pidfile)
        assert not gone(leader) and not gone(kid)
        m.stop()
        await asyncio.wait_for(m.wait_stopped(), 10)  # not the probe's 600 s timeout
        assert gone(leader) and gone(kid)
        assert not rec.calls and m.state is Health.UNKNOWN and m.checks == 0

    asyncio.run(main())


def test_a_hung_command_probe_fails_at_its_timeout_and_counts(project: Path) -> None:
    pidfile = project / "hang.pids"
    cmd = [*script(project, "hang.py", HANG), str(pidfile)]

    async def main() -> None:
        check = HealthCheck(command=cmd, interval_s=FAST, timeout_s=0.5, failures=1)
        m, rec = monitor_for(check, project)
        m.start()
        await until(lambda: rec.calls, "unhealthy", 20)
        assert rec.calls == [(Health.UNHEALTHY, "timed out after 0.5s", 1)]
        m.stop()
        await m.wait_stopped()

    asyncio.run(main())
    leader, kid = pids_in(pidfile)
    assert gone(leader) and gone(kid)


def test_on_change_that_raises_does_not_stop_probing(project: Path) -> None:
    async def main() -> None:
        with http_server(200) as srv:

            def broken(state: Health, detail: str) -> None:
                raise RuntimeError("manager bug")

            check = HealthCheck(http=url(srv), interval_s=FAST, failures=1)
            m = HealthMonitor(check, name="web", cwd=str(project), env={}, on_change=broken)
            m.start()
            await until(lambda: m.state is Health.HEALTHY, "healthy")
            srv.status = 500
            await until(lambda: m.state is Health.UNHEALTHY, "unhealthy despite the raise")
            assert m.running
            m.stop()
            await m.wait_stopped()

    asyncio.run(main())


# ---- the health score ------------------------------------------------------------------


def test_health_score_is_the_healthy_share_rounded_down() -> None:
    assert health_score({}) == {"score": 100, "unhealthy": []}
    assert health_score({"a": True, "b": True}) == {"score": 100, "unhealthy": []}
    assert health_score({"b": False, "a": True, "c": False}) == {
        "score": 33,
        "unhealthy": ["b", "c"],
    }
    many = {f"s{i}": True for i in range(199)} | {"bad": False}
    assert health_score(many)["score"] == 99  # 100 only when all are healthy


def test_daemon_health_from_subsystem_and_service_statuses() -> None:
    subsystems: dict[str, Any] = {
        "events": {"state": "running"},
        "watcher": {"state": "error", "error": "inotify limit"},
        "scheduler": {"state": "disabled"},  # not enabled: not judged
        "broken": {"state": "failed"},
        "services": {
            "state": "running",
            "services": {
                "web": {"state": "running", "health": {"state": "unhealthy"}},
                "db": {"state": "running", "health": "healthy"},
                "worker": {"state": "backoff"},
                "cron": {"state": "gave_up"},
                "old": {"state": "stopped", "enabled": False},
            },
        },
    }
    assert daemon_health(subsystems) == {
        "score": 37,  # 3 of 8: events, services, service:db
        "unhealthy": ["broken", "service:cron", "service:web", "service:worker", "watcher"],
    }
    # A list of services with names works too; a services status without any is fine.
    listed = {"services": {"state": "running", "services": [{"name": "a", "state": "gave_up"}]}}
    assert daemon_health(listed) == {"score": 50, "unhealthy": ["service:a"]}
    assert daemon_health({"services": {"state": "running"}}) == {"score": 100, "unhealthy": []}
