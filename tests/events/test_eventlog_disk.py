"""The event log on a real full disk, and event data that cannot be written at all.

The log is a record, not an acknowledgement (subscribers get events before they are
written), so a full disk cannot refuse `events.emit`; but what it could not write must
be counted and said in `daemon.status`, never silent, and never leave half a line in
events.jsonl for the next line to be glued to. Data that no UTF-8 file can hold (a lone
surrogate) is refused at `events.emit` instead of being acknowledged, then dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from aiwgd.config import Paths
from aiwgd.events.eventlog import EventLog
from aiwgd.events.model import Event
from tests.tmpfs import fill, tmpfs
from tests.utils import BASE_CONFIG, DaemonProc, run_cli, wait_for, write_config

PAYLOAD = "e" * 900


def log_status(d: DaemonProc) -> dict[str, Any]:
    status: dict[str, Any] = d.call("daemon.status")["subsystems"]["events"]["log"]
    return status


def logged_types(path: Path) -> list[str]:
    """Every line of events.jsonl must be a whole event."""
    raw = path.read_bytes()
    assert not raw or raw.endswith(b"\n"), "events.jsonl ends in half a line"
    return [json.loads(line)["type"] for line in raw.splitlines()]


def test_full_disk_event_log_failures_are_reported_and_it_recovers(project: Path) -> None:
    with tmpfs(project, "4m"):
        d = None
        try:
            write_config(project, BASE_CONFIG)
            d = DaemonProc(project).start()
            log_file = Paths(project).events_file
            d.call("events.emit", type="ci.before", data={})
            wait_for(lambda: "ci.before" in logged_types(log_file), 10, "ci.before logged")

            filler = fill(project)
            for i in range(40):  # acknowledged: the log is a record, not a promise
                d.call("events.emit", type="ci.full", data={"i": i, "pad": PAYLOAD})

            def settled() -> tuple[dict[str, Any], list[str]] | None:
                # Each of the 40 is either in the file, whole, or counted as lost.
                s, types = log_status(d), logged_types(log_file)
                return (s, types) if types.count("ci.full") + s["lost"] == 40 else None

            s, types = wait_for(settled, 10, "every event written or counted as lost")
            assert s["write_errors"] and s["lost"], s  # the disk refused some: said so
            assert "No space left on device" in (s["last_error"] or ""), s

            filler.unlink()
            d.call("events.emit", type="ci.after", data={"pad": PAYLOAD})
            wait_for(lambda: "ci.after" in logged_types(log_file), 10, "ci.after logged")
            s = log_status(d)
            assert s["last_error"] is None and s["lost"] == 40 - types.count("ci.full"), s
        finally:
            if d is not None:
                d.stop()


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"x": "\ud800"}, "data.x"),
        ({"list": ["ok", {"deep": "a\udcffb"}]}, "data.list[1].deep"),
        ({"key\ud800": 1}, "data"),
    ],
)
def test_emit_refuses_data_no_file_can_hold(
    daemon: DaemonProc, data: dict[str, Any], where: str
) -> None:
    with pytest.raises(RpcError) as info:
        daemon.call("events.emit", type="ci.odd", data=data)
    assert info.value.code == -32602
    assert where in info.value.message and "lone surrogate" in info.value.message
    assert daemon.call("events.list", type="ci.odd")["events"] == []  # nothing published
    daemon.call("events.emit", type="ci.fine", data={"x": "caf\u00e9 \U0001f600"})
    assert daemon.call("events.list", type="ci.fine")["count"] == 1


def test_emit_from_the_cli_says_what_is_wrong(daemon: DaemonProc) -> None:
    out = run_cli(daemon.root, "emit", "ci.odd", '{"x": "\\ud800"}')
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "data.x" in out.stderr and "lone surrogate" in out.stderr, out.stderr


def test_internal_events_with_undecodable_names_are_logged_escaped(tmp_path: Path) -> None:
    """A file name that is not UTF-8 reaches events as surrogate escapes (os.fsdecode):
    the router takes such an event from inside the daemon, so the log must keep it
    (escaped), not drop it. And a line torn by a crash is not glued to the next one."""

    async def main() -> EventLog:
        path = tmp_path / "events.jsonl"
        path.write_bytes(b'{"type": "ci.whole", "data": {}, "source": "x", "id": "e1"}\n{"ty')
        elog = EventLog(path, 1 << 20)
        await elog.start()
        elog.add(Event("file.created", {"path": os.fsdecode(b"src/caf\xe9.txt")}, "watcher"))
        elog.add(Event("ci.after", {}, "rpc"))
        await elog.stop()
        return elog

    elog = asyncio.run(main())
    assert elog.status()["write_errors"] == 0 and elog.status()["lost"] == 0
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert lines[1] == b'{"ty'  # the torn line stays on its own
    assert [json.loads(x)["type"] for x in (lines[0], *lines[2:])] == [
        "ci.whole",
        "file.created",
        "ci.after",
    ]
    assert json.loads(lines[2])["data"]["path"] == "src/caf\udce9.txt"
    assert [e.type for e in elog.tail(10)] == ["ci.whole", "file.created", "ci.after"]
