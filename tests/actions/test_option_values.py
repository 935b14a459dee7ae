"""Template values never turn into options (issue 8).

A rule `["ls", "{{data.path}}"]` and a file named `--version` used to run
`ls --version`. An argument that starts with a `-` coming from the event (not written
by the rule's author) is refused, unless an earlier argument is `--`, the usual
"options end here" marker, after which programs read it as an operand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiwgd.actions.templates import TemplateError, render_argv
from tests.taskhelp import TERMINAL, prog, wait_terminal
from tests.utils import DaemonProc, wait_for

DASH_FILES = [{"field": "data.path", "op": "glob", "value": "-*"}]


def dash_rule(rule_id: str, command: list[str]) -> dict[str, Any]:
    return {
        "id": rule_id,
        "trigger": {"type": "file.created"},
        "conditions": DASH_FILES,
        "action": {"type": "task", "command": command},
    }


def settled_execution(d: DaemonProc, rule_id: str) -> dict[str, Any] | None:
    items = d.call("automation.log", rule_id=rule_id)["executions"]
    if not items or items[0]["state"] not in ("succeeded", "failed"):
        return None
    exe: dict[str, Any] = items[0]
    if exe["task_id"] and exe["task_state"] not in TERMINAL:
        return None
    return exe


def test_a_watched_file_named_like_an_option_never_becomes_one(
    start_daemon: Any, project: Path
) -> None:
    rules = [
        dash_rule("naive", ["ls", "{{data.path}}"]),
        # The documented safe form: "--" first, then the value is an operand.
        dash_rule("operand", prog("--echo-args", "--", "{{data.path}}")),
    ]
    watch = {"enabled": True, "debounce_ms": 50, "paths": [{"path": "."}]}
    d = start_daemon({"watch": watch, "rules": rules})

    def watching() -> bool:
        w = d.call("daemon.status")["subsystems"]["watcher"]
        return bool(w["state"] == "watching" and w["index_complete"])

    wait_for(watching, 10, "the watcher")
    (project / "--version").write_text("not an option\n")

    naive = wait_for(lambda: settled_execution(d, "naive"), 15, "the naive rule")
    # No `ls --version`: no task ran, and the log says why and how to write it.
    assert naive["state"] == "failed" and naive["task_id"] is None, naive
    assert naive["attempts"] == 1  # hopeless: never retried, never dead-lettered
    assert 'command[1]: "{{data.path}}" gives "--version"' in naive["error"]
    assert 'put "--" before it' in naive["error"]
    assert all(t["command"][0] != "ls" for t in d.call("task.list")["tasks"])
    assert d.call("dlq.list")["entries"] == []

    operand = wait_for(lambda: settled_execution(d, "operand"), 15, "the operand rule")
    task = wait_terminal(d, operand["task_id"])
    assert json.loads(task["output_tail"]) == ["--", "--version"]  # what it received


EVENT = {"id": "ev-1", "type": "file.created", "source": "watcher", "data": {"path": "-rf"}}


@pytest.mark.parametrize(
    "argv",
    [
        ["rm", "{{data.path}}"],
        ["rm", "{{ data.path }}.bak"],  # the value still starts the argument
        ["sh", "-c", 'rm "$1"', "sh", "{{data.path}}"],  # the script would pass it on
    ],
)
def test_a_value_starting_an_argument_with_a_dash_is_refused(argv: list[str]) -> None:
    with pytest.raises(TemplateError) as info:
        render_argv(argv, EVENT)
    index = len(argv) - 1
    assert str(info.value).startswith(f"command[{index}]: ")
    program = argv[0]
    assert f", which {program} (or a program it hands it to) may take for an option" in str(
        info.value
    )
    assert f'put "--" before it (["{program}", "--", ' in str(info.value)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rm", "--", "{{data.path}}"], ["rm", "--", "-rf"]),
        (["rm", "./{{data.path}}"], ["rm", "./-rf"]),
        (["tool", "--file={{data.path}}"], ["tool", "--file=-rf"]),  # the option's value
        (["tool", "-{{data.path}}"], ["tool", "--rf"]),  # the author wrote the dash
        (["echo", "{{id}}"], ["echo", "ev-1"]),
    ],
)
def test_the_author_decides_what_is_an_option(argv: list[str], expected: list[str]) -> None:
    assert render_argv(argv, EVENT) == expected
