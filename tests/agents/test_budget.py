"""agent.budget on a real daemon: a runaway agent stopped at its per-task budget, a spent
day holding new prompt tasks queued (across a restart) until a reload raises it.

The runaway agent is a script of the test: it prints an init line and then one
assistant message after another (1000 output tokens each: $0.015 at Sonnet's list
price) until it is stopped; the others are tests/agents/fake_agent.py's modes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config import ValidationError, parse_config
from tests.agents import fake_agent as fa
from tests.utils import (
    BASE_CONFIG,
    DaemonProc,
    Subscriber,
    alive,
    deep_merge,
    run_cli,
    wait_for,
    write_config,
)

FAKE = str(Path(fa.__file__))
AGENT = [sys.executable, FAKE, "--delay", "0.001", "--mode", "{prompt}"]

RUNAWAY = """\
import os, sys, time
sys.path.insert(0, {tests!r})
import fake_agent as fa
with open({pidfile!r}, "w") as f:
    f.write(str(os.getpid()))
os.write(1, fa.line(fa.init()))
usage = {{"input_tokens": 0, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 0, "output_tokens": 1000}}
for n in range(3000):
    text = [{{"type": "text", "text": "step %d" % n}}]
    os.write(1, fa.line(fa.assistant("msg_%d" % n, text, usage)))
    time.sleep(0.02)
"""
WAIT_REASON = "daily agent budget of $0.04 spent; waits until tomorrow (UTC) or a raised budget"


def runaway(project: Path) -> tuple[list[str], Path]:
    pidfile = project / "agent.pid"
    script = project / "runaway.py"
    script.write_text(RUNAWAY.format(tests=str(Path(FAKE).parent), pidfile=str(pidfile)))
    return [sys.executable, str(script), "{prompt}"], pidfile


def finished(d: DaemonProc, task_id: str) -> dict[str, Any]:
    done: dict[str, Any] = d.call("task.wait", id=task_id, timeout_s=30, _timeout=40)
    assert done["state"] not in ("queued", "running"), done
    return done


def spent(error: str, scope: str) -> float:
    pattern = {
        "task": r"budget: \$(\d+\.\d\d) over the per-task budget of \$0\.02",
        "day": r"budget: \$(\d+\.\d\d) spent today, over the daily agent budget of \$0\.02",
    }[scope]
    m = re.fullmatch(pattern, error)
    assert m, error
    return float(m.group(1))


@pytest.mark.parametrize("scope", ["task", "day"])
def test_a_runaway_agent_is_stopped_at_its_budget(
    start_daemon: Any, project: Path, scope: str
) -> None:
    command, pidfile = runaway(project)
    budget = {"per_task_usd": 0.02} if scope == "task" else {"per_day_usd": 0.02}
    d = start_daemon(
        config={"agent": {"command": command, "output": "stream-json", "budget": budget}}
    )
    events = Subscriber(d, ["agent.*"])
    task = d.call("task.submit", prompt="refactor everything", timeout_s=60, max_retries=2)
    done = finished(d, task["id"])
    assert done["state"] == "failed" and done["attempt"] == 1  # a budget stop is final
    assert spent(done["error"], scope) > 0.02
    # What it spent and its session are recorded: it can be resumed, and it counts.
    assert done["session_id"] == fa.SESSION and done["cost_usd"] > 0.02
    assert done["tokens"]["output_tokens"] >= 2000
    event = events.next(lambda e: e["type"] == "agent.budget_reached")
    assert event["data"] == {
        "scope": scope,
        "task": task["id"],
        "agent": "default",
        "spent": event["data"]["spent"],
        "budget": 0.02,
    }
    # Output already in the pipe when it was stopped is still read (and counted).
    assert 0.02 < event["data"]["spent"] <= done["cost_usd"] + 1e-9
    # The stop ladder took the agent down: nothing of it is left.
    assert not alive(int(pidfile.read_text()))
    events.close()


def test_a_spent_day_holds_new_prompt_tasks_until_a_reload_raises_the_budget(
    start_daemon: Any, project: Path
) -> None:
    agent = {"command": AGENT, "output": "stream-json", "budget": {"per_day_usd": 0.04}}
    d = start_daemon(config={"agent": agent})
    events = Subscriber(d, ["agent.*"])
    first = finished(d, d.call("task.submit", prompt="normal")["id"])
    assert first["state"] == "completed" and first["cost_usd"] == fa.TOTAL_COST  # > 0.04
    reached = events.next(lambda e: e["type"] == "agent.budget_reached")
    assert reached["data"]["scope"] == "day" and reached["data"]["budget"] == 0.04
    assert reached["data"]["spent"] == pytest.approx(fa.TOTAL_COST)
    events.close()

    held = d.call("task.submit", prompt="normal")
    waiting = wait_for(
        lambda: (t := d.call("task.get", id=held["id"]))["queued_reason"] and t,
        10,
        "the held task's reason",
    )
    assert waiting["state"] == "queued" and waiting["queued_reason"] == WAIT_REASON
    listed = d.call("task.list", state="queued")["tasks"]
    assert [(t["id"], t["queued_reason"]) for t in listed] == [(held["id"], WAIT_REASON)]
    # Commands are not agents: they still run.
    cmd = d.call("task.submit", command=[sys.executable, "-c", "pass"])
    assert finished(d, cmd["id"])["state"] == "completed"
    shown = run_cli(project, "task", "get", held["id"])
    assert shown.returncode == 0 and shown.stdout.splitlines()[0].endswith(WAIT_REASON)
    table = run_cli(project, "task", "list")
    assert table.returncode == 0 and f"1 queued: {WAIT_REASON}" in table.stdout.splitlines()
    # A held task can be cancelled like any queued one; it no longer counts as waiting.
    other = d.call("task.submit", prompt="normal")
    wait_for(lambda: d.call("task.get", id=other["id"])["queued_reason"], 10, "held too")
    assert d.call("task.stats")["costs"]["today"]["waiting"] == 2
    assert d.call("task.cancel", id=other["id"])["state"] == "cancelled"
    assert d.call("task.stats")["costs"]["today"]["waiting"] == 1

    # The day's spend is derived from the stored tasks: a restart keeps it held.
    d.stop()
    d = start_daemon(write=False)
    again = wait_for(
        lambda: d.call("task.stats")["costs"]["today"]["waiting"] == 1, 10, "held after restart"
    )
    assert again
    assert d.call("task.get", id=held["id"])["state"] == "queued"

    # A reload raising the budget lets it start.
    raised = {"agent": {**agent, "budget": {"per_day_usd": 1.0}}}
    write_config(project, deep_merge(BASE_CONFIG, raised))
    d.call("daemon.reload")
    done = finished(d, held["id"])
    assert done["state"] == "completed" and done["queued_reason"] is None
    assert done["result"] == fa.ANSWER
    assert d.call("task.stats")["costs"]["today"]["spent_usd"] == pytest.approx(2 * fa.TOTAL_COST)


@pytest.mark.parametrize("value", [-1, 0, "1.5"])
def test_a_bad_budget_is_refused_with_its_key_path(value: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_config({"agent": {"budget": {"per_task_usd": value}}})
    assert "agent.budget.per_task_usd" in str(exc.value)


def test_a_bad_output_is_refused_with_its_key_path() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_config({"agent": {"output": "json"}})
    assert "agent.output" in str(exc.value) and "stream-json" in str(exc.value)


def test_a_running_agent_shows_its_cost_so_far_and_a_cancel_keeps_it(
    start_daemon: Any, project: Path
) -> None:
    command, pidfile = runaway(project)
    d = start_daemon(config={"agent": {"command": command, "output": "stream-json"}})
    task = d.call("task.submit", prompt="go on", timeout_s=60)
    running = wait_for(
        lambda: (t := d.call("task.get", id=task["id"]))["cost_usd"] and t,
        10,
        "the running estimate on task.get",
    )
    assert running["state"] == "running" and running["cost_usd"] >= 0.015
    assert running["tokens"]["output_tokens"] >= 1000
    done = d.call("task.cancel", id=task["id"])
    assert done["state"] == "cancelled" and done["cost_usd"] >= running["cost_usd"]
    assert not alive(int(pidfile.read_text()))
    today = d.call("task.stats")["costs"]["today"]
    assert today["spent_usd"] == pytest.approx(done["cost_usd"])


def test_a_budget_without_stream_json_is_refused() -> None:
    """It could never act: the cost is read from the agent's stream-json."""
    with pytest.raises(ValidationError) as exc:
        parse_config({"agent": {"budget": {"per_day_usd": 5}}})
    assert 'agent.budget: needs agent.output "stream-json"' in str(exc.value)
    parse_config({"agent": {"budget": {"per_day_usd": 5}, "output": "stream-json"}})
