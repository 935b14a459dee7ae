"""What the watchdog.* methods answer, as types (published by rpc.discover)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from aiwgd.rpc.resultschema import OPEN


class Candidate(TypedDict):
    pid: int
    command: Annotated[str, "the command line, arguments joined by spaces"]
    cwd: Annotated[str | None, "its working directory (None: unreadable)"]
    rule: Annotated[str, "the first rule whose match was found in the command line"]
    age_s: Annotated[float, "seconds since it started"]
    timeout_s: float
    verdict: Annotated[
        str,
        'e.g. "ok (3 min of 5 min)", "hung", "killing", "killed", "spared: daemon child", '
        '"hung (kill failed: ...)"',
    ]
    state: Annotated[str, "watched, spared, hung, killing, killed or kill_failed"]


class WatchdogList(TypedDict):
    enabled: bool
    mode: Annotated[str, "report or kill"]
    scope: Annotated[str, "project or user"]
    scanned_at: Annotated[float | None, "Unix time of the scan this answer shows"]
    processes: list[Candidate]


class KillRecord(TypedDict):
    """One line of kills.jsonl; the monitor's resource limits write their own fields."""

    time: Annotated[float, "Unix time"]
    kind: Annotated[str, 'who killed: "watchdog", or the monitor\'s "limit"']
    pid: int


class Kills(TypedDict):
    kills: Annotated[list[Annotated[KillRecord, OPEN]], "newest first"]
