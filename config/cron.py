"""Strict validation of cron expressions (5 fields or an @alias)."""

from __future__ import annotations

import re

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_NUMBER = re.compile(r"\d+")


def expand(expr: str) -> str:
    """The 5-field form of an expression (aliases resolved)."""
    return ALIASES.get(expr.strip().lower(), expr.strip())


def cron_error(expr: str) -> str | None:
    """None if `expr` is a valid 5-field cron expression or alias, else the reason."""
    text = expand(expr)
    parts = text.split()
    if len(parts) != 5:
        return (
            f"is not a valid cron expression (needs 5 fields: minute hour day-of-month "
            f"month day-of-week, or one of {', '.join(ALIASES)}; got {len(parts)})"
        )
    for part, (name, lo, hi) in zip(parts, FIELDS, strict=True):
        for num in _NUMBER.findall(part.split("/")[0]):
            if not lo <= int(num) <= hi:
                return f"is not a valid cron expression ({name} must be {lo}-{hi})"
    from croniter import croniter

    if not croniter.is_valid(text):
        return "is not a valid cron expression"
    return None
