"""After a kill -9 of the daemon, `aiwg status` lists the processes its services left
(by the AIWG_SERVICE mark of this root, and by services.json's recorded pid + create
time for one that dropped its environment) and `aiwg stop` stops them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import DaemonFactory
from tests.services.svchelp import marked, script, service, wait_state
from tests.utils import alive, run_cli, wait_for

# A service that starts a sleeper in a session of its own, records its pid, then sleeps.
ESCAPER = """
import os, subprocess, sys, time
kid = subprocess.Popen([sys.argv[2], "300"], start_new_session=True)
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(kid.pid))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Processes a test expects to be stopped: SIGKILLed at teardown if still there."""
    found: list[int] = []
    yield found
    for pid in found:
        if alive(pid):
            psutil.Process(pid).kill()


def recorded(project: Path) -> dict[str, int]:
    """Instance -> pid of the live processes services.json records."""
    try:
        data = json.loads((project / ".aiwg" / "daemon" / "services.json").read_text())
    except (OSError, ValueError):
        return {}
    return {p["instance"]: p["pid"] for p in data.get("processes", [])}


def test_kill9_then_status_lists_and_stop_stops_service_processes(
    start_daemon: DaemonFactory, project: Path, pids: list[int]
) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    kidfile = project / "kid.pid"
    web = service(script(project, "escaper", ESCAPER), str(kidfile), sleep)
    # `env -i` runs sleep with an empty environment: no mark, found by services.json only.
    bare = {"command": ["env", "-i", sleep, "300"], "stop_grace_s": 1}
    config = {"daemon": {"stop_grace_seconds": 1}, "services": {"web": web, "bare": bare}}
    d = start_daemon(config=config)
    web_pid = wait_state(d, "web", "ready")["pid"]
    bare_pid = wait_state(d, "bare", "ready")["pid"]
    wait_for(kidfile.exists, 10, "web's sleeper")
    kid = int(kidfile.read_text())
    pids += [web_pid, bare_pid, kid]
    wait_for(lambda: recorded(project) == {"web": web_pid, "bare": bare_pid}, 10, "recorded")
    d.kill9()
    assert all(alive(p) for p in pids)  # what a kill -9 leaves

    out = run_cli(project, "status")
    assert out.returncode == 3, out
    lines = out.stdout.splitlines()
    assert lines[0].startswith("aiwgd is not running"), lines
    assert lines[1].startswith("3 processes left by it still run"), lines
    owners = {web_pid: "service web", kid: "service web", bare_pid: "service bare"}
    for pid, owner in owners.items():
        assert any(ln.startswith(f"  pid {pid} (") and ln.endswith(owner) for ln in lines), lines
    left = json.loads(run_cli(project, "--json", "status").stdout)["left"]
    assert {p["pid"]: p["service"] for p in left} == {web_pid: "web", kid: "web", bare_pid: "bare"}

    out = run_cli(project, "stop")
    assert out.returncode == 0, out
    first, second = out.stdout.splitlines()
    assert first.startswith("aiwgd is not running"), out
    assert second.startswith("stopped 3 service processes it left: "), out
    for pid in pids:
        assert f"pid {pid} " in second, (pid, second)
    assert [p for p in pids if alive(p)] == []  # the stop returns once they are gone
    assert marked(project) == []
    again = run_cli(project, "--json", "status")
    assert json.loads(again.stdout)["left"] == []
