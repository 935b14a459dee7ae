"""Cron maths as pure functions of `now`: DST transitions and catch-up, fixed datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aiwgd.config.load import parse_config
from aiwgd.config.schema import ValidationError
from aiwgd.schedule.cronmath import latest_at_or_before, local_zone, missed_run, next_after, zone

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def fires(expr: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """Every fire instant in (start, end], as ISO strings with their UTC offset."""
    out, t = [], start
    while True:
        t = next_after(expr, tz, t)
        if t > end:
            return out
        out.append(t.isoformat())


# (zone, expression, window start, window end, expected fires) on transition days.
TABLE = [
    # New York falls back 2025-11-02 02:00 EDT -> 01:00 EST: 01:30 happens twice.
    (
        NY,
        "30 1 * * *",
        datetime(2025, 11, 1, 12),
        datetime(2025, 11, 3, 12),
        ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"],
    ),
    # Hourly through the repeated hour: 01:00 fires once (its first occurrence).
    (
        NY,
        "0 * * * *",
        datetime(2025, 11, 2, 0, 30),
        datetime(2025, 11, 2, 3, 30),
        ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"],
    ),
    # New York springs forward 2025-03-09 02:00 EST -> 03:00 EDT: 02:30 does not exist.
    (
        NY,
        "30 2 * * *",
        datetime(2025, 3, 8, 12),
        datetime(2025, 3, 10, 12),
        ["2025-03-09T03:30:00-04:00", "2025-03-10T02:30:00-04:00"],
    ),
    # A job at the start of the gap fires at the jump, once.
    (
        NY,
        "0 2 * * *",
        datetime(2025, 3, 8, 12),
        datetime(2025, 3, 10, 12),
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"],
    ),
    # Every 20 minutes across the gap: strictly increasing, nothing twice.
    (
        NY,
        "*/20 * * * *",
        datetime(2025, 3, 9, 1, 10),
        datetime(2025, 3, 9, 3, 45),
        [
            "2025-03-09T01:20:00-05:00",
            "2025-03-09T01:40:00-05:00",
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:20:00-04:00",
            "2025-03-09T03:40:00-04:00",
        ],
    ),
    # Berlin falls back 2025-10-26 03:00 CEST -> 02:00 CET: 02:15 happens twice.
    (
        BERLIN,
        "15 2 * * *",
        datetime(2025, 10, 25, 12),
        datetime(2025, 10, 27, 12),
        ["2025-10-26T02:15:00+02:00", "2025-10-27T02:15:00+01:00"],
    ),
    # Berlin springs forward 2025-03-30 02:00 CET -> 03:00 CEST.
    (
        BERLIN,
        "30 2 * * *",
        datetime(2025, 3, 29, 12),
        datetime(2025, 3, 31, 12),
        ["2025-03-30T03:30:00+02:00", "2025-03-31T02:30:00+02:00"],
    ),
    # Weekly on Sunday (7 and 0 both mean Sunday) across the Berlin gap.
    (
        BERLIN,
        "30 2 * * 7",
        datetime(2025, 3, 23, 12),
        datetime(2025, 4, 6, 12),
        ["2025-03-30T03:30:00+02:00", "2025-04-06T02:30:00+02:00"],
    ),
    # Aliases.
    (
        BERLIN,
        "@daily",
        datetime(2025, 10, 25, 12),
        datetime(2025, 10, 27, 12),
        ["2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00"],
    ),
]


@pytest.mark.parametrize(("tz", "expr", "start", "end", "expected"), TABLE)
def test_fires_across_dst(
    tz: ZoneInfo, expr: str, start: datetime, end: datetime, expected: list[str]
) -> None:
    got = fires(expr, tz, start.replace(tzinfo=tz), end.replace(tzinfo=tz))
    assert got == expected


@pytest.mark.parametrize("tz", [NY, BERLIN])
@pytest.mark.parametrize("hour", [0, 1, 2, 3, 4, 23])
def test_daily_job_fires_exactly_once_every_day_of_a_year(tz: ZoneInfo, hour: int) -> None:
    # Both transition days included: no day loses its run, none gets two.
    start = datetime(2025, 1, 1, tzinfo=tz)
    end = datetime(2026, 1, 1, tzinfo=tz)
    got = [datetime.fromisoformat(s) for s in fires(f"17 {hour} * * *", tz, start, end)]
    assert got == sorted(got, key=lambda g: g.astimezone(UTC))
    days = [g.astimezone(tz).date() for g in got]
    assert len(days) == 365
    assert len(set(days)) == 365


def test_starting_inside_the_repeated_hour_does_not_fire_its_first_pass_again() -> None:
    # 01:10 EST is the second pass of the repeated hour; 01:30 already fired at 01:30 EDT.
    second_pass = datetime(2025, 11, 2, 1, 10, tzinfo=NY, fold=1)
    assert second_pass.utcoffset() == timedelta(hours=-5)
    nxt = next_after("30 1 * * *", NY, second_pass)
    assert nxt.isoformat() == "2025-11-03T01:30:00-05:00"
    assert next_after("*/30 * * * *", NY, second_pass).isoformat() == "2025-11-02T02:00:00-05:00"


def test_next_after_is_strictly_after() -> None:
    at = datetime(2025, 6, 1, 9, 0, tzinfo=BERLIN)
    assert next_after("0 9 * * *", BERLIN, at) == datetime(2025, 6, 2, 9, 0, tzinfo=BERLIN)
    assert latest_at_or_before("0 9 * * *", BERLIN, at) == at


def test_latest_at_or_before_in_the_gap_and_the_fold() -> None:
    # 03:20 EDT on the spring day: today's 02:30 maps to 03:30, not yet due.
    now = datetime(2025, 3, 9, 3, 20, tzinfo=NY)
    assert latest_at_or_before("30 2 * * *", NY, now).isoformat() == "2025-03-08T02:30:00-05:00"
    now = datetime(2025, 3, 9, 3, 40, tzinfo=NY)
    assert latest_at_or_before("30 2 * * *", NY, now).isoformat() == "2025-03-09T03:30:00-04:00"
    # Second pass of the repeated hour: 01:30 happened (first pass), once.
    now = datetime(2025, 11, 2, 1, 40, tzinfo=NY, fold=1)
    assert latest_at_or_before("30 1 * * *", NY, now).isoformat() == "2025-11-02T01:30:00-04:00"


CATCH_UP = [
    # (last fire, now, expected missed run) for "0 9 * * *" in Berlin
    (datetime(2025, 6, 1, 9), datetime(2025, 6, 2, 10), datetime(2025, 6, 2, 9)),
    (datetime(2025, 6, 1, 9), datetime(2025, 6, 2, 8), None),  # nothing due yet today
    (datetime(2025, 6, 1, 9), datetime(2025, 6, 9, 12), datetime(2025, 6, 9, 9)),  # one, not 8
    (datetime(2025, 6, 2, 9), datetime(2025, 6, 2, 9), None),  # fired at exactly now
    (datetime(2025, 6, 1, 9), datetime(2025, 6, 2, 9), datetime(2025, 6, 2, 9)),  # due now
]


@pytest.mark.parametrize(("last", "now", "expected"), CATCH_UP)
def test_catch_up_fires_one_missed_run(
    last: datetime, now: datetime, expected: datetime | None
) -> None:
    got = missed_run("0 9 * * *", BERLIN, last.replace(tzinfo=BERLIN), now.replace(tzinfo=BERLIN))
    assert got == (None if expected is None else expected.replace(tzinfo=BERLIN))


def test_catch_up_over_the_spring_gap() -> None:
    # Down from Saturday to Sunday 04:00 EDT: Sunday's 02:30 (run at 03:30) was missed.
    last = datetime(2025, 3, 8, 2, 30, tzinfo=NY)
    now = datetime(2025, 3, 9, 4, 0, tzinfo=NY)
    assert missed_run("30 2 * * *", NY, last, now).isoformat() == "2025-03-09T03:30:00-04:00"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after("* * * * *", NY, datetime(2025, 1, 1))


def test_zones() -> None:
    assert zone("Europe/Berlin") == BERLIN
    assert zone(None) == local_zone()
    # The local zone is a real zone (with rules), and works for the maths.
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert next_after("0 0 * * *", zone(None), now) > now


@pytest.mark.parametrize(
    ("job", "path", "fragment"),
    [
        ({"cron": "61 * * * *"}, "schedule.jobs[0].cron", "minute must be 0-59"),
        ({"cron": "* * *"}, "schedule.jobs[0].cron", "needs 5 fields"),
        ({"cron": "@sometimes"}, "schedule.jobs[0].cron", "not a valid cron expression"),
        ({"timezone": "Mars/Olympus"}, "schedule.jobs[0].timezone", "IANA time zone"),
        ({"overlap": "never"}, "schedule.jobs[0].overlap", '"skip", "queue", "allow"'),
        ({"action": {"type": "log"}}, "schedule.jobs[0].action.message", "is required"),
        (
            {"action": {"type": "log", "message": "{{nope}}"}},
            "schedule.jobs[0].action.message",
            "naming no event field",
        ),
    ],
)
def test_bad_jobs_are_config_errors_with_their_key_path(
    job: dict[str, object], path: str, fragment: str
) -> None:
    raw = {"id": "j", "cron": "0 * * * *", "action": "label", **job}
    with pytest.raises(ValidationError) as info:
        parse_config({"schedule": {"jobs": [raw]}})
    text = str(info.value)
    assert path in text and fragment in text, text
