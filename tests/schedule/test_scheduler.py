"""The cron scheduler: timer, schedule.* RPC, catch-up, persistence, overlap, reload."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aiwgd.actions.runner import ActionRunner
from aiwgd.client import RpcError
from aiwgd.config.load import parse_config
from aiwgd.events.router import Event, EventRouter
from aiwgd.schedule.scheduler import Scheduler
from tests.utils import SCRIPTS, DaemonProc, run_cli, wait_for, write_config

# A child that records its start, waits for a flag file, then records its end.
WAITER = SCRIPTS / "wait_flag.py"


def fired(d: DaemonProc, job_id: str) -> list[dict[str, Any]]:
    events = d.call("events.list", type="cron.fired", limit=1000)["events"]
    return [e for e in events if e["data"]["job_id"] == job_id]


def job(d: DaemonProc, job_id: str) -> dict[str, Any]:
    return next(j for j in d.call("schedule.list")["jobs"] if j["id"] == job_id)


def sched_config(jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"schedule": {"enabled": True, "jobs": jobs}, **extra}


# ---- the timer, in-process with a shifted clock (no waiting for a real minute) -------------


def _clock_before_next_minute(lead_s: float) -> Any:
    real = time.time()
    offset = (math.floor(real / 60) + 1) * 60 - lead_s - real
    return lambda: time.time() + offset


async def _next_event(q: asyncio.Queue[Event], timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(q.get(), timeout)


def test_timer_sleeps_until_the_fire_time_then_fires_once() -> None:
    async def main() -> None:
        router = EventRouter()
        cfg = parse_config(sched_config([{"id": "m", "cron": "* * * * *", "action": "tick"}]))
        clock = _clock_before_next_minute(0.3)
        sched = Scheduler(router, ActionRunner(router), cfg, None, clock=clock)
        got: asyncio.Queue[Event] = asyncio.Queue()
        router.subscribe(["cron.*"], got.put, "test", retries=False)
        await sched.start()
        # Asleep until the boundary: one timer, due in about 0.3 s, not a poll.
        assert 0.0 < sched._delay(sched.now()) <= 0.31
        t0 = time.monotonic()
        ev = await _next_event(got)
        assert time.monotonic() - t0 >= 0.2  # it did wait for the boundary
        assert ev.type == "cron.fired"
        assert ev.data["job_id"] == "m" and ev.data["action"] == "tick"
        scheduled = datetime.fromisoformat(ev.data["scheduled_for"])
        assert scheduled.second == 0 and scheduled.microsecond == 0
        assert ev.data["manual"] is False
        # Next sleep is the whole next minute, and nothing else fires meanwhile.
        assert sched.jobs["m"].next_fire == scheduled + timedelta(minutes=1)
        assert 59.0 < sched._delay(sched.now()) <= 60.0
        assert got.empty()
        await sched.stop()

    asyncio.run(main())


def test_reload_recomputes_the_timer() -> None:
    async def main() -> None:
        router = EventRouter()
        yearly = {"id": "y", "cron": "0 0 1 1 *", "action": "new-year"}
        cfg = parse_config(sched_config([yearly]))
        sched = Scheduler(
            router, ActionRunner(router), cfg, None, clock=_clock_before_next_minute(0.3)
        )
        got: asyncio.Queue[Event] = asyncio.Queue()
        router.subscribe(["cron.*"], got.put, "test", retries=False)
        await sched.start()
        assert sched._delay(sched.now()) == 300.0  # capped long sleep
        every_minute = {"id": "m", "cron": "* * * * *", "action": "tick"}
        await sched.apply_config(parse_config(sched_config([yearly, every_minute])))
        ev = await _next_event(got)  # woken and re-planned: fires at the boundary
        assert ev.data["job_id"] == "m"
        await sched.stop()

    asyncio.run(main())


def _fires(router: EventRouter) -> list[tuple[str, str]]:
    return [
        (e.data["job_id"], e.data["scheduled_for"])
        for e in router.history
        if e.type == "cron.fired"
    ]


def test_timer_decisions_across_dst_and_a_suspend() -> None:
    # The loop's decision step (_fire_due) driven by a fake clock in 10-minute steps:
    # what fires, and when, is a function of `now` only.
    ny = ZoneInfo("America/New_York")

    async def main() -> None:
        router = EventRouter()
        jobs = [
            {"id": "fold", "cron": "30 1 * * *", "timezone": "America/New_York", "action": "a"},
            {"id": "gap", "cron": "30 2 * * *", "timezone": "America/New_York", "action": "b"},
        ]
        cfg = parse_config(sched_config(jobs))
        now = [datetime(2025, 11, 1, 12, tzinfo=ny).timestamp()]
        sched = Scheduler(router, ActionRunner(router), cfg, None, clock=lambda: now[0])
        sched._set_jobs(cfg.schedule.jobs, sched.now(), {})

        def run_until(end: datetime) -> None:
            while now[0] < end.timestamp():
                now[0] += 600
                sched._fire_due(sched.now())

        run_until(datetime(2025, 11, 3, 12, tzinfo=ny))  # across the fall-back night
        assert _fires(router) == [
            ("fold", "2025-11-02T01:30:00-04:00"),
            ("gap", "2025-11-02T02:30:00-05:00"),
            ("fold", "2025-11-03T01:30:00-05:00"),
            ("gap", "2025-11-03T02:30:00-05:00"),
        ]
        router.history.clear()
        # A suspended machine wakes four months later, on the spring-forward morning:
        # one run per job (the latest; the gap's 02:30 ran at 03:30), not 125.
        now[0] = datetime(2026, 3, 8, 4, 0, tzinfo=ny).timestamp()
        sched._fire_due(sched.now())
        assert _fires(router) == [
            ("fold", "2026-03-08T01:30:00-05:00"),
            ("gap", "2026-03-08T03:30:00-04:00"),
        ]
        router.history.clear()
        run_until(datetime(2026, 3, 9, 12, tzinfo=ny))  # the next day: normal again
        assert _fires(router) == [
            ("fold", "2026-03-09T01:30:00-04:00"),
            ("gap", "2026-03-09T02:30:00-04:00"),
        ]

    asyncio.run(main())


# ---- a real daemon -----------------------------------------------------------------------


def test_schedule_run_fires_cron_fired_that_rules_see(start_daemon: Any) -> None:
    rule = {
        "id": "on-cron",
        "trigger": {"type": "cron.fired"},
        "conditions": [{"field": "data.job_id", "op": "eq", "value": "doctor"}],
        "action": {
            "type": "emit",
            "event_type": "test.saw_cron",
            "data": {"job": "{{data.job_id}}", "label": "{{data.action}}"},
        },
    }
    d = start_daemon(
        sched_config(
            [{"id": "doctor", "cron": "0 */6 * * *", "timezone": "Europe/Berlin", "action": "doc"}],
            rules=[rule],
        )
    )
    listed = job(d, "doctor")
    assert listed["timezone"] == "Europe/Berlin" and listed["action"] == "doc"
    nxt = datetime.fromisoformat(listed["next_fire"])
    assert nxt.hour % 6 == 0 and nxt.minute == 0 and nxt > datetime.now(UTC)
    assert listed["last_result"] is None

    result = d.call("schedule.run", id="doctor")
    assert result["fired"] is True and result["manual"] is True
    ev = wait_for(lambda: fired(d, "doctor"), 5, "cron.fired")[0]
    assert ev["source"] == "scheduler"
    assert ev["data"]["action"] == "doc" and ev["data"]["manual"] is True
    assert datetime.fromisoformat(ev["data"]["scheduled_for"]).utcoffset() is not None
    saw = wait_for(lambda: d.call("events.list", type="test.saw_cron")["events"], 5, "rule")
    assert saw[0]["data"] == {"job": "doctor", "label": "doc"}
    assert job(d, "doctor")["last_result"] == "fired"
    assert job(d, "doctor")["last_run_at"] is not None

    out = run_cli(d.root, "schedule", "list")
    assert out.returncode == 0 and "doctor" in out.stdout and "Europe/Berlin" in out.stdout
    out = run_cli(d.root, "schedule", "run", "nope")
    assert out.returncode == 1
    assert (
        out.stderr.strip() == "aiwg: error -32001: no scheduled job with id 'nope' (jobs: doctor)"
    )
    out = run_cli(d.root, "--json", "schedule", "run", "doctor")
    assert out.returncode == 0 and json.loads(out.stdout)["fired"] is True


def test_job_actions_run_with_cron_fired_as_their_template(start_daemon: Any) -> None:
    emit = {
        "type": "emit",
        "event_type": "job.done",
        "data": {"job": "{{data.job_id}}", "at": "{{data.scheduled_for}}"},
    }
    broken = {"type": "log", "message": "{{data.nothing}}"}
    d = start_daemon(
        sched_config(
            [
                {"id": "e", "cron": "@daily", "action": emit},
                {"id": "b", "cron": "@daily", "action": broken},
            ]
        )
    )
    fired_e = d.call("schedule.run", id="e")
    done = wait_for(lambda: d.call("events.list", type="job.done")["events"], 5, "job.done")
    assert done[0]["data"] == {"job": "e", "at": fired_e["scheduled_for"]}
    assert done[0]["source"] == "schedule"
    wait_for(lambda: job(d, "e")["last_result"] == "succeeded", 5, "the run to end")
    d.call("schedule.run", id="b")
    wait_for(
        lambda: (job(d, "b")["last_result"] or "").startswith("failed: template:"),
        5,
        "the broken job's failure",
    )
    assert "the event has no field 'data.nothing'" in job(d, "b")["last_result"]
    assert job(d, "b")["running"] == []
    assert d.call("dlq.list")["entries"] == []  # a template error is not retried


def test_bad_params_are_precise(start_daemon: Any) -> None:
    d = start_daemon(sched_config([{"id": "a", "cron": "@daily", "action": "x"}]))
    for method, params, fragment in [
        ("schedule.run", {}, "id: is required"),
        ("schedule.run", {"id": "a", "when": 1}, "when: unknown key"),
        ("schedule.enable", {"id": 5}, "id: 5 is not a string"),
        ("schedule.list", {"x": 1}, "x: unknown key"),
    ]:
        with pytest.raises(RpcError) as info:
            d.call(method, **params)
        assert info.value.code == -32602 and fragment in info.value.message, info.value.message
    with pytest.raises(RpcError) as info:
        d.call("schedule.disable", id="zzz")
    assert info.value.code == -32001


def _runtime(root: Path) -> dict[str, Any]:
    return json.loads((root / ".aiwg/daemon/runtime.json").read_text())


def test_catch_up_fires_one_missed_run_at_start_and_last_fire_persists(
    start_daemon: Any, project: Path
) -> None:
    now = time.time()
    year = datetime.now(UTC).year
    state = {
        "schedule": {
            "jobs": {
                "catch": {"since": now - 3 * 366 * 86400, "last_fire": now - 2 * 366 * 86400},
                "plain": {"since": now - 3 * 366 * 86400, "last_fire": now - 2 * 366 * 86400},
            }
        }
    }
    runtime = project / ".aiwg/daemon/runtime.json"
    runtime.parent.mkdir(parents=True)
    runtime.write_text(json.dumps(state))
    jobs = [
        {"id": "catch", "cron": "0 0 1 1 *", "timezone": "UTC", "action": "ny", "catch_up": True},
        {"id": "plain", "cron": "0 0 1 1 *", "timezone": "UTC", "action": "ny"},
    ]
    d = start_daemon(sched_config(jobs))
    ev = wait_for(lambda: fired(d, "catch"), 5, "the catch-up run")
    assert len(ev) == 1  # two years missed: ONE run, the latest
    assert ev[0]["data"]["catch_up"] is True
    assert ev[0]["data"]["scheduled_for"] == f"{year}-01-01T00:00:00+00:00"
    assert fired(d, "plain") == []
    assert job(d, "catch")["last_fire"] == f"{year}-01-01T00:00:00+00:00"
    saved = _runtime(project)["schedule"]["jobs"]["catch"]
    assert saved["last_fire"] == datetime(year, 1, 1, tzinfo=UTC).timestamp()

    d.stop()
    d2 = start_daemon(write=False)
    assert job(d2, "catch")["last_fire"] == f"{year}-01-01T00:00:00+00:00"
    assert d2.call("ping") == "pong"
    assert fired(d2, "catch") == [ev[0]]  # the history came back; no second catch-up


def test_enable_disable_persist_across_restart(start_daemon: Any) -> None:
    d = start_daemon(sched_config([{"id": "a", "cron": "@hourly", "action": "x"}]))
    assert job(d, "a")["next_fire"] is not None
    out = d.call("schedule.disable", id="a")
    assert out == {"job_id": "a", "enabled": False, "next_fire": None}
    assert d.call("daemon.status")["subsystems"]["scheduler"]["next_fire"] is None
    d.stop()
    d2 = start_daemon(write=False)
    listed = job(d2, "a")
    assert listed["enabled"] is False and listed["override"] is False
    assert listed["next_fire"] is None
    cli = run_cli(d2.root, "schedule", "enable", "a")
    assert cli.returncode == 0 and cli.stdout.startswith("a enabled; next fire ")
    assert job(d2, "a")["next_fire"] is not None


def _task_job(job_id: str, overlap: str, tmp: Path) -> dict[str, Any]:
    argv = [sys.executable, str(WAITER), str(tmp / f"{job_id}.log"), str(tmp / f"{job_id}.go")]
    return {
        "id": job_id,
        "cron": "0 0 1 1 *",
        "overlap": overlap,
        "action": {"type": "task", "command": argv},
    }


def _lines(tmp: Path, job_id: str) -> list[str]:
    path = tmp / f"{job_id}.log"
    return [ln.split()[0] for ln in path.read_text().splitlines()] if path.exists() else []


def test_overlap_skip_queue_allow_with_task_actions(start_daemon: Any, project: Path) -> None:
    tmp = project / "work"
    tmp.mkdir()
    jobs = [_task_job(j, j, tmp) for j in ("skip", "queue", "allow")]
    d = start_daemon(sched_config(jobs, daemon={"max_parallel_actions": 4}))

    # skip: a second run while the first task runs is refused, and says why.
    assert d.call("schedule.run", id="skip")["fired"] is True
    wait_for(lambda: _lines(tmp, "skip") == ["start"], 10, "the skip task to start")
    running = wait_for(lambda: job(d, "skip")["running"], 5, "the run to be tracked")
    with pytest.raises(RpcError) as info:
        d.call("schedule.run", id="skip")
    assert info.value.code == -32002 and running[0] in info.value.message
    (tmp / "skip.go").touch()
    wait_for(
        lambda: job(d, "skip")["last_result"] == f"task {running[0]} completed",
        10,
        "the run to end with its task",
    )
    assert d.call("schedule.run", id="skip")["fired"] is True  # free again

    # queue: the second run waits for the first to finish.
    assert d.call("schedule.run", id="queue")["fired"] is True
    wait_for(lambda: _lines(tmp, "queue") == ["start"], 10, "the first queue task")
    wait_for(lambda: job(d, "queue")["running"], 5, "the run to be tracked")
    second = d.call("schedule.run", id="queue")
    assert second["fired"] is False and second["queued"] is True
    assert job(d, "queue")["queued"] == 1
    (tmp / "queue.go").touch()
    wait_for(
        lambda: _lines(tmp, "queue") == ["start", "end", "start", "end"],
        10,
        "both queued runs, one after the other",
    )
    wait_for(lambda: len(fired(d, "queue")) == 2, 5, "two cron.fired")

    # allow: both runs at once.
    assert d.call("schedule.run", id="allow")["fired"] is True
    assert d.call("schedule.run", id="allow")["fired"] is True
    wait_for(lambda: _lines(tmp, "allow") == ["start", "start"], 10, "two concurrent runs")
    assert len(job(d, "allow")["running"]) == 2
    (tmp / "allow.go").touch()
    wait_for(lambda: not job(d, "allow")["running"], 10, "both allowed runs to end")


def test_reload_applies_jobs_live_and_refuses_a_bad_cron(start_daemon: Any) -> None:
    d = start_daemon(sched_config([{"id": "old", "cron": "@daily", "action": "x"}]))
    d.call("schedule.run", id="old")
    base = {"watch": {"enabled": False, "paths": []}}
    write_config(
        d.root, {**base, **sched_config([{"id": "new", "cron": "*/5 * * * *", "action": "y"}])}
    )
    assert d.call("daemon.reload")["reloaded"] is True
    assert [j["id"] for j in d.call("schedule.list")["jobs"]] == ["new"]
    assert datetime.fromisoformat(job(d, "new")["next_fire"]).minute % 5 == 0

    write_config(
        d.root, {**base, **sched_config([{"id": "bad", "cron": "61 * * * *", "action": "y"}])}
    )
    with pytest.raises(RpcError) as info:
        d.call("daemon.reload")
    assert info.value.code == -32006
    assert "schedule.jobs[0].cron" in info.value.message
    assert "minute must be 0-59" in info.value.message
    assert [j["id"] for j in d.call("schedule.list")["jobs"]] == ["new"]  # still the old one

    # SIGHUP applies a good file the same way.
    write_config(
        d.root, {**base, **sched_config([{"id": "hup", "cron": "@hourly", "action": "z"}])}
    )
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: [j["id"] for j in d.call("schedule.list")["jobs"]] == ["hup"],
        10,
        "SIGHUP to apply the new jobs",
    )
