"""How a remote attempt is stopped, and what survives what: a stop request through `ctl`
(the stop ladder on the child's whole group), the worker's own stops (warm, cold, kill
-9 and the next start's sweep), and Redis restarting under a running attempt. Real
`aiwg worker` processes and a real redis-server; no daemon (workerjobs.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rq import Queue, Worker
from rq.utils import utcparse

from aiwgd.procs.marks import alive
from tests.remote.workerjobs import Jobs, new_queue, pids_in, project, rig, script
from tests.utils import wait_for

# A leader and a child in its group, both ignoring SIGTERM; their pids in a file.
STUBBORN = """
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = os.fork()
if kid == 0:
    while True:
        time.sleep(0.05)
open(sys.argv[1], 'w').write(f"{os.getpid()} {kid}")
print('up', flush=True)
while True:
    time.sleep(0.05)
"""

# Prints, then waits for a file before it ends (on TERM: says so, exits 143).
WAITER = """
signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(143)))
open(sys.argv[1], 'w').write(str(os.getpid()))
print('up', flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
print('second part', flush=True)
"""


def test_cancel_stops_the_whole_group_with_kill_after_the_grace(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    pids_file = root / "pids"
    ex = jobs.enqueue([*script(root, "stubborn.py", STUBBORN), str(pids_file)], grace_s=0.5)
    jobs.wait_output(ex, b"up")
    leader, kid = pids_in(pids_file)
    asked = time.monotonic()
    jobs.client.rpush(jobs.key("ctl", ex), "cancelled")
    end = jobs.wait_end(ex, timeout=10)
    took = time.monotonic() - asked
    assert end == {"k": "end", "code": "", "signal": str(signal.SIGKILL), "reason": "cancelled"}
    assert not alive(leader) and not alive(kid)
    assert 0.5 <= took < 5, took  # the grace was waited, then SIGKILL


def test_cancel_of_a_program_that_obeys_term(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    root, _w, jobs = rig(redis, start_worker, tmp_path)
    argv = [*script(root, "waiter.py", WAITER), str(root / "pid"), str(root / "never")]
    ex = jobs.enqueue(argv, grace_s=5)
    jobs.wait_output(ex, b"up")
    jobs.client.rpush(jobs.key("ctl", ex), "timeout")
    end = jobs.wait_end(ex, timeout=4)  # well before the 5 s grace
    assert end == {"k": "end", "code": "143", "signal": "", "reason": "timeout"}
    assert b"got TERM" in jobs.output(ex)


def test_kill9_of_the_worker_leaves_the_child_to_the_next_start(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path)
    pids_file = root / "pids"
    ex = jobs.enqueue([*script(root, "stubborn.py", STUBBORN), str(pids_file)])
    jobs.wait_output(ex, b"up")
    leader, kid = pids_in(pids_file)
    horse = int(wait_for(lambda: jobs.heartbeat(ex), 5, "a heartbeat")["horse"])
    w.kill9()
    wait_for(lambda: not alive(horse), 5, "the horse to die with its worker")
    assert alive(leader) and alive(kid)  # its own session: left behind, cut off
    assert jobs.end(ex) is None
    start_worker(url=redis.url, queue=jobs.queue, root=root, name=w.name)  # same name: freed
    wait_for(lambda: not alive(leader) and not alive(kid), 10, "the next start to stop it")
    end = jobs.wait_end(ex, timeout=5)
    assert end["reason"] == "lost" and end["signal"] == str(signal.SIGKILL)
    assert b"its worker died" in jobs.output(ex)


def test_an_attempt_survives_a_redis_restart(redis: Any, start_worker: Any, tmp_path: Path) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path)
    pid_file, go = root / "pid", root / "go"
    ex = jobs.enqueue([*script(root, "waiter.py", WAITER), str(pid_file), str(go)])
    jobs.wait_output(ex, b"up")
    (child,) = pids_in(pid_file)
    redis.stop()
    go.touch()  # the second part is printed while Redis is away
    wait_for(lambda: not alive(child), 10, "the program to end while Redis is away")
    assert w.proc.poll() is None
    redis.start()
    jobs = Jobs(redis, jobs.queue)  # a fresh client after the restart
    end = jobs.wait_end(ex, timeout=15)
    assert end == {"k": "end", "code": "0", "signal": "", "reason": ""}
    assert jobs.output(ex) == b"up\nsecond part\n"
    assert w.proc.poll() is None  # and it takes the next job
    nxt = jobs.enqueue(["true"])
    assert jobs.wait_end(nxt)["code"] == "0"


def test_cold_stop_takes_the_child_down_the_ladder(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path)
    argv = [*script(root, "waiter.py", WAITER), str(root / "pid"), str(root / "never")]
    ex = jobs.enqueue(argv)
    jobs.wait_output(ex, b"up")
    (child,) = pids_in(root / "pid")
    os.kill(w.pid, signal.SIGTERM)  # warm: it would wait for the attempt
    raw = wait_for(
        lambda: jobs.client.hget(f"rq:worker:{w.name}", "shutdown_requested_date"), 5, "warm"
    )
    asked = utcparse(raw.decode()).timestamp()
    # RQ drops a second signal within 1 s of the first as a duplicate (a pool's own).
    wait_for(lambda: time.time() > asked + 1.05, 5, "RQ's duplicate-signal second to pass")
    os.kill(w.pid, signal.SIGTERM)  # cold
    end = jobs.wait_end(ex, timeout=10)
    assert end == {"k": "end", "code": "143", "signal": "", "reason": "shutdown"}
    assert b"got TERM" in jobs.output(ex) and not alive(child)
    assert w.proc.wait(10) is not None


def test_warm_stop_lets_the_running_attempt_finish(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path)
    go = root / "go"
    argv = [*script(root, "waiter.py", WAITER), str(root / "pid"), str(go)]
    ex = jobs.enqueue(argv)
    jobs.wait_output(ex, b"up")
    (child,) = pids_in(root / "pid")
    os.kill(w.pid, signal.SIGTERM)  # warm: the attempt runs on to its own end
    wait_for(lambda: jobs.client.hget(f"rq:worker:{w.name}", "shutdown_requested_date"), 5)
    assert alive(child) and w.proc.poll() is None and jobs.end(ex) is None
    later = jobs.enqueue([sys.executable, "-c", "print('later')"])  # for the next worker
    go.touch()
    assert jobs.wait_end(ex, timeout=10) == {"k": "end", "code": "0", "signal": "", "reason": ""}
    assert w.proc.wait(10) == 0
    assert jobs.start(later) is None and jobs.end(later) is None  # not taken on the way out


def test_a_dead_workers_record_goes_within_minutes_not_rqs_eight(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    """RQ keeps a worker's record (what `aiwg worker list` shows) for its worker_ttl + 60 s
    after the last heartbeat: ours is 45 + 60, not RQ's default 420 + 60."""
    _root, w, jobs = rig(redis, start_worker, tmp_path)
    ttl = jobs.client.ttl(f"rq:worker:{w.name}")
    assert 0 < ttl <= 105, ttl


def test_max_parallel_runs_n_registered_workers(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root, w, jobs = rig(redis, start_worker, tmp_path, max_parallel=2)
    wait_for(lambda: len(w.rq_names(jobs.client)) == 2, 10, "two workers in RQ")
    assert sorted(w.rq_names(jobs.client)) == [f"{w.name}-1", f"{w.name}-2"]
    go = root / "go"
    argv = [*script(root, "waiter.py", WAITER), str(root / "pid"), str(go)]
    first, second = jobs.enqueue(argv), jobs.enqueue(argv)
    jobs.wait_output(first, b"up")
    jobs.wait_output(second, b"up")  # both at once
    go.touch()
    assert jobs.wait_end(first)["code"] == jobs.wait_end(second)["code"] == "0"
    busy = {x.name for x in Worker.all(queue=Queue(jobs.queue, connection=jobs.client))}
    assert busy == {f"{w.name}-1", f"{w.name}-2"}
    assert w.stop() == 0  # the pool's warm stop: both members go, then the pool
    assert w.rq_names(jobs.client) == []


def test_an_idle_worker_survives_a_redis_restart(
    redis: Any, start_worker: Any, tmp_path: Path
) -> None:
    root = project(tmp_path)
    queue = new_queue()
    w = start_worker(url=redis.url, queue=queue, root=root)
    redis.restart()
    jobs = Jobs(redis, queue)
    ex = jobs.enqueue(["true"])
    try:
        end = jobs.wait_end(ex, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker said:\n{w.stderr()[-4000:]}") from None
    assert end["code"] == "0"
    assert w.proc.poll() is None
    assert w.stop() == 0  # a warm stop of an idle worker
