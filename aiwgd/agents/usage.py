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

from dataclasses import dataclass
from typing import Any

__all__ = ["TOKEN_KEYS", "Ledger", "Price", "Tokens", "as_dict", "price_for", "tokens_from"]

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
RECENT_MESSAGES = 64  # message ids remembered to count a message's repeated lines once


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
    if not isinstance(usage, dict):
        return None
    get = usage.get
    a = get("input_tokens", 0)
    b = get("output_tokens", 0)
    c = get("cache_creation_input_tokens", 0)
    d = get("cache_read_input_tokens", 0)
    # `type(...) is int`: bool is an int subclass, and `true` is not a token count.
    ints = type(a) is int and type(b) is int and type(c) is int and type(d) is int
    if ints and min(a, b, c, d) >= 0:
        return (a, b, c, d), True
    counts = [v if type(v) is int and v >= 0 else 0 for v in (a, b, c, d)]
    return (counts[0], counts[1], counts[2], counts[3]), False


def add(a: Tokens, b: Tokens) -> Tokens:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def sub(a: Tokens, b: Tokens) -> Tokens:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def as_dict(tokens: Tokens) -> dict[str, int]:
    return dict(zip(TOKEN_KEYS, tokens, strict=True))


class Ledger:
    """An agent run's tokens and cost: the last result line's totals, plus what the
    assistant messages after it add (all of them while no result has come).

    Claude Code writes a message once per content block, each line with the message's
    usage so far: a message counts once, by id, its latest usage replacing the earlier.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self._price = UNKNOWN_PRICE
        self._base_tokens: Tokens = ZERO
        self._base_cost: float | None = None
        self._base_estimated = False
        self._tokens: Tokens = ZERO  # since the base
        self._cost = 0.0
        self._seen = False  # a message counted since the base
        self._recent: dict[bytes, tuple[Tokens, float]] = {}

    def use_model(self, model: str) -> None:
        """The model the next messages are priced for (until one names its own)."""
        if model != self.model:
            self.model, self._price = model, price_for(model)

    def message(self, msg_id: bytes | None, model: str | None, tokens: Tokens) -> None:
        if model is not None:
            self.use_model(model)
        cost = self._price.cost(tokens)
        if msg_id is not None:
            old = self._recent.pop(msg_id, None)
            if old is not None:
                self._tokens = sub(self._tokens, old[0])
                self._cost -= old[1]
            self._recent[msg_id] = (tokens, cost)
            if len(self._recent) > RECENT_MESSAGES:
                del self._recent[next(iter(self._recent))]
        self._tokens = add(self._tokens, tokens)
        self._cost += cost
        self._seen = True

    def result(self, cost: float | None, tokens: Tokens | None) -> None:
        """A result line's totals; one it lacks (or that was unusable) keeps the
        estimate, carried into the base the next messages add to."""
        if cost is not None:
            self._base_cost, self._base_estimated = cost, False
        elif self._seen:
            self._base_cost = (self._base_cost or 0.0) + self._cost
            self._base_estimated = True
        self._base_tokens = tokens if tokens is not None else add(self._base_tokens, self._tokens)
        self._tokens, self._cost, self._seen = ZERO, 0.0, False
        self._recent.clear()

    @property
    def estimated(self) -> bool:
        return self._seen or self._base_estimated

    def tokens(self) -> Tokens:
        return add(self._base_tokens, self._tokens)

    def cost(self) -> float | None:
        if self._base_cost is None and not self._seen:
            return None
        if self.estimated:
            # Sums of small floats: keep the figure free of 1e-17 noise.
            return round((self._base_cost or 0.0) + self._cost, 9)
        return self._base_cost
