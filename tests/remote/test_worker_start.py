"""`aiwg worker` start-up: refused with one line and exit 2 when it cannot work (Redis
unreachable, wrong password, no root, a name in use), and what it finds of a dead
worker; plus processes that escape an attempt's group are still stopped with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from aiwgd.procs.marks import alive
from tests.remote.workerjobs import new_queue, pids_in, project, rig, script
from tests.utils import env_for_tests, run_cli, wait_for


def _refused(*args: str, env: dict[str, str] | None = None) -> str:
    r = run_cli(None, "worker", *args, timeout=20, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_refuses_to_start_when_redis_is_unreachable(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    line = _refused("--url", f"unix://{sock}", "--root", str(tmp_path))
    assert line.startswith(f"aiwg worker: cannot reach Redis at unix://{sock}")
    assert "No such file or directory" in line


def test_refuses_a_bad_url_and_a_missing_root(tmp_path: Path) -> None:
    line = _refused("--url", "http://example.invalid", "--root", str(tmp_path))
    assert "has scheme 'http'; use redis://, rediss:// or unix://" in line
    line = _refused("--url", "unix:///tmp/x.sock", "--root", str(tmp_path / "nope"))
    assert line == f"aiwg worker: --root {tmp_path / 'nope'}: no such directory"
    line = _refused("--root", str(tmp_path))
    assert "--url is required" in line


def test_refuses_a_wrong_or_missing_password(redis_with_password: Any, tmp_path: Path) -> None:
    url = redis_with_password.url
    env = {**env_for_tests(), "PW": "wrong"}
    line = _refused("--url", url, "--root", str(tmp_path), "--password-env", "PW", env=env)
    assert line == f"aiwg worker: Redis at {url} refused the password from $PW"
    line = _refused("--url", url, "--root", str(tmp_path))
    assert "wants a password: pass --password-env VAR" in line
    line = _refused("--url", url, "--root", str(tmp_path), "--password-env", "UNSET_PW_X")
    assert line == "aiwg worker: --password-env UNSET_PW_X: the variable is not set"


def test_refuses_a_name_a_live_worker_holds(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    root = project(tmp_path)
    queue = new_queue()
    w = start_worker(url=redis.url, queue=queue, root=root)
    line = _refused("--url", redis.url, "--queue", queue, "--root", str(root), "--name", w.name)
    assert line.startswith(
        f"aiwg worker: a worker named {w.name} is already running (pid {w.pid} on "
    )
    assert w.proc.poll() is None


ESCAPES = """
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(sys.argv[1], 'w').write(str(os.getpid()))
        while True:
            time.sleep(0.05)
    os._exit(0)
print('up', flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_process_that_escaped_the_group_is_stopped_with_the_attempt(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    pid_file = root / "escaped"
    ex = jobs.enqueue([*script(root, "escape.py", ESCAPES), str(pid_file)])
    jobs.wait_output(ex, b"up")
    (escaped,) = pids_in(pid_file)
    assert alive(escaped)
    jobs.client.rpush(jobs.key("ctl", ex), "cancelled")
    end = jobs.wait_end(ex)
    assert end["reason"] == "cancelled" and end["signal"] == str(signal.SIGTERM)
    assert not alive(escaped)
    assert b"escaped the process group and were stopped" in jobs.output(ex)


def test_a_pool_member_killed_is_replaced_and_its_child_stopped(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path, max_parallel=2)
    wait_for(lambda: len(w.rq_names(jobs.client)) == 2, 10, "two workers in RQ")
    pid_file = root / "pid"
    body = "open(sys.argv[1], 'w').write(str(os.getpid()))\nprint('up', flush=True)\n"
    argv = [*script(root, "p.py", body + "while True: time.sleep(0.05)\n"), str(pid_file)]
    ex = jobs.enqueue(argv)
    jobs.wait_output(ex, b"up")
    (child,) = pids_in(pid_file)
    start = jobs.start(ex)
    assert start is not None
    member = int(jobs.client.hget(f"rq:worker:{start['worker']}", "pid"))
    os.kill(member, signal.SIGKILL)
    wait_for(lambda: not alive(child), 15, "the replacement member to stop the child")
    assert jobs.wait_end(ex)["reason"] == "lost"
    wait_for(
        lambda: (
            int(jobs.client.hget(f"rq:worker:{start['worker']}", "pid") or 0) not in (0, member)
        ),
        15,
        "the member to be replaced under its name",
    )
    assert w.proc.poll() is None
