"""The file watcher in a real daemon: real files on disk, events read over the socket.

Each step ends its writes with a marker file and collects events until the marker's
own event arrives, then writes a fence file and collects until the fence's event: a
window closes after every earlier one, and events of one flush are published together,
so anything extra (a second event for a burst, an ignored file) shows up before the
fence. Within one flush the order is unspecified, so the events come back sorted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.utils import DaemonProc, Subscriber, wait_for, write_config


def watch_config(paths: list[dict[str, Any]], debounce_ms: int = 100) -> dict[str, Any]:
    return {"watch": {"enabled": True, "debounce_ms": debounce_ms, "paths": paths}}


def watcher(d: DaemonProc) -> dict[str, Any]:
    status: dict[str, Any] = d.call("daemon.status")["subsystems"]["watcher"]
    return status


def start_watching(start_daemon: DaemonFactory, config: dict[str, Any]) -> DaemonProc:
    d = start_daemon(config=config)
    wait_for(lambda: watcher(d)["state"] in ("watching", "idle"), 10, "the watcher to start")
    return d


def write(root: Path, rel: str, text: str = "x", mode: str = "w") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as fh:
        fh.write(text)


def _collect(sub: Subscriber, last: str, timeout: float) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1][1] != last:
        ev = sub.next(timeout=max(0.1, deadline - time.monotonic()))
        seen.append((ev["type"], ev["data"]["path"]))
    return seen


_fences = iter(range(1_000_000))


def until_marker(
    sub: Subscriber, marker: str, timeout: float = 10, fence_in: str | None = None
) -> list[tuple[str, str]]:
    """Every file event up to the marker's, and any in the same flush (sorted)."""
    seen = _collect(sub, marker, timeout)
    head, dot, ext = marker.rpartition(".")
    base = head if dot and "/" not in ext else marker
    folder = base.rpartition("/")[0] if fence_in is None else fence_in
    fence = f"{folder}/zz-fence{next(_fences)}" if folder else f"zz-fence{next(_fences)}"
    fence += f".{ext}" if dot and "/" not in ext else ""
    write(Path(sub.root), fence)
    seen += _collect(sub, fence, timeout)[:-1]
    return sorted(seen)


def test_burst_debounce_create_modify_delete(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_watching(start_daemon, watch_config([{"path": "src/"}]))
    (project / "src").mkdir()
    sub = Subscriber(d, ["file.*"])
    wait_for(lambda: watcher(d)["watching"] == ["src"], 10, "src/ to be picked up")
    for i in range(30):  # create then modify inside one window: one file.created
        write(project, "src/a.py", f"line {i}\n", "a")
    write(project, "src/m1")
    assert until_marker(sub, "src/m1") == [("file.created", "src/a.py"), ("file.created", "src/m1")]
    for i in range(30):
        write(project, "src/a.py", f"more {i}\n", "a")
    write(project, "src/m1", "again")
    assert until_marker(sub, "src/m1") == [
        ("file.modified", "src/a.py"),
        ("file.modified", "src/m1"),
    ]
    # An editor's atomic save (write a temp file, rename it over) is a modification.
    write(project, "src/.a.py.new", "saved")
    os.replace(project / "src/.a.py.new", project / "src/a.py")
    # Created and deleted inside one window: nobody could have seen it, so no event.
    write(project, "src/blink.txt")
    (project / "src/blink.txt").unlink()
    (project / "src/m1").unlink()
    assert until_marker(sub, "src/m1") == [
        ("file.deleted", "src/m1"),
        ("file.modified", "src/a.py"),
    ]
    status = watcher(d)
    assert status["created"] == 2 + 3  # a.py, m1 and the three fences
    assert status["modified"] == 3 and status["deleted"] == 1
    sub.close()


def test_ignores_builtin_and_configured(start_daemon: DaemonFactory, project: Path) -> None:
    # aiwgd.stderr: where the test harness puts the daemon's stderr, in the project root.
    ignore = ["*.tmp", "working/**", "build/", "/top.log", "/aiwgd.stderr"]
    cfg = watch_config([{"path": ".", "ignore": ignore}])
    d = start_watching(start_daemon, cfg)
    sub = Subscriber(d, ["file.*"])
    reported = [
        "xtmp",
        "a.tmpl",
        "sub/working/b.txt",
        ".github/workflows/ci.yml",
        ".gitignore",
        "sub/top.log",
        "buildx/o.txt",
    ]
    ignored = [
        "x.tmp",
        "deep/y.tmp",
        "working/a.txt",
        "working/n/c.txt",
        "build/o.txt",
        "sub/build/o.txt",
        "top.log",
        ".git/HEAD",
        ".git/refs/heads/main",
        "node_modules/pkg/index.js",
        "src/node_modules/x.js",
        "__pycache__/m.pyc",
        "a.py.swp",
        "a.py~",
        ".#a.py",
        "4913",
        "#a.py#",
    ]
    for rel in ignored + reported:
        write(project, rel)
    write(project, "zz-marker")
    events = until_marker(sub, "zz-marker")
    paths = [p for _, p in events]
    assert sorted(paths) == sorted([*reported, "zz-marker"])
    assert all(t == "file.created" for t, _ in events)
    # The daemon writes its event log, state and logs under .aiwg/daemon/ all the time:
    # none of that may come back as an event (or rules would loop on their own output).
    d.call("events.emit", type="noise.made")
    write(project, "zz-marker2")
    assert until_marker(sub, "zz-marker2") == [("file.created", "zz-marker2")]
    assert not [
        e
        for e in d.call("events.list", type="file.*", limit=1000)["events"]
        if e["data"]["path"].startswith(".aiwg/daemon")
    ]
    sub.close()


def test_extensions_and_event_kinds_per_entry(start_daemon: DaemonFactory, project: Path) -> None:
    (project / "src").mkdir()
    (project / "test").mkdir()
    cfg = watch_config(
        [
            {"path": "src/", "extensions": [".py", ".test.ts"]},
            {"path": "test/", "events": ["modify"]},
        ]
    )
    d = start_watching(start_daemon, cfg)
    sub = Subscriber(d, ["file.*"])
    for rel in ("src/a.ts", "src/b.test.ts", "src/c.pyc", "src/d.py", "test/new.txt"):
        write(project, rel)
    write(project, "src/marker.py")
    assert sorted(until_marker(sub, "src/marker.py")) == [
        ("file.created", "src/b.test.ts"),
        ("file.created", "src/d.py"),
        ("file.created", "src/marker.py"),
    ]
    write(project, "test/new.txt", "changed")  # test/ reports modifications only
    ev = sub.next()
    assert (ev["type"], ev["data"]) == ("file.modified", {"path": "test/new.txt", "watch": "test/"})
    sub.close()


def test_missing_path_is_reported_then_picked_up(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = watch_config([{"path": "later/"}, {"path": "deep/a/b/"}, {"path": "notes.md"}])
    d = start_watching(start_daemon, cfg)
    assert sorted(watcher(d)["missing"]) == ["deep/a/b", "later", "notes.md"]
    log = d.paths.log_file.read_text()
    assert "watched path does not exist yet" in log and '"path": "later"' in log
    sub = Subscriber(d, ["file.*"])
    (project / "later").mkdir()
    write(project, "later/f.txt")  # right after mkdir: caught by the scan if not the watch
    assert until_marker(sub, "later/f.txt") == [("file.created", "later/f.txt")]
    (project / "deep/a/b/c").mkdir(parents=True)
    write(project, "deep/a/b/c/g.txt")
    assert until_marker(sub, "deep/a/b/c/g.txt") == [("file.created", "deep/a/b/c/g.txt")]
    write(project, "notes.md", "# notes")
    assert until_marker(sub, "notes.md", fence_in="later") == [("file.created", "notes.md")]
    write(project, "notes.md", "more", "a")
    assert until_marker(sub, "notes.md", fence_in="later") == [("file.modified", "notes.md")]
    wait_for(lambda: watcher(d)["missing"] == [], 5, "nothing missing any more")
    sub.close()


def test_deleted_and_recreated_directory_is_watched_again(
    start_daemon: DaemonFactory, project: Path
) -> None:
    write(project, "src/keep.py")
    write(project, "src/sub/deep.py")
    (project / "fences").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "src/"}, {"path": "fences/"}]))
    sub = Subscriber(d, ["file.*"])
    shutil.rmtree(project / "src")
    got = set(sub_events(sub, 2))
    assert got == {("file.deleted", "src/keep.py"), ("file.deleted", "src/sub/deep.py")}
    wait_for(lambda: watcher(d)["missing"] == ["src"], 5, "src/ reported missing")
    write(project, "src/again.py")
    assert until_marker(sub, "src/again.py", fence_in="fences") == [
        ("file.created", "src/again.py")
    ]
    # Moved away and back: the files go and come with it.
    os.rename(project / "src", project / "src-old")
    assert until_marker(sub, "src/again.py", fence_in="fences") == [
        ("file.deleted", "src/again.py")
    ]
    os.rename(project / "src-old", project / "src")
    assert until_marker(sub, "src/again.py", fence_in="fences") == [
        ("file.created", "src/again.py")
    ]
    write(project, "src/after.py")
    assert until_marker(sub, "src/after.py", fence_in="fences") == [
        ("file.created", "src/after.py")
    ]
    sub.close()


def sub_events(sub: Subscriber, n: int) -> list[tuple[str, str]]:
    return [(e["type"], e["data"]["path"]) for e in (sub.next() for _ in range(n))]


def test_reload_switches_paths_and_keeps_pending_changes(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "one").mkdir()
    (project / "two").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "one/"}], debounce_ms=1500))
    sub = Subscriber(d, ["file.*"])

    # A window runs from the change, and the watcher hears of it up to a poll step
    # later, so a single write may never be seen waiting: keep writing until it is.
    def pending_after_a_write() -> bool:
        write(project, "one/pending.txt", "x", "a")
        return bool(watcher(d)["pending"] >= 1)

    wait_for(pending_after_a_write, 10, "the change to wait in its window", interval=0.2)
    cfg = json.loads(d.paths.config_file.read_text())
    cfg["watch"]["paths"] = [{"path": "one/"}, {"path": "two/"}]
    write_config(project, cfg)
    assert d.call("daemon.reload")["reloaded"] is True
    assert watcher(d)["watching"] == ["one", "two"]
    # Its window was open during the reload: the change is still reported, once.
    ev = sub.next()
    assert (ev["type"], ev["data"]["path"]) == ("file.created", "one/pending.txt")

    cfg["watch"]["paths"] = [{"path": "two/"}]
    cfg["watch"]["debounce_ms"] = 100
    write_config(project, cfg)
    d.call("daemon.reload")
    status = watcher(d)
    assert status["watching"] == ["two"] and status["debounce_ms"] == 100
    write(project, "one/not-watched-now.txt")
    write(project, "two/new.txt")
    assert until_marker(sub, "two/new.txt") == [("file.created", "two/new.txt")]
    sub.close()


def test_burst_of_10000_writes_stays_responsive_and_coalesced(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "burst").mkdir()
    d = start_watching(start_daemon, watch_config([{"path": "burst/"}], debounce_ms=200))
    sub = Subscriber(d, ["file.*"])
    files = 500
    with d.client() as c:
        worst = 0.0
        for i in range(10_000):  # 20 appends to each file in turn, as a build would
            write(project, f"burst/f{i // 20:03d}.txt", f"{i}\n", "a")
            if i % 1000 == 999:
                t0 = time.perf_counter()
                assert c.call("ping") == "pong"
                worst = max(worst, time.perf_counter() - t0)
        write(project, "burst/zz-marker")
        events = until_marker(sub, "burst/zz-marker", timeout=30)
        t0 = time.perf_counter()
        assert c.call("ping") == "pong"
        worst = max(worst, time.perf_counter() - t0)
    assert worst < 1.0, f"ping took {worst:.3f}s during the burst"
    # 500 files, 20 writes each: each file is created once; a file whose writes straddle
    # a window (the machine stalled) may add a modification, never one event per write.
    created = {p for t, p in events if t == "file.created"}
    assert len(created) == files + 1
    assert len(events) <= 2 * files + 1
    sub.close()
