"""`aiwg top` against a real daemon, real tasks and a real service, at 80x24."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Log

from aiwgd.cli.top import feed
from aiwgd.cli.top.app import TopApp
from aiwgd.cli.top.logview import LogScreen
from aiwgd.cli.top.panes import Pane
from tests.conftest import DaemonFactory
from tests.top.tophelp import config, in_thread, row_of, rows, run_app, submit, until
from tests.utils import DaemonProc


@pytest.fixture
def d(start_daemon: DaemonFactory, project: Path) -> DaemonProc:
    return start_daemon(config=config(project))


def test_a_running_task_shows_its_last_output_line_and_events_move_its_row(
    d: DaemonProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No slow refresh during the test: whatever changes on screen came as an event.
    monkeypatch.setattr(feed, "REFRESH_S", 3600.0)
    tid = submit(d, "alpha")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        row = await until(
            pilot,
            lambda: (r := row_of(app, "tasks", tid)) and "first line of alpha" in r[4] and r,
            "the task's row with its first line",
        )
        assert row[1] == "running"
        (d.root / "more").touch()
        await until(
            pilot,
            lambda: (r := row_of(app, "tasks", tid)) and r[4] == "second line of alpha",
            "the task's last line to follow its output",
        )
        (d.root / "go").touch()
        await until(
            pilot,
            lambda: (r := row_of(app, "tasks", tid)) and r[1] == "completed",
            "task.completed to change the row's state",
        )
        assert any(r[1] == "task.completed" and tid in r[2] for r in rows(app, "events"))
        assert "tasks 0/3 running, 0 queued" in str(app.query_one("#summary").render())

    run_app(d, body)


def test_c_cancels_the_selected_running_task(d: DaemonProc) -> None:
    tid = submit(d, "victim")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "running", "run")
        assert app.query_one("#tasks", Pane).selected() == tid
        await pilot.press("c")
        await until(
            pilot,
            lambda: (r := row_of(app, "tasks", tid)) and r[1] == "cancelled",
            "the row to say cancelled",
        )
        task = await in_thread(lambda: d.call("task.get", id=tid))
        assert task["state"] == "cancelled"

    run_app(d, body)


def test_p_pauses_and_resumes_the_selected_task(d: DaemonProc) -> None:
    tid = submit(d, "sleepy")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "running", "run")
        await pilot.press("p")
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "paused", "paused")
        assert (await in_thread(lambda: d.call("task.get", id=tid)))["paused"] is True
        await pilot.press("p")
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "running", "resume")
        assert (await in_thread(lambda: d.call("task.get", id=tid)))["paused"] is False

    run_app(d, body)


def test_r_restarts_the_selected_service(d: DaemonProc) -> None:
    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        first = await until(
            pilot, lambda: (r := row_of(app, "services", "web")) and r[2].isdigit() and r[2], "pid"
        )
        await pilot.press("r")
        second = await until(
            pilot,
            lambda: (
                (r := row_of(app, "services", "web")) and r[2].isdigit() and r[2] != first and r[2]
            ),
            "a new pid on the service's row",
        )
        inst = await in_thread(lambda: d.call("service.get", name="web")["instances"][0])
        assert str(inst["pid"]) == second and inst["restarts"] >= 1

    run_app(d, body)


def test_an_rpc_error_is_a_notification_not_a_traceback(d: DaemonProc) -> None:
    tid = submit(d, "done")
    (d.root / "more").touch()
    (d.root / "go").touch()

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "completed", "end")
        await pilot.press("c")  # cancelling a completed task: the daemon says Conflict
        note = await until(
            pilot,
            lambda: [n.message for n in app._notifications if n.severity == "error"],
            "an error notification",
        )
        assert note[0].startswith(f"cancel {tid}: "), note
        assert app.is_running

    run_app(d, body)


def test_enter_opens_the_task_log_following_and_escape_goes_back(d: DaemonProc) -> None:
    tid = submit(d, "chatty")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and "first" in r[4], "output")
        await pilot.press("enter")
        screen = await until(
            pilot, lambda: isinstance(app.screen, LogScreen) and app.screen, "the log screen"
        )
        log = screen.query_one(Log)
        await until(pilot, lambda: "first line of chatty" in log.lines, "the log's first line")
        (d.root / "more").touch()  # printed after the screen opened
        await until(pilot, lambda: "second line of chatty" in log.lines, "a line while following")
        await pilot.press("c")  # on the log screen: the task whose log it is
        await until(
            pilot,
            lambda: any(ln.startswith("-- task cancelled") for ln in log.lines),
            "the follow to end with the task",
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen), "back to the panes")

    run_app(d, body)


def test_enter_on_a_service_follows_its_log(d: DaemonProc) -> None:
    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        pid = await until(
            pilot, lambda: (r := row_of(app, "services", "web")) and r[2].isdigit() and r[2], "pid"
        )
        await pilot.press("tab")  # tasks -> services
        assert app.focused is app.query_one("#services")
        await pilot.press("enter")
        screen = await until(
            pilot, lambda: isinstance(app.screen, LogScreen) and app.screen, "the log screen"
        )
        log = screen.query_one(Log)
        await until(pilot, lambda: f"service up {pid}" in log.lines, "the service's line")
        await in_thread(lambda: d.call("service.restart", name="web"))
        await until(
            pilot,
            lambda: any(ln.startswith("service up") and pid not in ln for ln in log.lines),
            "the restarted service's line, while following",
        )

    run_app(d, body)


def test_slash_filters_rows_and_escape_clears_it(d: DaemonProc) -> None:
    ids = [submit(d, "x", name="alpha-job"), submit(d, "x", name="beta-job")]

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(rows(app, "tasks")) == 2, "both tasks")
        await pilot.press("slash", "a", "l", "p")
        await until(pilot, lambda: len(rows(app, "tasks")) == 1, "the filter to hide beta")
        assert rows(app, "tasks")[0][0] == "alpha-job"
        assert rows(app, "services") == []  # "alp" matches no service either
        await pilot.press("q", "backspace")  # typed into the filter: no quitting
        assert app.is_running and app.query_one("#filter", Input).value == "alp"
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.focused is app.query_one("#tasks")
        await pilot.press("escape")
        await until(pilot, lambda: len(rows(app, "tasks")) == 2, "both rows back")
        assert {r[0] for r in rows(app, "tasks")} == {"alpha-job", "beta-job"}

    run_app(d, body)
    assert len(ids) == 2


def test_q_quits(d: DaemonProc) -> None:
    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: row_of(app, "services", "web"), "the service row")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to exit")

    run_app(d, body)


def test_nothing_overflows_sideways_at_80_columns(d: DaemonProc) -> None:
    long_name = "a-very-long-task-name-" + "x" * 60
    tid = submit(d, "y" * 200, name=long_name)

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and "first" in r[4], "output")
        for table in app.query(Pane):
            assert table.virtual_size.width <= table.size.width, table.id
            assert table.size.width <= 80
        row = row_of(app, "tasks", tid)
        assert row is not None and row[0].endswith("…") and row[4].endswith("…")

    run_app(d, body)


def test_a_daemon_going_away_shows_not_running_and_it_reconnects(
    start_daemon: DaemonFactory, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "RETRY_S", 0.2)
    d = start_daemon(config=config(project, services=False))

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        def header() -> str:
            return str(app.query_one("#summary").render())

        await until(pilot, lambda: "aiwgd pid" in header(), "the daemon's summary")
        await in_thread(d.stop)
        await until(pilot, lambda: "daemon not running" in header(), "the daemon to be missed")
        await pilot.press("c")  # nothing selected any more is fine; no traceback either
        again = await in_thread(lambda: start_daemon(write=False))
        await until(pilot, lambda: f"aiwgd pid {again.pid}" in header(), "a new session")
        assert app.is_running

    run_app(d, body)


def test_dropped_events_make_it_ask_again(d: DaemonProc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "REFRESH_S", 3600.0)
    tid = submit(d, "lost")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: (r := row_of(app, "tasks", tid)) and r[1] == "running", "run")
        # What a view that read too slowly has: a task it never heard of, then the
        # daemon's notice (events.methods sends it on the subscriber's connection).
        del app.feed.state.tasks[tid]
        app.redraw()
        assert row_of(app, "tasks", tid) is None
        app.feed._notified("events.dropped", {"subscription_id": "sub-1", "dropped": 3})
        await until(pilot, lambda: row_of(app, "tasks", tid), "the task back from a new snapshot")

    run_app(d, body)


def test_the_header_shows_cap_group_and_machine_usage(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = config(project, services=False)
    cfg["tasks"] = {"groups": {"ci": {"max_parallel": 1}}}
    d = start_daemon(config=cfg)
    first, second = submit(d, "g1", group="ci"), submit(d, "g2", group="ci")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        def header() -> str:
            return str(app.query_one("#summary").render())

        text = await until(
            pilot,
            lambda: "tasks 1/3 running, 1 queued  ci 1/1" in (h := header()) and h,
            "the cap and the group's usage",
        )
        assert "load " in text and "mem " in text  # monitor.system
        assert [r[1] for r in rows(app, "tasks")] == ["running", "queued"]
        assert app.query_one("#tasks", Pane).selected() == first
        assert row_of(app, "tasks", second) is not None

    run_app(d, body)


def test_the_cursor_stays_on_its_task_as_rows_come_and_the_terminal_resizes(
    d: DaemonProc,
) -> None:
    one, two = submit(d, "one"), submit(d, "two")

    async def body(app: TopApp, pilot: Pilot[Any]) -> None:
        tasks = app.query_one("#tasks", Pane)
        await until(pilot, lambda: tasks.row_count == 2, "two tasks")
        await pilot.press("down")
        assert tasks.selected() == two
        three = await in_thread(lambda: submit(d, "three"))
        await until(pilot, lambda: row_of(app, "tasks", three), "the third task's row")
        assert tasks.selected() == two
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: tasks.size.width == 100, "the wider pane")
        assert tasks.selected() == two and tasks.virtual_size.width <= 100
        assert one in {r.key for r in tasks._shown}

    run_app(d, body)
