"""The view's state: last output lines from chunks cut anywhere, service events, the
ended tasks kept on screen. Pure: what the panes of `aiwg top` are drawn from."""

from __future__ import annotations

from aiwgd.cli.top.state import RECENT_ENDED, Output, TopState


def test_the_last_line_survives_chunks_cut_anywhere_and_progress_bars() -> None:
    text = "building\n\n 10%\r 55%\r100%\ndone: 3 files\n\n"
    for cut in range(len(text) + 1):
        out = Output()
        out.add(text[:cut])
        out.add(text[cut:])
        assert out.shown() == "done: 3 files", cut
    out = Output()
    out.add("step 1\nstep 2 running")  # an unfinished line is what it says now
    assert out.shown() == "step 2 running"
    out.add(" 40%\r")
    assert out.shown() == "step 2 running 40%"  # a bare \r has not rewritten it yet
    out.add("\n")
    assert out.shown() == "step 2 running 40%"


def test_service_events_set_the_state_they_mean() -> None:
    st = TopState()
    st.load_services([{"name": "web", "state": "ready", "pid": 10, "restarts": 0}])
    st.apply_event({"type": "service.exited", "data": {"name": "web", "pid": 10}})
    assert st.services["web"]["state"] == "exited" and st.services["web"]["pid"] is None
    st.apply_event({"type": "service.restarting", "data": {"name": "web", "pid": None}})
    st.apply_event({"type": "service.started", "data": {"name": "web", "pid": 11}})
    web = st.services["web"]
    assert (web["state"], web["pid"], web["restarts"]) == ("running", 11, 1)
    st.apply_event({"type": "service.unhealthy", "data": {"name": "web", "pid": 11}})
    assert st.services["web"]["health"] == "unhealthy"


def test_only_the_newest_ended_tasks_stay_and_active_ones_come_first() -> None:
    st = TopState()
    ended = [
        {"id": f"e{i}", "state": "completed", "created_at": i, "finished_at": 100 + i}
        for i in range(RECENT_ENDED + 3)
    ]
    st.load_tasks([*ended, {"id": "q", "state": "queued", "created_at": 1}])
    st.apply_event({"type": "task.started", "data": {"id": "r", "state": "running"}})
    shown = [t["id"] for t in st.visible_tasks()]
    newest = [f"e{i}" for i in reversed(range(3, RECENT_ENDED + 3))]
    assert shown == ["r", "q", *newest]
    assert st.counts() == (1, 1)


def test_a_task_that_ends_while_the_snapshot_is_answered_shows_its_end() -> None:
    # The race CI met (the row stayed "running"): the running list is made, the task
    # ends, its task.completed event arrives, then the lists are loaded over it. A real
    # daemon cannot be made to interleave them on demand, so the connection is a stub
    # answering in that order; the Feed and its state are the real ones.
    import asyncio
    from typing import Any

    from aiwgd.cli.top.feed import Feed

    feed = Feed("/nonexistent.sock", lambda: None)
    running = {"id": "t1", "state": "running"}
    done = {"type": "task.completed", "data": {"id": "t1", "state": "completed"}}

    class Stub:
        async def call(self, method: str, **params: Any) -> dict[str, Any]:
            if method == "task.list" and params.get("state") == "running":
                feed._notified("event", done)  # arrives after this list was made
                return {"tasks": [running]}
            return {"tasks": [], "services": [], "events": []}

    asyncio.run(feed._snapshot(Stub(), first=True))  # type: ignore[arg-type]
    assert feed.state.tasks["t1"]["state"] == "completed"
