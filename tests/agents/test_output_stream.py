"""agent.output: stream-json on a real daemon: what the agent said lands on the task.

The agent is tests/agents/fake_agent.py, run as `agent.command` with the prompt as its
mode (`normal`, `error`, `killed`, `huge`, `garbage`, `wrongcost`), writing Claude
Code's stream-json in pieces. Every check is on what a user sees: task.get, task.stats,
the task log, and the CLI.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agents import fake_agent as fa
from tests.agents.test_streamjson import expected
from tests.utils import DaemonProc, run_cli, wait_for

FAKE = str(Path(fa.__file__))
AGENT = [sys.executable, FAKE, "--delay", "0.001", "--mode", "{prompt}"]
STREAM_JSON = {"agent": {"command": AGENT, "output": "stream-json"}}


def run_prompt(d: DaemonProc, prompt: str, **spec: Any) -> dict[str, Any]:
    task = d.call("task.submit", prompt=prompt, **spec)
    done: dict[str, Any] = d.call("task.wait", id=task["id"], timeout_s=30, _timeout=40)
    assert done["state"] not in ("queued", "running"), done
    return done


def log_bytes(d: DaemonProc, task: dict[str, Any]) -> bytes:
    return Path(task["log_path"]).read_bytes()


def agent_fields(mode: str) -> dict[str, Any]:
    want = expected(mode)
    return {
        "session_id": want["session_id"],
        "result": want["result"],
        "tokens": want["usage"],
        "cost_usd": want["cost_usd"],
        "turns": want["turns"],
    }


def test_a_stream_json_task_records_session_answer_tokens_cost_and_turns(
    start_daemon: Any,
) -> None:
    d = start_daemon(config=STREAM_JSON)
    task = run_prompt(d, "normal")
    assert task["state"] == "completed" and task["error"] is None
    got = d.call("task.get", id=task["id"])
    assert {k: got[k] for k in agent_fields("normal")} == agent_fields("normal")
    assert got["tokens"] == fa.TOTAL_USAGE and got["cost_usd"] == fa.TOTAL_COST
    # The parser only observes: the log holds the agent's stream byte for byte.
    assert log_bytes(d, got) == b"".join(fa.stream("normal"))
    # The final record is in the journal: a restarted daemon shows the same.
    d.stop()
    d2 = start_daemon(write=False)
    again = d2.call("task.get", id=task["id"])
    assert {k: again[k] for k in agent_fields("normal")} == agent_fields("normal")


def test_text_output_records_nothing_of_the_agent(start_daemon: Any) -> None:
    d = start_daemon(config={"agent": {"command": AGENT}})  # output: text (the default)
    task = run_prompt(d, "normal")
    assert task["state"] == "completed"
    assert [task[k] for k in ("session_id", "result", "tokens", "cost_usd", "turns")] == [None] * 5
    assert log_bytes(d, task) == b"".join(fa.stream("normal"))


def test_an_error_result_fails_the_task_even_on_exit_0(start_daemon: Any) -> None:
    d = start_daemon(config=STREAM_JSON)
    task = run_prompt(d, "error")
    assert task["state"] == "failed" and task["exit_code"] == 0
    assert task["error"] == "API Error: 529 overloaded"
    assert task["result"] == "API Error: 529 overloaded" and task["session_id"] == fa.SESSION
    assert task["cost_usd"] == fa.TOTAL_COST


@pytest.mark.parametrize("mode", ["killed", "huge", "garbage", "wrongcost"])
def test_faults_in_the_stream_never_cost_the_task_or_the_daemon(
    start_daemon: Any, mode: str
) -> None:
    """A cut last line (the agent killed before its result), a 2 MiB line, non-JSON
    lines and bytes, a cost of the wrong type: the task ends as its exit says, with
    what could be read, and the log holds the raw stream."""
    d = start_daemon(config=STREAM_JSON)
    task = run_prompt(d, mode)
    if mode == "killed":
        assert task["state"] == "failed" and task["signal"] == 9
        assert task["error"] == "killed by signal SIGKILL (9)"
    else:
        assert task["state"] == "completed", task["error"]
    # Killed: the session and the running estimate are still recorded.
    assert {k: task[k] for k in agent_fields(mode)} == agent_fields(mode)
    assert log_bytes(d, task) == b"".join(fa.stream(mode))
    assert d.call("ping") == "pong"
    # And the next one is read as well as ever.
    assert run_prompt(d, "normal")["cost_usd"] == fa.TOTAL_COST


SLOW_AGENT = """\
import os, sys, time
sys.path.insert(0, {tests!r})
import fake_agent as fa
os.write(1, fa.line(fa.init()))
while not os.path.exists({go!r}):
    time.sleep(0.01)
"""


def test_the_session_is_recorded_while_the_agent_runs(start_daemon: Any, project: Path) -> None:
    """So a killed or cancelled agent's session can still be resumed."""
    go = project / "go"
    script = project / "slow_agent.py"
    script.write_text(SLOW_AGENT.format(tests=str(Path(FAKE).parent), go=str(go)))
    agent = {"command": [sys.executable, str(script), "{prompt}"], "output": "stream-json"}
    d = start_daemon(config={"agent": agent})
    task = d.call("task.submit", prompt="work")
    running = wait_for(
        lambda: (t := d.call("task.get", id=task["id"]))["session_id"] and t,
        10,
        "the session id on the running task",
    )
    assert running["state"] == "running" and running["session_id"] == fa.SESSION
    done = d.call("task.cancel", id=task["id"])
    assert done["state"] == "cancelled" and done["session_id"] == fa.SESSION


def test_stats_sum_tokens_and_cost_per_agent_and_per_day(start_daemon: Any) -> None:
    d = start_daemon(config={"agent": {**STREAM_JSON["agent"], "agent_args": []}})
    run_prompt(d, "normal")
    run_prompt(d, "normal", agent="reviewer")
    run_prompt(d, "killed", agent="reviewer")
    d.call("task.submit", command=[sys.executable, "-c", "pass"])  # no cost: not counted
    costs = d.call("task.stats")["costs"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    estimate = round(fa.ESTIMATE, 9)

    def total(n: int, cost: float, *tokens: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {"tasks": n, "cost_usd": pytest.approx(cost)}
        for key in fa.TOTAL_USAGE:
            out[key] = sum(t[key] for t in tokens)
        return out

    assert costs["agents"] == {
        "default": total(1, fa.TOTAL_COST, fa.TOTAL_USAGE),
        "reviewer": total(2, fa.TOTAL_COST + estimate, fa.TOTAL_USAGE, fa.ESTIMATE_TOKENS),
    }
    assert costs["days"] == {
        today: total(
            3, 2 * fa.TOTAL_COST + estimate, fa.TOTAL_USAGE, fa.TOTAL_USAGE, fa.ESTIMATE_TOKENS
        )
    }
    assert costs["today"]["day"] == today
    assert costs["today"]["spent_usd"] == pytest.approx(2 * fa.TOTAL_COST + estimate)


def test_the_cli_shows_the_answer_first_a_cost_column_and_cost_sums(
    start_daemon: Any, project: Path
) -> None:
    d = start_daemon(config=STREAM_JSON)
    task = run_prompt(d, "normal")
    got = run_cli(project, "task", "get", task["id"])
    assert got.returncode == 0, got.stderr
    first = got.stdout.splitlines()[0]
    assert fa.ANSWER in first
    assert "$0.0421" in got.stdout and fa.SESSION in got.stdout

    listed = run_cli(project, "task", "list")
    assert listed.returncode == 0, listed.stderr
    head, row = listed.stdout.splitlines()[:2]
    assert "COST" in head.split() and "$0.0421" in row

    stats = run_cli(project, "task", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "$0.0421" in stats.stdout and "default" in stats.stdout


def test_the_cli_shows_no_costs_without_agent_costs(start_daemon: Any, project: Path) -> None:
    d = start_daemon()
    d.call("task.submit", command=[sys.executable, "-c", "pass"])
    listed = run_cli(project, "task", "list")
    assert listed.returncode == 0, listed.stderr
    assert "COST" not in listed.stdout.splitlines()[0].split()
    stats = run_cli(project, "task", "stats")
    assert stats.returncode == 0 and "agent spend" not in stats.stdout


LONG_ANSWER = """\
import os, sys
sys.path.insert(0, {tests!r})
import fake_agent as fa
os.write(1, fa.line(fa.init()))
os.write(1, fa.line(fa.result(result="y" * 200_000)))
"""


def test_a_long_answer_is_cut_on_the_task_and_whole_in_the_log(
    start_daemon: Any, project: Path
) -> None:
    script = project / "long_answer.py"
    script.write_text(LONG_ANSWER.format(tests=str(Path(FAKE).parent)))
    agent = {"command": [sys.executable, str(script), "{prompt}"], "output": "stream-json"}
    d = start_daemon(config={"agent": agent})
    task = run_prompt(d, "answer at length")
    assert task["state"] == "completed"
    assert len(task["result"]) == 64 * 1024 and task["result"].startswith("y" * 60_000)
    assert task["result"].endswith("(cut: the whole answer is in the task log)")
    assert b"y" * 200_000 in log_bytes(d, task)
