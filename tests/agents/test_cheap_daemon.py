"""Without a budget the daemon parses stream-json in its cheap mode and reads what it
leaves out back from the task log: on a real daemon, a killed agent whose log passed
its cap is charged for what the log kept (the cut middle was never written), and a
budget added by a reload still stops an agent started without one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.agents import fake_agent as fa
from tests.agents.test_budget import finished, runaway, spent
from tests.utils import BASE_CONFIG, alive, deep_merge, wait_for, write_config

PER_MESSAGE = (5 * 3 + 200 * 15 + 3000 * 0.30) / 1e6  # fa.MSG2 at Sonnet's prices
MESSAGES = 60

AGENT = """\
import os, signal, sys
sys.path.insert(0, {tests!r})
import fake_agent as fa
os.write(1, fa.line(fa.init()))
for i in range({n}):
    os.write(1, fa.line(fa.assistant(f"msg_{{i:03d}}", [{{"type": "text", "text": "x" * 800}}],
                                     fa.MSG2)))
    os.write(1, fa.line(fa.tool_result("y" * 800)))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_agent_past_the_log_cap_is_charged_for_what_the_log_kept(
    start_daemon: Any, project: Path
) -> None:
    script = project / "agent.py"
    script.write_text(AGENT.format(tests=str(Path(fa.__file__).parent), n=MESSAGES))
    agent = {"command": [sys.executable, str(script), "{prompt}"], "output": "stream-json"}
    d = start_daemon(config={"agent": agent, "tasks": {"log_max_bytes": 32_768}})
    task = d.call("task.submit", prompt="go")
    done = d.call("task.wait", id=task["id"], timeout_s=30, _timeout=40)
    assert done["state"] == "failed" and done["signal"] == 9
    assert done["session_id"] == fa.SESSION
    log = Path(done["log_path"]).read_bytes()
    assert b"log cap of 32768 bytes" in log
    # Each message the log kept counts once: its head's and its tail's, not the middle's.
    kept = log.count(b'"type":"assistant"')
    assert 2 <= kept < MESSAGES
    assert done["tokens"]["output_tokens"] in (200 * kept, 200 * (kept - 1))
    assert done["cost_usd"] == round(done["tokens"]["output_tokens"] / 200 * PER_MESSAGE, 9)


def test_a_budget_added_by_a_reload_stops_an_agent_started_without_one(
    start_daemon: Any, project: Path
) -> None:
    """Its parser is in the cheap mode (chosen at the start), but the cost read back from
    its log goes to the budget as well: the new budget applies within seconds."""
    command, pidfile = runaway(project)
    agent = {"command": command, "output": "stream-json"}
    d = start_daemon(config={"agent": agent})
    task = d.call("task.submit", prompt="go on", timeout_s=60)
    wait_for(lambda: d.call("task.get", id=task["id"])["cost_usd"], 10, "the running cost")
    budget = {"agent": {**agent, "budget": {"per_task_usd": 0.02}}}
    write_config(project, deep_merge(BASE_CONFIG, budget))
    d.call("daemon.reload")
    done = finished(d, task["id"])
    assert done["state"] == "failed" and done["attempt"] == 1
    assert spent(done["error"], "task") > 0.02
    assert not alive(int(pidfile.read_text()))
