"""Rule matching as pure functions: trigger globs and `{field, op, value}` conditions.

Every check answers (matched, reason) so `automation.test` can say why a rule did not
match. Regular expressions were compiled at config load (config.model.Condition), so a
bad pattern never reaches here; they are cached per pattern.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import operator
import re
from collections.abc import Callable
from typing import Any

from aiwgd.actions.templates import lookup
from aiwgd.config.model import Condition, Rule

__all__ = ["check_condition", "explain", "trigger_matches"]

_ORDER_OPS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "gt": (">", operator.gt),
    "gte": (">=", operator.ge),
    "lt": ("<", operator.lt),
    "lte": ("<=", operator.le),
}


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _label(cond: Condition, actual: Any) -> str:
    return f"{cond.field} = {_show(actual)}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


def check_condition(cond: Condition, event: dict[str, Any]) -> tuple[bool, str]:
    """(True, "") when `event` satisfies `cond`, else (False, why not)."""
    try:
        actual = lookup(event, cond.field)
        found = True
    except KeyError:
        actual, found = None, False
    op, want = cond.op, cond.value
    if op == "exists":
        return (True, "") if found else (False, f"{cond.field} is missing")
    if op == "not_exists":
        return (True, "") if not found else (False, f"{cond.field} exists ({_show(actual)})")
    if not found:
        return False, f"{cond.field} is missing"
    # The label is built only on a miss: the hits are the hot path (every event).
    if op == "eq":
        ok = actual == want
        return (True, "") if ok else (False, f"{_label(cond, actual)}, not {_show(want)}")
    if op == "ne":
        ok = actual != want
        return (True, "") if ok else (False, f"{_label(cond, actual)}, which it must not be")
    if op == "in":
        ok = isinstance(want, list) and actual in want
        return (True, "") if ok else (False, f"{_label(cond, actual)}, not one of {_show(want)}")
    if op == "contains":
        ok = _contains(actual, want)
        why = f"{_label(cond, actual)} does not contain {_show(want)}" if not ok else ""
        return ok, why
    if op == "matches":
        ok = isinstance(actual, str) and _regex(str(want)).search(actual) is not None
        return (True, "") if ok else (False, f"{_label(cond, actual)} does not match /{want}/")
    if op == "glob":
        ok = isinstance(actual, str) and fnmatch.fnmatchcase(actual, str(want))
        why = f"{_label(cond, actual)} does not match glob {_show(want)}" if not ok else ""
        return ok, why
    if op in _ORDER_OPS:
        sign, cmp = _ORDER_OPS[op]
        if not _comparable(actual, want):
            return False, f"{_label(cond, actual)} cannot be compared with {_show(want)}"
        ok = cmp(actual, want)
        return (True, "") if ok else (False, f"{_label(cond, actual)}, not {sign} {_show(want)}")
    return False, f"unknown op {op!r}"  # unreachable: ops are checked at load


def _contains(actual: Any, want: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(want, str) and want in actual
    if isinstance(actual, list):
        return want in actual
    if isinstance(actual, dict):
        return isinstance(want, str) and want in actual
    return False


def trigger_matches(rule: Rule, event: dict[str, Any]) -> tuple[bool, str]:
    """Does the event's type (and source, when the trigger names one) fit the trigger?"""
    etype = str(event.get("type", ""))
    if not fnmatch.fnmatchcase(etype, rule.trigger.type):
        return False, f"type {etype!r} does not match trigger {rule.trigger.type!r}"
    source = rule.trigger.source
    if source is not None and not fnmatch.fnmatchcase(str(event.get("source", "")), source):
        return False, f"source {event.get('source')!r} does not match {source!r}"
    return True, ""


def explain(rule: Rule, event: dict[str, Any]) -> tuple[bool, list[str]]:
    """(matched, reasons): the trigger, then every condition (all are reported)."""
    ok, why = trigger_matches(rule, event)
    if not ok:
        return False, [why]
    reasons = []
    for i, cond in enumerate(rule.conditions):
        good, why = check_condition(cond, event)
        if not good:
            reasons.append(f"conditions[{i}]: {why}")
    return not reasons, reasons
