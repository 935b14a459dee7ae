"""`aiwg worker` runs one attempt per RQ job and reports it through Redis: output and
exit code in the `out` stream, where it runs in `run`, a heartbeat while it runs; and
refuses what its own checkout and config do not allow. No daemon: the tests enqueue
the job with RQ as the daemon would (tests/remote/workerjobs.py)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from rq import Queue
from rq.job import Job

from aiwgd.procs.marks import alive
from aiwgd.remote import keys
from tests.remote.workerjobs import rig, script
from tests.utils import wait_for


def test_output_and_exit_code_reach_the_stream(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path)
    argv = script(
        root,
        "prog.py",
        "print('hello from', os.environ['AIWG_EXECUTION'], os.environ['AIWG_QUEUE'], flush=True)\n"
        "print('root', os.environ['AIWG_ROOT'], 'cwd', os.getcwd(), flush=True)\n"
        "sys.exit(3)\n",
    )
    ex = jobs.enqueue(argv)
    end = jobs.wait_end(ex)
    assert end == {"k": "end", "code": "3", "signal": "", "reason": ""}
    out = jobs.output(ex).decode()
    assert f"hello from {ex} {jobs.queue}" in out
    assert f"root {root} cwd {root}" in out
    kinds = [e["k"] for e in jobs.entries(ex)]
    assert kinds[0] == "start" and kinds[-1] == "end"
    start = jobs.start(ex)
    assert start is not None and start["worker"] == w.name
    assert start["host"] == socket.gethostname() and start["pid"] == start["pgid"]
    run = {k.decode(): v.decode() for k, v in jobs.client.hgetall(jobs.key("run", ex)).items()}
    assert run["pid"] == start["pid"] and run["worker"] == w.name
    assert jobs.heartbeat(ex) is None  # gone with the end

    # The horse returns once its end is written: RQ records the job's result.
    def finished() -> Job | None:
        job = Job.fetch(ex, connection=jobs.client, serializer=keys.SERIALIZER)
        return job if job.is_finished else None

    job = wait_for(finished, 10)
    assert job.return_value() == {"code": 3, "signal": None, "reason": ""}
    assert w.stop() == 0


def test_heartbeat_while_it_runs(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    go = root / "go"
    argv = script(
        root,
        "wait.py",
        f"print('up', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)\n",
    )
    ex = jobs.enqueue(argv, heartbeat_ttl_s=0.6)
    jobs.wait_output(ex, b"up")
    beat = wait_for(lambda: jobs.heartbeat(ex), 5, "a heartbeat")
    horse = int(beat["horse"])
    assert alive(horse) and beat["host"] == socket.gethostname()
    # Kept alive past several TTLs: each tick renews it.
    first_ttl = jobs.client.pttl(jobs.key("hb", ex))
    assert 0 < first_ttl <= 600
    renewed: list[int] = []

    def renewed_after_expiry_would_have_hit() -> bool:
        renewed.append(jobs.client.pttl(jobs.key("hb", ex)))
        return len(renewed) > 1 and renewed[-1] > renewed[-2]

    wait_for(renewed_after_expiry_would_have_hit, 5, "the heartbeat to be renewed")
    go.touch()
    assert jobs.wait_end(ex)["code"] == "0"
    assert jobs.heartbeat(ex) is None


def test_stop_requested_before_the_start_never_spawns(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    ran = root / "ran"
    argv = script(root, "mark.py", f"open({str(ran)!r}, 'w').close()\n")
    ex = jobs.execution()
    jobs.client.rpush(jobs.key("ctl", ex), "cancelled")
    jobs.enqueue(argv, execution=ex)
    end = jobs.wait_end(ex)
    assert end["reason"] == "cancelled" and end["code"] == "" and end["signal"] == ""
    assert jobs.start(ex) is None
    assert b"not started" in jobs.output(ex)
    assert not ran.exists()


def test_refused_when_the_cwd_is_not_checked_out(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    ex = jobs.enqueue(script(root, "p.py", "print('ran')\n"), cwd="sub/missing")
    end = jobs.wait_end(ex)
    assert end["reason"] == "refused" and end["code"] == ""
    out = jobs.output(ex).decode()
    assert f"the project is not checked out at --root {root}" in out
    assert "sub/missing" in out and "ran" not in out


def test_refused_when_the_workers_config_does_not_allow_the_program(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path, {"agent": {"allowed_commands": ["true"]}})
    ran = root / "ran"
    ex = jobs.enqueue(script(root, "p.py", f"open({str(ran)!r}, 'w').close()\n"))
    end = jobs.wait_end(ex)
    assert end["reason"] == "refused"
    assert "is not allowed (agent.allowed_commands: true)" in jobs.output(ex).decode()
    assert not ran.exists()
    # The same worker runs what its config allows.
    ok = jobs.enqueue(["true"])
    assert jobs.wait_end(ok) == {"k": "end", "code": "0", "signal": "", "reason": ""}


def test_unknown_payload_version_refused(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    _root, _w, jobs = rig(redis, start_worker, tmp_path)
    ex = jobs.enqueue(["true"], v=99)
    assert jobs.wait_end(ex)["reason"] == "refused"
    assert "payload version 99" in jobs.output(ex).decode()


def test_the_childs_environment_has_no_worker_secret(
    redis_with_password: Any, start_worker: Any, tmp_path: Path
) -> None:
    server = redis_with_password
    env = {"W_REDIS_PW": server.password}
    root, _w, jobs = rig(server, start_worker, tmp_path, env=env, password_env="W_REDIS_PW")
    argv = script(root, "env.py", "import json\nprint(json.dumps(sorted(os.environ)))\n")
    ex = jobs.enqueue(argv)
    assert jobs.wait_end(ex)["code"] == "0"
    names = json.loads(jobs.output(ex))
    assert "W_REDIS_PW" not in names and "AIWG_EXECUTION" in names


def test_only_the_attempt_function_runs(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    """RQ would call any function a job names: an aiwg worker fails such a job."""
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    other = root / "made-by-another-function"
    q = Queue(jobs.queue, connection=jobs.client, serializer=keys.SERIALIZER)
    job = q.enqueue("os.makedirs", str(other), job_id="other-1")
    wait_for(lambda: job.get_status(refresh=True) == "failed", 10, "the job to fail")
    assert not other.exists()
    result = job.latest_result()
    assert result is not None and "run_attempt(payload) only" in str(result.exc_string)


class _RunsOnLoad:
    """Pickled, it makes a directory when loaded: what RQ's default serializer would do
    for whoever may write to the queue."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.makedirs, (str(self.path),))


def test_a_pickled_job_runs_no_code_in_the_worker(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    """Jobs are JSON on both sides (keys.SERIALIZER): a pickle is never loaded."""
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    other = root / "made-by-a-pickle"
    q = Queue(jobs.queue, connection=jobs.client)  # RQ's default: pickle
    job = q.enqueue(keys.JOB_FUNC, _RunsOnLoad(other), job_id="pickled-1")
    wait_for(lambda: job.get_status(refresh=True) == "failed", 10, "the job to fail")
    assert not other.exists()
    # ...while the worker goes on taking jobs.
    ex = jobs.enqueue([sys.executable, "-c", "print('after')"])
    assert jobs.wait_end(ex)["code"] == "0"
    ex = jobs.enqueue(["true"])
    assert jobs.wait_end(ex)["code"] == "0"
