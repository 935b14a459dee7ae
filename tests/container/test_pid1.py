"""aiwgd as a container's main process (PID 1 of a PID namespace, no tini): orphans
are reaped without stealing a task's exit status, SIGTERM/SIGINT stop it with an exit
status saying whether the stop was clean, SIGHUP reloads, stderr is JSON or text."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.container.conftest import InitDaemon, InitFactory
from tests.utils import BASE_CONFIG, wait_for, write_config

# Forks a child that makes its own session and forks the orphan, then exits at once:
# the orphan (argv marked "orphan-of-task") is re-parented to PID 1. The task itself
# exits with `code`, after `stay` seconds if given.
FORKER = """
import os, sys, time
linger, code = float(sys.argv[1]), int(sys.argv[2])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c",
                 "import sys, time; time.sleep(float(sys.argv[1]))", str(linger),
                 "orphan-of-task"])
    os._exit(0)
os.wait()
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
sys.exit(code)
"""

# Ignores SIGTERM, says it is running, lingers.
STUBBORN = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).touch()
time.sleep(60)
"""


def script(project: Path, name: str, text: str) -> list[str]:
    path = project / name
    path.write_text(text)
    return [sys.executable, str(path)]


def quiet(grace: float = 0.3, **daemon: object) -> dict[str, object]:
    return {"daemon": {"stop_grace_seconds": grace, **daemon}}


def wait_ended(d: InitDaemon, task_id: str) -> dict[str, object]:
    def ended() -> dict[str, object] | None:
        t: dict[str, object] = d.call("task.wait", id=task_id, timeout_s=1, _timeout=5)
        return t if t["state"] not in ("queued", "running") else None

    got: dict[str, object] = wait_for(ended, 20, f"task {task_id} to end")
    return got


def test_daemon_is_pid_1_and_a_double_forking_task_leaves_nothing(
    start_init: InitFactory, project: Path
) -> None:
    d = start_init(quiet())
    assert d.call("daemon.status")["pid"] == 1  # what the daemon sees of itself
    forker = script(project, "forker.py", FORKER)
    task = d.call("task.submit", command=[*forker, "30", "3"])
    ended = wait_ended(d, task["id"])
    assert (ended["state"], ended["exit_code"]) == ("failed", 3)
    # The orphan (a setsid'd grandchild, adopted by PID 1) was stopped with the task
    # and reaped: no zombie, no process left in the namespace.
    wait_for(lambda: d.namespace() == [], 10, f"an empty namespace, not {d.namespace()}")


def test_exit_codes_stay_right_while_orphans_are_reaped(
    start_init: InitFactory, project: Path
) -> None:
    d = start_init(quiet(max_parallel_actions=4))
    forker = script(project, "forker.py", FORKER)
    # Orphans that end by themselves while tasks end: each SIGCHLD makes the daemon
    # reap, and a reap that waited for a task's own process would make its code 0.
    ids = [d.call("task.submit", command=[*forker, "0.05", str(3 + i)])["id"] for i in range(8)]
    got = [wait_ended(d, i)["exit_code"] for i in ids]
    assert got == [3 + i for i in range(8)]
    wait_for(lambda: d.namespace() == [], 10, f"an empty namespace, not {d.namespace()}")


def test_orphans_from_outside_any_task_are_reaped(start_init: InitFactory, project: Path) -> None:
    d = start_init(quiet())
    gate = project / "gate"
    # As `docker exec` would: a process entering the namespace whose child outlives it.
    orphan = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
    (project / "orphan.py").write_text(orphan)
    subprocess.run(
        ["nsenter", "-t", str(d.init_pid), "-p", "--", "sh", "-c",
         f"{sys.executable} {project / 'orphan.py'} exec-orphan & exit 0"],
        check=True, timeout=10,
    )  # fmt: skip

    def adopted() -> list[int]:
        return [pid for pid, status, cmd in d.namespace() if "exec-orphan" in cmd]

    pids = wait_for(adopted, 10, "the exec'd orphan to be PID 1's child")
    gate.touch()
    # It exits; without a reap it would stay a zombie child of PID 1 for good.
    wait_for(lambda: not pid_exists(pids[0]), 10, "the orphan's zombie to be reaped")
    assert d.call("ping") == "pong"


def pid_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_sigterm_stops_everything_within_the_grace_and_exits_0(
    start_init: InitFactory, project: Path
) -> None:
    d = start_init(quiet(grace=1.0))
    forker = script(project, "forker.py", FORKER)
    d.call("task.submit", command=[sys.executable, "-c", "import time; time.sleep(60)"])
    d.call("task.submit", command=[*forker, "60", "0", "60"])
    wait_for(lambda: len(d.namespace()) == 3, 10, "the two tasks and the orphan running")
    began = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0, d.stderr()
    # Draining waits up to the grace, then the ladder's SIGTERM ends them at once.
    assert time.monotonic() - began < 2 * 1.0 + 3
    assert "killing child" not in d.stderr()


def test_sigint_is_a_stop_too(start_init: InitFactory) -> None:
    d = start_init(quiet())
    d.signal(signal.SIGINT)  # Ctrl-C in `docker run -it`
    assert d.wait_exit(20) == 0, d.stderr()
    assert "reason=SIGINT" in d.stderr()


@pytest.mark.parametrize("level", ["info", "error"])
def test_a_task_ignoring_sigterm_makes_the_stop_unclean(
    start_init: InitFactory, project: Path, level: str
) -> None:
    # `level: error` logs no SIGKILL warning, and the stop is still known to be unclean.
    d = start_init(quiet(grace=0.3, log={"level": level}))
    ready = project / "ready"
    d.call("task.submit", command=[*script(project, "stubborn.py", STUBBORN), str(ready)])
    wait_for(ready.exists, 10, "the stubborn task running")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 2, d.stderr()  # aiwgd.infra.exitcodes.EXIT_UNCLEAN
    assert ("killing child" in d.stderr()) == (level == "info")


def test_a_second_sigterm_is_a_fast_stop(start_init: InitFactory, project: Path) -> None:
    d = start_init(quiet(grace=60))
    ready = project / "ready"
    d.call("task.submit", command=[*script(project, "stubborn.py", STUBBORN), str(ready)])
    wait_for(ready.exists, 10, "the stubborn task running")
    began = time.monotonic()
    d.signal(signal.SIGTERM)
    wait_for(lambda: "stop requested" in d.stderr(), 10, "the first SIGTERM taken")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 2, d.stderr()  # it took SIGKILL: not clean
    assert time.monotonic() - began < 15  # not the 60 s grace (twice)


def test_sighup_reloads_and_stderr_follows_the_format(
    start_init: InitFactory, project: Path
) -> None:
    d = start_init(quiet())
    text = d.stderr()
    assert "INFO    aiwgd.daemon: ready" in text  # the default: text
    config = d.paths.config_file
    cfg = json.loads(config.read_text())
    cfg["daemon"]["max_parallel_actions"] = 7
    cfg["daemon"]["log"] = {"format": "json"}
    config.write_text(json.dumps(cfg))
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.call("daemon.status")["config"]["at"], 10, "the reload")
    assert d.call("daemon.status")["subsystems"]["supervisor"]["cap"] == 7
    mark = len(d.stderr())
    d.call("daemon.reload")  # one more line to see, logged in the new format
    wait_for(lambda: "config reloaded" in d.stderr()[mark:], 10, "a line after the reload")
    after = [json.loads(line) for line in d.stderr()[mark:].splitlines() if line]
    assert "config reloaded" in [rec["msg"] for rec in after]
    assert d.stop() == 0


def test_json_stderr_from_the_first_line(start_init: InitFactory) -> None:
    d = start_init({"daemon": {"log": {"format": "json"}}})
    assert d.stop() == 0
    lines = [json.loads(line) for line in d.stderr().splitlines()]
    msgs = [rec["msg"] for rec in lines]
    assert msgs[0] == "starting" and "ready" in msgs and msgs[-1] == "stopped"
    assert lines[-1]["clean"] is True
    assert all({"time", "level", "logger", "msg"} <= set(rec) for rec in lines)


def test_a_bad_config_is_refused_with_exit_1(start_init: InitFactory, project: Path) -> None:
    d = InitDaemon(project)
    (project / ".aiwg").mkdir(exist_ok=True)
    d.paths.config_file.write_text(json.dumps({"daemon": {"log": {"format": "xml"}}}))
    d.start(wait=False)
    assert d.wait_exit(20) == 1
    assert 'daemon.log.format: "xml" is not allowed' in d.stderr()
    assert "Traceback" not in d.stderr()


def handles(pid: int, sig: int) -> bool:
    """Has `pid` a handler for `sig` (SigCgt in /proc/PID/status)?"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_sigterm_before_the_loop_runs_is_honoured(project: Path, pid_namespaces: None) -> None:
    # PID 1 has no default signal actions: a SIGTERM with no handler is dropped by the
    # kernel and the daemon would start and run on. main()'s first line installs one;
    # the signal is sent the moment it is there, long before the loop.
    write_config(project, BASE_CONFIG)
    d = InitDaemon(project)
    d.start(wait=False)
    pid = d.init_pid
    wait_for(lambda: handles(pid, signal.SIGTERM), 10, "main() to handle SIGTERM", 0.001)
    d.signal(signal.SIGSTOP)  # frozen: what is loaded now is what it has when TERM comes
    # asyncio not imported yet (its C module is mapped on import), so no loop could
    # have a handler: only main()'s recorder can take this SIGTERM.
    assert "_asyncio" not in Path(f"/proc/{pid}/maps").read_text()
    d.signal(signal.SIGTERM)
    d.signal(signal.SIGCONT)
    assert d.wait_exit(20) == 0, d.stderr()
    assert "ready" not in d.stderr()  # it never got that far
    assert not d.paths.socket.exists() and not d.paths.pid_file.exists()
