"""Rule matching and templates as pure functions: every condition op, every template case."""

from __future__ import annotations

from typing import Any

import pytest

from aiwgd.actions.templates import TemplateError, render, render_argv, render_data
from aiwgd.automation.conditions import check_condition, explain
from aiwgd.config.load import parse_config
from aiwgd.config.model import Condition, Rule
from aiwgd.config.schema import ValidationError, parse

EVENT: dict[str, Any] = {
    "id": "ev-1",
    "type": "file.modified",
    "source": "watcher",
    "time": 1700000000.5,
    "data": {
        "path": "src/app/main.py",
        "size": 120,
        "tags": ["py", "app"],
        "meta": {"owner": "ana", "flag": True},
        "empty": "",
        "none": None,
    },
}

# (field, op, value, expected)
CASES = [
    ("data.path", "eq", "src/app/main.py", True),
    ("data.path", "eq", "src/other.py", False),
    ("data.size", "eq", 120, True),
    ("data.path", "ne", "x", True),
    ("data.path", "ne", "src/app/main.py", False),
    ("data.path", "in", ["a", "src/app/main.py"], True),
    ("data.path", "in", ["a", "b"], False),
    ("data.path", "contains", "app/", True),
    ("data.path", "contains", "zzz", False),
    ("data.tags", "contains", "py", True),
    ("data.tags", "contains", "go", False),
    ("data.meta", "contains", "owner", True),
    ("data.size", "contains", "1", False),  # a number contains nothing
    ("data.path", "matches", r"\.py$", True),
    ("data.path", "matches", r"^app/", False),  # search, anchored by the pattern itself
    ("data.size", "matches", "120", False),  # only strings match regexes
    ("data.path", "glob", "src/*.py", True),  # fnmatch: * crosses "/"
    ("data.path", "glob", "*.ts", False),
    ("data.size", "gt", 100, True),
    ("data.size", "gt", 120, False),
    ("data.size", "gte", 120, True),
    ("data.size", "lt", 121, True),
    ("data.size", "lt", 120, False),
    ("data.size", "lte", 120, True),
    ("data.size", "gt", "100", False),  # a number never compares with a string
    ("data.path", "gt", "src", True),  # strings compare with strings
    ("data.path", "exists", None, True),
    ("data.none", "exists", None, True),  # present with a null value still exists
    ("data.missing", "exists", None, False),
    ("data.missing", "not_exists", None, True),
    ("data.path", "not_exists", None, False),
    ("data.missing", "eq", None, False),  # a missing field never equals anything
    ("data.missing", "ne", "x", False),  # ... nor differs from anything
    ("data.tags.0", "eq", "py", True),  # list index in a dotted path
    ("data.meta.flag", "eq", True, True),
    ("type", "glob", "file.*", True),
    ("source", "eq", "watcher", True),
    ("time", "gt", 1700000000, True),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES)
def test_condition_ops(field: str, op: str, value: Any, expected: bool) -> None:
    cond = parse(Condition, {"field": field, "op": op, "value": value})
    ok, why = check_condition(cond, EVENT)
    assert ok is expected, why
    assert (why == "") is expected  # a failed check always says why


def test_failed_condition_reasons_name_the_field_and_value() -> None:
    cond = parse(Condition, {"field": "data.size", "op": "gt", "value": 500})
    assert check_condition(cond, EVENT) == (False, "data.size = 120, not > 500")
    cond = parse(Condition, {"field": "data.nope", "op": "eq", "value": 1})
    assert check_condition(cond, EVENT) == (False, "data.nope is missing")


def rule(**kw: Any) -> Rule:
    raw = {"id": "r", "trigger": {"type": "file.*"}, "action": {"type": "log", "message": "m"}}
    return parse(Rule, {**raw, **kw})


def test_explain_trigger_source_and_every_failed_condition() -> None:
    assert explain(rule(), EVENT) == (True, [])
    ok, why = explain(rule(trigger={"type": "task.*"}), EVENT)
    assert not ok and "does not match trigger 'task.*'" in why[0]
    ok, why = explain(rule(trigger={"type": "file.*", "source": "rpc"}), EVENT)
    assert not ok and "source 'watcher'" in why[0]
    assert explain(rule(trigger={"type": "*", "source": "watch*"}), EVENT)[0]
    conds = [
        {"field": "data.size", "op": "lt", "value": 5},
        {"field": "data.path", "op": "glob", "value": "*.py"},
        {"field": "data.x", "op": "exists"},
    ]
    ok, why = explain(rule(conditions=conds), EVENT)
    assert not ok
    assert why == ["conditions[0]: data.size = 120, not < 5", "conditions[2]: data.x is missing"]


def test_render_resolves_fields_never_code() -> None:
    assert render("{{type}} {{ data.path }} by {{data.meta.owner}}", EVENT) == (
        "file.modified src/app/main.py by ana"
    )
    assert render("n={{data.size}} t={{data.tags}} f={{data.meta.flag}}", EVENT) == (
        'n=120 t=["py","app"] f=true'
    )
    assert render("{{id}}", EVENT) == "ev-1"
    assert render("no placeholders {here}", EVENT) == "no placeholders {here}"
    evil = {**EVENT, "data": {"path": "{{id}} $(rm -rf /) `x`"}}
    # A value is inserted verbatim: not re-rendered, not evaluated.
    assert render("{{data.path}}", evil) == "{{id}} $(rm -rf /) `x`"


@pytest.mark.parametrize("text", ["{{data.nope}}", "{{data.path.deeper}}", "{{data.tags.9}}"])
def test_missing_field_is_an_error(text: str) -> None:
    with pytest.raises(TemplateError, match="the event has no field"):
        render(text, EVENT)


def test_argv_values_stay_inside_their_own_element() -> None:
    ev = {**EVENT, "data": {"path": "my file; rm -rf ~ \"quoted\" 'x'"}}
    argv = ["sh", "-c", 'ruff check "$1"', "sh", "{{data.path}}"]
    out = render_argv(argv, ev)
    assert out == ["sh", "-c", 'ruff check "$1"', "sh", "my file; rm -rf ~ \"quoted\" 'x'"]
    assert len(out) == len(argv)


def test_render_data_keeps_types_of_whole_placeholders() -> None:
    data = {
        "n": "{{data.size}}",
        "label": "size {{data.size}}",
        "tags": ["{{data.tags}}"],
        "nested": {"who": "{{data.meta.owner}}"},
        "lit": 3,
    }
    assert render_data(data, EVENT) == {
        "n": 120,
        "label": "size 120",
        "tags": [["py", "app"]],
        "nested": {"who": "ana"},
        "lit": 3,
    }


@pytest.mark.parametrize(
    ("action", "path", "fragment"),
    [
        ({"type": "log", "message": "{{ data.path"}, "rules[0].action.message", "unclosed"),
        (
            {"type": "log", "message": "{{os.system}}"},
            "rules[0].action.message",
            "naming no event field",
        ),
        ({"type": "log", "message": "{{data.a b}}"}, "rules[0].action.message", "malformed"),
        (
            {"type": "task", "command": ["echo", "{{x}}"]},
            "rules[0].action.command[1]",
            "naming no event field",
        ),
        (
            {"type": "emit", "event_type": "a.b", "data": {"k": ["{{bad"]}},
            "rules[0].action.data.k[0]",
            "unclosed",
        ),
        ({"type": "task"}, "rules[0].action", 'exactly one of "prompt" or "command"'),
        (
            {"type": "task", "prompt": "p", "url": "http://x"},
            "rules[0].action.url",
            'is not used by a "task" action',
        ),
        ({"type": "webhook", "url": "ftp://x"}, "rules[0].action.url", "not an http://"),
        (
            {"type": "webhook", "url": "http://x", "secret_env": "A-B"},
            "rules[0].action.secret_env",
            "environment variable name",
        ),
        ({"type": "shell", "message": "x"}, "rules[0].action.type", "is not allowed"),
    ],
)
def test_bad_actions_are_config_errors(action: dict[str, Any], path: str, fragment: str) -> None:
    raw = {"id": "r", "trigger": {"type": "file.*"}, "action": action}
    with pytest.raises(ValidationError) as info:
        parse_config({"rules": [raw]})
    text = str(info.value)
    assert path in text and fragment in text, text


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        (
            {"conditions": [{"field": "data.p", "op": "matches", "value": "(["}]},
            "rules[0].conditions[0].value",
            "not a valid regular expression",
        ),
        (
            {"conditions": [{"field": "data.p", "op": "like", "value": 1}]},
            "rules[0].conditions[0].op",
            "is not allowed",
        ),
        (
            {"conditions": [{"field": "data.p", "op": "in", "value": "abc"}]},
            "rules[0].conditions[0].value",
            "must be a list",
        ),
        ({"max_per_minute": 0}, "rules[0].max_per_minute", ">= 1"),
        ({"cooldown_s": -1}, "rules[0].cooldown_s", ">= 0"),
        ({"trigger": {}}, "rules[0].trigger.type", "is required"),
    ],
)
def test_bad_rules_are_config_errors(extra: dict[str, Any], path: str, fragment: str) -> None:
    raw = {"id": "r", "trigger": {"type": "file.*"}, "action": {"type": "log", "message": "m"}}
    with pytest.raises(ValidationError) as info:
        parse_config({"rules": [{**raw, **extra}]})
    text = str(info.value)
    assert path in text and fragment in text, text


def test_duplicate_rule_ids_are_refused() -> None:
    raw = {"id": "r", "trigger": {"type": "file.*"}, "action": {"type": "log", "message": "m"}}
    with pytest.raises(ValidationError, match=r'rules\[1\].id: "r" is used twice'):
        parse_config({"rules": [raw, raw]})
