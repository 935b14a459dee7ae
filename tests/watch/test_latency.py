"""When a change is reported, and what stopping a watch costs (a real daemon).

The watcher looks at watchfiles' changes every `step_ms` (the debounce + 20 ms: delivery
takes up to one step), and a debounce window runs from when a change happened, not from when
the watcher heard of it. So an event comes a debounce after the last write to a file,
give or take the slack of a loaded machine, never before; and since the watch threads
are never waited for, a reload or a stop does not take a poll step.
(The tight figure, debounce + 100 ms, is measured by bench/idle.py.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.utils import DaemonProc, Subscriber, wait_for, write_config
from tests.watch.test_watcher import start_watching, watch_config, watcher, write

SLACK_S = 1.0  # generous for a test; a window that ran from the delivery is 1-2 steps late
EARLY_S = 0.05  # clock ticks: a window must not close before its debounce ran out


def threads_on_disk(d: DaemonProc) -> int:
    """The daemon's watch threads as the OS lists them (what `top -H` shows)."""
    names = []
    for comm in Path(f"/proc/{d.pid}/task").glob("*/comm"):
        try:
            names.append(comm.read_text().strip())
        except FileNotFoundError:  # a thread that ended between the listing and the read
            continue
    return names.count("aiwgd-watch")


def reload_with(d: DaemonProc, project: Path, **watch: Any) -> float:
    """Rewrite the watch section and reload; the seconds the reload took."""
    cfg = json.loads(d.paths.config_file.read_text())
    cfg["watch"].update(watch)
    write_config(project, cfg)
    t0 = time.monotonic()
    assert d.call("daemon.reload")["reloaded"] is True
    return time.monotonic() - t0


def test_a_single_write_is_reported_one_debounce_after_it(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "src").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "src/"}], debounce_ms=1000))
    assert watcher(d)["step_ms"] == 1020  # 1000 + 20: delivery within a step fits the budget
    sub = Subscriber(d, ["file.*"])
    for i, kind in enumerate(("created", "modified", "modified")):
        t0 = time.monotonic()
        write(project, "src/one.txt", f"write {i}")
        ev = sub.next()
        took = time.monotonic() - t0
        assert (ev["type"], ev["data"]["path"]) == (f"file.{kind}", "src/one.txt")
        assert 1.0 - EARLY_S <= took <= 1.0 + SLACK_S, f"write {i}: event after {took:.3f}s"
    sub.close()


def test_a_window_closes_one_debounce_after_the_last_write(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "src").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "src/"}], debounce_ms=2000))
    sub = Subscriber(d, ["file.*"])
    first = watcher(d)["changes"]
    last_write = 0.0

    # Appends every 0.25 s until the watcher delivered two batches of them: more than a
    # debounce after the first delivery, so the window must have stayed open across one.
    def append_until_two_batches() -> bool:
        nonlocal last_write
        last_write = time.monotonic()
        write(project, "src/log.txt", "line\n", "a")
        return bool(watcher(d)["changes"] >= first + 2)

    wait_for(append_until_two_batches, 15, "two deliveries of the appends", interval=0.25)
    ev = sub.next(timeout=10)
    took = time.monotonic() - last_write
    assert (ev["type"], ev["data"]["path"]) == ("file.created", "src/log.txt")
    assert 2.0 - EARLY_S <= took <= 2.0 + SLACK_S, f"event {took:.3f}s after the last write"
    # One burst, one event: nothing more once a fence is reported.
    write(project, "src/fence.txt")
    ev = sub.next()
    assert (ev["type"], ev["data"]["path"]) == ("file.created", "src/fence.txt")
    assert watcher(d)["created"] == 2 and watcher(d)["modified"] == 0
    sub.close()


def test_reload_and_stop_do_not_wait_for_a_poll_step(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "one").mkdir()
    (project / "two").mkdir()
    cfg = watch_config([{"path": "one/"}], debounce_ms=60_000)
    d = start_watching(start_daemon, cfg)
    step_s = watcher(d)["step_ms"] / 1000
    assert step_s == 5.0  # the longest step
    for paths in ([{"path": "two/"}], [{"path": "one/"}], [{"path": "two/"}]):
        took = reload_with(d, project, paths=paths)
        assert took < step_s / 2, f"a reload took {took:.2f}s"
    assert watcher(d)["watching"] == ["two"]
    t0 = time.monotonic()
    assert d.stop() == 0
    took = time.monotonic() - t0
    assert took < step_s / 2, f"stopping took {took:.2f}s"


def test_the_threads_of_old_watches_end(start_daemon: DaemonFactory, project: Path) -> None:
    (project / "one").mkdir()
    (project / "two").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "one/"}], debounce_ms=100))
    assert watcher(d)["threads"] == 1 and threads_on_disk(d) == 1
    for i in range(6):
        reload_with(d, project, paths=[{"path": ("two/", "one/")[i % 2]}])
    # Stopped watches are not waited for; each thread ends at once: a stop wakes it.
    wait_for(lambda: watcher(d)["threads"] == 1, 5, "the old watch threads to end")
    assert threads_on_disk(d) == 1
    # The one left is the one watching: a change still comes through.
    sub = Subscriber(d, ["file.*"])
    write(project, "one/after.txt")
    ev = sub.next()
    assert (ev["type"], ev["data"]["path"]) == ("file.created", "one/after.txt")
    sub.close()
    reload_with(d, project, enabled=False)
    wait_for(lambda: watcher(d)["threads"] == 0, 5, "no watch thread when disabled")
    assert watcher(d)["state"] == "disabled" and threads_on_disk(d) == 0
