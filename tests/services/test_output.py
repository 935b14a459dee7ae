"""Instances ({instance} in argv and env) and their logs; rotation under a flood."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, script, service, wait_state
from tests.utils import wait_for


def test_instances_replace_instance_in_argv_and_env(
    start_daemon: DaemonFactory, project: Path
) -> None:
    body = SLEEPER.replace('print("up"', 'import os\nprint("up", os.environ["PORT"]')
    path = script(project, "inst", body)
    cfg = service(path, "--port=80{instance}", instances=2, env={"PORT": "90{instance}"})
    d = start_daemon(config={"services": {"web": cfg}})
    for i in (0, 1):
        wait_state(d, f"web:{i}", "ready")
    names = [s["name"] for s in d.call("service.list")["services"]]
    assert names == ["web:0", "web:1"]
    for i in (0, 1):
        line = wait_for(lambda i=i: d.call("service.logs", name=f"web:{i}")["lines"][-1:], 5)[0]
        assert f"up 90{i}" in line and f"'--port=80{i}'" in line
        assert f"--port=80{i}" in (project / f".aiwg/daemon/services/web-{i}.log").read_text()
    both = d.call("service.logs", name="web")["lines"]
    assert {line.split("]")[0] for line in both} == {"[web:0", "[web:1"}
    d.call("service.stop", name="web:1")
    assert wait_state(d, "web:1", "stopped")
    assert wait_state(d, "web:0", "ready")


def test_flood_rotates_on_line_boundaries_and_daemon_answers(
    start_daemon: DaemonFactory, project: Path
) -> None:
    body = """
    import sys, time
    for i in range(40000):
        sys.stdout.write(f"line {i:06d} " + "x" * 40 + "\\n")
    sys.stdout.write("done\\n")
    sys.stdout.flush()
    while True:
        time.sleep(1)
    """
    path = script(project, "flood", body)
    log_cfg = {"max_size_mb": 0.1, "max_files": 3}
    d = start_daemon(config={"services": {"f": service(path, log=log_cfg)}})
    began = time.monotonic()
    while "done" not in d.call("service.logs", name="f", lines=5)["lines"]:
        assert time.monotonic() - began < 20, "the flood never ended"
    logs = project / ".aiwg/daemon/services"
    files = [logs / "f.log.3", logs / "f.log.2", logs / "f.log.1", logs / "f.log"]
    assert all(f.exists() for f in files) and not (logs / "f.log.4").exists()
    numbers = []
    for f in files:
        assert f.stat().st_size <= 0.1 * 1024 * 1024
        for line in f.read_text().splitlines():
            m = re.fullmatch(r"line (\d{6}) x{40}", line)
            if m:
                numbers.append(int(m.group(1)))
            else:  # only our own notes and the last line
                assert line.startswith("[aiwgd ") or line == "done", line
    # The newest lines are all kept, in order, none lost between the files.
    assert numbers[-1] == 39999
    assert numbers == list(range(numbers[0], 40000))
    assert d.call("service.logs", name="f", lines=2)["lines"] == ["line 039999 " + "x" * 40, "done"]
