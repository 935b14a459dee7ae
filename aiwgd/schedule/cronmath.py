"""Cron maths as pure functions of `now`: next fire, latest missed fire, local zone.

Cron expressions describe *wall-clock* times in a zone, so they are iterated on naive
local times (croniter does calendar arithmetic only) and each candidate is then mapped
to one absolute instant. The mapping is where daylight saving time is decided:

- Fall back (a wall-clock hour happens twice): a wall time maps to its FIRST
  occurrence (PEP 495 fold=0). Its second occurrence is never a candidate, so a job
  never fires twice in the repeated hour (a `*/15` job does not fire during the
  second pass of that hour either).
- Spring forward (a wall-clock hour does not exist): a wall time inside the gap maps
  to the instant the clock would show had it not jumped (fold=0 keeps the old offset),
  i.e. it is shifted forward by the gap. `30 2 * * *` fires at 03:30 on that day, so
  no day loses its run. Candidates that land on an instant already passed (a
  `*/15` job's 02:15 maps to 03:15, which 03:15 itself also maps to) are skipped, so
  nothing fires twice.

Every function takes the clock as an argument; nothing here reads the time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiwgd.config.cron import expand

if TYPE_CHECKING:
    from croniter import croniter

__all__ = ["latest_at_or_before", "local_zone", "missed_run", "next_after", "zone"]

# Enough steps to cross any DST oddity; a valid expression always matches within a
# few years (Feb 29 on a given weekday is the rarest: every 28 years), so this only
# guards against a bug turning into an endless loop.
_MAX_STEPS = 100_000


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The absolute instant of a naive wall time in `tz` (fold=0: first occurrence)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def _utc(t: datetime) -> datetime:
    # Aware datetimes sharing a tzinfo compare by wall time, ignoring fold: 01:30 EDT
    # and 01:30 EST would be "equal". Instants are compared in UTC, always.
    return t.astimezone(UTC)


def _wall(t: datetime, tz: tzinfo) -> datetime:
    return t.astimezone(tz).replace(tzinfo=None, fold=0)


def _iterate(expr: str, start: datetime) -> croniter:
    # Imported on first use: croniter and dateutil are about 1 MiB of the idle daemon's
    # RSS, and the default config has no cron jobs (issue 2's idle RSS target: 40 MiB).
    from croniter import croniter

    return croniter(expand(expr), start)


def next_after(expr: str, tz: tzinfo, after: datetime) -> datetime:
    """The first fire instant strictly after `after` (aware), in `tz`."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    it = _iterate(expr, _wall(after, tz))
    for _ in range(_MAX_STEPS):
        inst = _resolve(it.get_next(datetime), tz)
        if _utc(inst) > _utc(after):
            return inst
    raise RuntimeError(f"no fire time found for {expr!r} after {after.isoformat()}")


def latest_at_or_before(expr: str, tz: tzinfo, now: datetime) -> datetime:
    """The most recent fire instant at or before `now` (aware), in `tz`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # croniter's get_prev is strictly before its start: nudge past `now` so a fire
    # exactly at `now` counts.
    it = _iterate(expr, _wall(now, tz) + timedelta(microseconds=1))
    for _ in range(_MAX_STEPS):
        inst = _resolve(it.get_prev(datetime), tz)
        if _utc(inst) <= _utc(now):
            return inst
    raise RuntimeError(f"no fire time found for {expr!r} before {now.isoformat()}")


def missed_run(expr: str, tz: tzinfo, since: datetime, now: datetime) -> datetime | None:
    """The latest fire instant in (since, now], or None: what catch-up fires once."""
    latest = latest_at_or_before(expr, tz, now)
    return latest if _utc(latest) > _utc(since) else None


def zone(name: str | None) -> tzinfo:
    """The zone for a job: its IANA name, else the machine's local zone."""
    return ZoneInfo(name) if name else local_zone()


def local_zone() -> tzinfo:
    """The machine's zone with its DST rules: $TZ, /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX TZ string like "EST5EDT,M3.2.0": fall through
    localtime = Path("/etc/localtime")
    try:
        target = os.readlink(localtime)
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with localtime.open("rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC
