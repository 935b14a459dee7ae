"""The kill log on a real file: owner-only, fsynced lines, torn tail, rotation."""

from __future__ import annotations

import stat
from pathlib import Path

from aiwgd.procs.kills import KillLog


def test_append_and_read_newest_last(tmp_path: Path) -> None:
    log = KillLog(tmp_path / "daemon" / "kills.jsonl")
    assert log.read() == []
    log.append({"kind": "watchdog", "pid": 1})
    log.append({"kind": "limit", "pid": 2, "time": 5.0})
    records = log.read()
    assert [r["pid"] for r in records] == [1, 2]
    assert isinstance(records[0]["time"], float) and records[1]["time"] == 5.0
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert [r["pid"] for r in log.read(limit=1)] == [2]


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = KillLog(tmp_path / "kills.jsonl")
    log.append({"pid": 1})
    with log.path.open("a") as fh:
        fh.write('{"pid": 2, "comm')
    assert [r["pid"] for r in log.read()] == [1]


def test_rotates_past_the_bound(tmp_path: Path) -> None:
    log = KillLog(tmp_path / "kills.jsonl", max_bytes=200)
    for pid in range(20):
        log.append({"pid": pid, "command": "x" * 40})
    assert log.rotated.exists()
    assert log.path.stat().st_size <= 200 + 100
    pids = [r["pid"] for r in log.read(limit=1000)]
    assert pids == sorted(pids) and pids[-1] == 19
