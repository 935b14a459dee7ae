"""Throttle: one line per interval, counting what happened in between."""

from __future__ import annotations

from aiwgd.infra.throttle import Due, Throttle


def test_the_first_is_said_then_held_back_and_counted() -> None:
    t = Throttle(3600)
    assert t.hit() == Due(1, None)
    assert [t.hit() for _ in range(5)] == [None] * 5
    t.interval_s = 0  # the interval has passed
    due = t.hit()
    assert due is not None and due.count == 6 and due.since_s is not None
    again = t.hit()
    assert again is not None and again.count == 1
