"""Token counts and what they cost, for an agent run whose result line has not come.

Claude Code's final `result` line carries the real total (`total_cost_usd`); until it
comes (or when it never does: the agent was killed), the only figures are the token
counts each `assistant` message carries in `message.usage`. A budget must be able to
stop a runaway agent from those, so they are priced here with list prices.

Prices are per million tokens, as published for the Claude API (2025). A model not in
the table is priced at the most expensive rate: a budget is a ceiling, and an estimate
that is too high stops an agent early, one that is too low lets it run past its budget.
The result line's own total replaces the estimate as soon as it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TOKEN_KEYS", "Price", "Tokens", "price_for", "tokens_from"]

# The four counts the result line and every assistant message carry; other keys
# (service_tier, server_tool_use, cache_creation details) are not summed.
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)

Tokens = tuple[int, int, int, int]  # in TOKEN_KEYS order
ZERO: Tokens = (0, 0, 0, 0)


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, tokens: Tokens) -> float:
        inp, out, write, read = tokens
        return (
            inp * self.input + out * self.output + write * self.cache_write + read * self.cache_read
        ) / 1_000_000


# First match wins: the more specific names come before the family's older models.
_PRICES: tuple[tuple[str, Price], ...] = (
    ("opus-4-5", Price(5.0, 25.0, 6.25, 0.50)),
    ("opus", Price(15.0, 75.0, 18.75, 1.50)),
    ("sonnet", Price(3.0, 15.0, 3.75, 0.30)),
    ("haiku-4-5", Price(1.0, 5.0, 1.25, 0.10)),
    ("3-5-haiku", Price(0.80, 4.0, 1.0, 0.08)),
    ("haiku", Price(0.25, 1.25, 0.30, 0.03)),
)
UNKNOWN_PRICE = Price(15.0, 75.0, 18.75, 1.50)


def price_for(model: str | None) -> Price:
    if model:
        name = model.lower()
        for part, price in _PRICES:
            if part in name:
                return price
    return UNKNOWN_PRICE


def tokens_from(usage: Any) -> tuple[Tokens, bool] | None:
    """The four counts of a `usage` object, and whether every count present was usable.

    A missing count is 0 (older agents leave out the cache counts); a count of the wrong
    type (a string, a float, a bool, a negative number) is 0 and makes the flag False.
    Returns None when `usage` is not an object at all.
    """
    if not isinstance(usage, Mapping):
        return None
    ok = True
    counts: list[int] = []
    for key in TOKEN_KEYS:
        value = usage.get(key, 0)
        # bool is an int subclass: `true` is not a token count.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            counts.append(value)
        else:
            counts.append(0)
            ok = False
    return (counts[0], counts[1], counts[2], counts[3]), ok


def add(a: Tokens, b: Tokens) -> Tokens:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def sub(a: Tokens, b: Tokens) -> Tokens:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def as_dict(tokens: Tokens) -> dict[str, int]:
    return dict(zip(TOKEN_KEYS, tokens, strict=True))
