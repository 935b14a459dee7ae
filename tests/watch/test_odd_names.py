"""Regression: a watched file whose name is not valid UTF-8.

`open(b"caf\\xe9.txt", "w")` made the watch loop fail ("file watch failed; retrying")
and lost every other event of the same batch. The odd file must be reported like any
other, its path in Python's surrogateescape form (what os.fsdecode gives), and the
event must survive events.list, a subscription and the event log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.utils import DaemonProc, Subscriber, wait_for

ODD = os.fsdecode(b"caf\xe9.txt")  # "caf\udce9.txt"


def watcher(d: DaemonProc) -> dict[str, Any]:
    status: dict[str, Any] = d.call("daemon.status")["subsystems"]["watcher"]
    return status


def file_events(d: DaemonProc) -> set[tuple[str, str]]:
    events = d.call("events.list", type="file.*")["events"]
    return {(e["type"], e["data"]["path"]) for e in events}


def test_non_utf8_file_name_is_reported_with_its_batch(
    start_daemon: DaemonFactory, project: Path
) -> None:
    (project / "src").mkdir()
    cfg = {"watch": {"enabled": True, "debounce_ms": 100, "paths": [{"path": "src/"}]}}
    d = start_daemon(config=cfg)
    # "state" turns "watching" once the files already there are indexed: files written
    # before that would be taken for old ones (or reported as modified).
    wait_for(lambda: watcher(d)["state"] == "watching", 10, "the watcher to start")
    assert watcher(d)["watching"] == ["src"]
    sub = Subscriber(d, ["file.*"])

    # Both in one burst, so watchfiles hands them over in one batch.
    (project / "src" / "plain.txt").write_text("x")
    with open(os.fsencode(project / "src") + b"/caf\xe9.txt", "w") as fh:
        fh.write("x")

    want = {("file.created", "src/plain.txt"), ("file.created", f"src/{ODD}")}
    wait_for(lambda: want <= file_events(d), 10, f"file.created for both files: {want}")

    # A subscriber gets both too: the notification line stays valid JSON in UTF-8.
    got = {(e["type"], e["data"]["path"]) for e in (sub.next(), sub.next())}
    assert got == want
    sub.close()

    # The event log keeps the odd name (escaped, not dropped).
    def logged() -> set[str]:
        lines = (d.paths.daemon_dir / "events.jsonl").read_bytes().splitlines()
        return {json.loads(line)["data"].get("path", "") for line in lines}

    wait_for(lambda: f"src/{ODD}" in logged(), 10, "the odd name in events.jsonl")

    status = watcher(d)
    assert status["state"] == "watching" and status["error"] is None
    log = (d.paths.daemon_dir / "daemon.log").read_text(errors="replace")
    assert "file watch failed" not in log
