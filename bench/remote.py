"""Remote executor benchmark (issue 13): tasks through RQ + `aiwg worker` against the
local executor and against RQ's own bare enqueue -> work horse path, all in one run.

    .venv/bin/python bench/remote.py [--quick] [--n N]

Everything runs on this machine: its own redis-server (Unix socket in a temp dir, no
persistence), its own daemon (`executors: {farm: {type: rq, max_parallel: 16}}`,
`daemon.max_parallel_actions` 16) and real `aiwg worker` processes (`--max-parallel 1`
each; ready = registered in RQ). Skipped with one line when redis-server is missing.

1. Dispatch overhead: submit (client wall time right before `task.submit`) -> child
   started (local: the task's `started_at`; remote: `started` in the execution's `run`
   hash, written by the work horse once its child runs), for `/bin/true` tasks:
   - idle: one task at a time, each waited for (30; --quick 15): the bare overhead;
   - burst: N = 1,000 (--quick 200) submitted at once (batches of 50): per-task p50/p90
     (queueing included), total wall until all N ended, daemon CPU per task (its own
     user + system time, all threads, over the burst);
   local executor vs one worker vs two workers.
   Proposed target (the issue sets no figure): idle remote p50 within 3x RQ's floor.
2. Output latency: a child writing a line holding its own wall time every 50 ms for 2 s;
   time from that write to the `task.output` notification reaching a `task.logs
   {follow: true}` subscriber, p50/p99, local vs remote (2 tasks each; --quick 1).
   Proposed target: remote p99 under 250 ms (a follower sees output "live").
3. Worker idle: RSS (worker process + children) and CPU over 10 s (--quick 3 s) of one
   idle `aiwg worker`, next to one idle plain `rq worker`. Proposed target: < 1% of a core.
4. Baseline: RQ's bare `Queue.enqueue` of a no-op job (bench._remote.noop) run by plain
   `rq worker`s (rq.Worker: a forked horse per job; JSON serializer, as ours; started and
   registered before the enqueue, like the aiwg workers) over the same Redis: enqueue ->
   start (job.started_at, set by the horse right before it calls the job, minus
   job.enqueued_at), idle and burst, one and two workers. The remote figures are printed
   as ratios of it (ours / RQ's: 1x is the queue's floor; ours also includes the horse's
   set-up and the child's spawn).

No asserts on timing: figures and targets are printed; the script exits 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client  # noqa: E402
from aiwgd.remote import keys  # noqa: E402
from bench._common import pct  # noqa: E402
from bench._remote import Redis, Workers, idle_usage, until  # noqa: E402
from bench.tasks import TRUE, Daemon, _config, _cpu_s  # noqa: E402

QUEUE, BARE_QUEUE = "aiwg-bench", "rq-bench"
CAP = 16
BATCH = 50
TERMINAL = ("completed", "failed", "timed_out", "cancelled")

TICKER = """\
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
for _ in range(40):
    print(f"{time.time():.6f}", flush=True)
    time.sleep(0.05)
"""


@dataclass
class Dispatch:
    idle: list[float]  # seconds, submit -> started, one task at a time
    burst: list[float]  # the same for the burst (queueing included)
    wall_s: float = 0.0  # the burst: first submit -> last task ended
    cpu_ms: float = 0.0  # daemon CPU per task over the burst

    def line(self, label: str) -> str:
        return (
            f"   {label:<18} idle p50 {ms(self.idle, 50):7.1f} ms  p90 {ms(self.idle, 90):7.1f}"
            f" | burst p50 {ms(self.burst, 50):8.1f} ms  p90 {ms(self.burst, 90):8.1f}"
            f"  total {self.wall_s:6.2f} s ({len(self.burst) / self.wall_s:6.1f}/s)"
            + (f"  daemon CPU {self.cpu_ms:5.2f} ms/task" if self.cpu_ms else "")
        )


def ms(values: list[float], p: float) -> float:
    return pct(values, p) * 1000


def config(url: str) -> dict[str, Any]:
    farm = {"type": "rq", "url": url, "queue": QUEUE, "max_parallel": CAP}
    return {**_config(CAP), "executors": {"farm": farm}}


# ---- 1. dispatch through the daemon ------------------------------------------------------


class Bench:
    def __init__(self, redis: Redis, daemon: Daemon) -> None:
        self.redis = redis
        self.conn = redis.client()
        self.d = daemon
        self.c = Client(daemon.root, timeout=600)

    def started(self, tasks: list[dict[str, Any]], remote: bool) -> list[float]:
        """Wall time each task's child started (see the module docstring)."""
        if not remote:
            got = self.c.batch([("task.get", {"id": t["id"]}) for t in tasks])
            return [float(t["started_at"]) for t in got]
        pipe = self.conn.pipeline(transaction=False)
        for t in tasks:
            pipe.hget(keys.key(QUEUE, "run", keys.execution_id(t["id"], 1)), "started")
        return [float(v) for v in pipe.execute()]

    def dispatch(self, remote: bool, n: int, idle_n: int) -> Dispatch:
        spec: dict[str, Any] = {"command": [TRUE], **({"executor": "farm"} if remote else {})}
        idle: list[tuple[float, dict[str, Any]]] = []
        for _ in range(idle_n):
            t0 = time.time()
            task = self.c.call("task.submit", **spec)
            self.c.call("task.wait", id=task["id"], timeout_s=60)
            idle.append((t0, task))
        out = Dispatch(diffs(idle, self.started([t for _, t in idle], remote)), [])
        base = self.finished()
        proc = self.d.process()
        cpu0, m0 = _cpu_s(proc), time.monotonic()
        burst: list[tuple[float, dict[str, Any]]] = []
        for start in range(0, n, BATCH):
            t0 = time.time()
            for r in self.c.batch([("task.submit", spec)] * min(BATCH, n - start)):
                if isinstance(r, Exception):
                    raise r
                burst.append((t0, r))
        self.c.call("task.wait", id=burst[-1][1]["id"], timeout_s=600)
        until(lambda: self.finished() - base >= n, 600, "the burst to end", every=0.002)
        out.wall_s = time.monotonic() - m0
        out.cpu_ms = (_cpu_s(proc) - cpu0) / n * 1000
        out.burst = diffs(burst, self.started([t for _, t in burst], remote))
        counts = self.c.call("task.stats")["counts"]
        if counts.get("completed", 0) != sum(counts.get(s, 0) for s in TERMINAL):
            raise SystemExit(f"not every task completed: {counts}")
        return out

    def finished(self) -> int:
        counts = self.c.call("task.stats")["counts"]
        return sum(counts.get(s, 0) for s in TERMINAL)

    # ---- 2. output latency ---------------------------------------------------------------

    def output_latency(self, remote: bool, runs: int) -> list[float]:
        script = self.d.root / "ticker.py"
        script.write_text(TICKER)
        lat: list[float] = []
        for i in range(runs):
            gate = self.d.root / f"gate-{int(remote)}-{i}"
            argv = [sys.executable, str(script), str(gate)]
            params = {"executor": "farm"} if remote else {}
            task = self.c.call("task.submit", command=argv, **params)
            lat += follow(self.d.root, task["id"], gate)
        return lat


def diffs(pairs: list[tuple[float, dict[str, Any]]], started: list[float]) -> list[float]:
    return [s - t0 for (t0, _), s in zip(pairs, started, strict=True)]


def follow(root: Path, task_id: str, gate: Path) -> list[float]:
    """Latencies of the ticker's lines as a `task.logs` follower receives them; the
    ticker waits on `gate` until the follower has seen its first line."""
    lat: list[float] = []
    pending = ""

    def on_note(note: dict[str, Any]) -> None:
        nonlocal pending
        now = time.time()
        pending += note["params"]["data"]
        *lines, pending = pending.split("\n")
        for line in lines:
            if line == "ready":
                gate.touch()
            elif line:
                lat.append(now - float(line))

    with Client(root, timeout=120) as c:
        c.stream("task.logs", on_note, id=task_id, follow=True)
    return lat


# ---- 4. RQ's own floor ---------------------------------------------------------------------


def rq_floor(redis: Redis, workers: int, n: int, idle_n: int) -> Dispatch:
    from rq import Queue
    from rq.job import Job

    conn = redis.client()
    q = Queue(BARE_QUEUE, connection=conn, serializer="json")
    w = Workers(redis.url, BARE_QUEUE)
    try:
        for i in range(workers):
            w.start_rq(f"rq-bare-{workers}-{i}")
        w.wait_registered(conn)

        def spans(jobs: list[Job]) -> list[float]:
            got = Job.fetch_many([j.id for j in jobs], connection=conn, serializer="json")
            pairs = [(j.started_at, j.enqueued_at) for j in got if j is not None]
            return [(s - e).total_seconds() for s, e in pairs if s is not None and e is not None]

        idle = []
        for _ in range(idle_n):
            job = q.enqueue("bench._remote.noop")
            until(lambda j=job: j.get_status() == "finished", 60, "a bare job", every=0.002)
            idle.append(job)
        base = q.finished_job_registry.count
        m0 = time.monotonic()
        burst = [q.enqueue("bench._remote.noop") for _ in range(n)]
        until(lambda: q.finished_job_registry.count - base >= n, 600, "the bare burst", every=0.002)
        return Dispatch(spans(idle), spans(burst), time.monotonic() - m0)
    finally:
        w.close()
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer tasks, shorter idle (smoke run)")
    ap.add_argument("--n", type=int, help="tasks in each burst (default 1000; quick 200)")
    args = ap.parse_args()
    n = args.n or (200 if args.quick else 1000)
    idle_n, runs, idle_s = (15, 1, 3.0) if args.quick else (30, 2, 10.0)
    program = shutil.which("redis-server")
    if program is None:
        print("remote: skipped: redis-server not installed (Debian: apt install redis-server)")
        return
    redis = Redis(program).wait_ready()
    daemon = Daemon(CAP)
    daemon.paths.config_file.write_text(json.dumps(config(redis.url)))
    workers = Workers(redis.url, QUEUE)
    try:
        run(redis, daemon.start(), workers, n, idle_n, runs, idle_s)
    finally:
        workers.close()
        daemon.stop()
        redis.close()


def run(
    redis: Redis, daemon: Daemon, workers: Workers, n: int, idle_n: int, runs: int, idle_s: float
) -> None:
    b = Bench(redis, daemon)
    print(f"1+4. dispatch of {TRUE}: submit -> child started; idle = {idle_n} one at a time,")
    print(f"     burst = {n} at once (batches of {BATCH}); cap {CAP}; one redis-server, this host")
    floor = {k: rq_floor(redis, k, n, idle_n) for k in (1, 2)}
    for k, f in floor.items():
        print(f.line(f"RQ bare, {k} worker{'s' if k > 1 else ''}"), flush=True)
    print(b.dispatch(False, n, idle_n).line("local executor"), flush=True)
    remote: dict[int, Dispatch] = {}
    for k in (1, 2):
        workers.close()
        for i in range(k):
            workers.start_aiwg(daemon.root, f"aiwg-{k}-{i}")
        workers.wait_registered(b.conn)
        remote[k] = r = b.dispatch(True, n, idle_n)
        print(r.line(f"aiwg worker x{k}"), flush=True)
    for k, r in remote.items():
        f = floor[k]
        print(
            f"   aiwg x{k} / RQ bare x{k}: idle p50 {ratio(r.idle, f.idle, 50)}"
            f"  burst p50 {ratio(r.burst, f.burst, 50)}  p90 {ratio(r.burst, f.burst, 90)}"
            f"  total {r.wall_s / f.wall_s:5.2f}x   (target idle p50 <= 3x)",
            flush=True,
        )
    print("2. output latency: child's write -> task.output at a task.logs follower")
    workers.close()
    workers.start_aiwg(daemon.root, "aiwg-out")
    workers.wait_registered(b.conn)
    for label, remote_out in (("local", False), ("remote", True)):
        lat = b.output_latency(remote_out, runs)
        print(
            f"   {label:<7} {len(lat):3} lines  p50 {ms(lat, 50):6.1f} ms"
            f"  p99 {ms(lat, 99):6.1f} ms" + ("  (target p99 < 250 ms)" if remote_out else ""),
            flush=True,
        )
    print(f"3. idle worker over {idle_s:g} s (process + children)")
    time.sleep(1.0)  # let the last job's horse go
    rss, cpu = idle_usage(workers, idle_s)
    workers.close()
    bare = Workers(redis.url, BARE_QUEUE)
    try:
        bare.start_rq("rq-idle")
        bare.wait_registered(b.conn)
        time.sleep(1.0)
        brss, bcpu = idle_usage(bare, idle_s)
    finally:
        bare.close()
    print(f"   aiwg worker: RSS {rss:6.1f} MiB  CPU {cpu:5.2f}% of a core  (target < 1%)")
    print(
        f"   rq worker:   RSS {brss:6.1f} MiB  CPU {bcpu:5.2f}% of a core"
        f"   (aiwg / rq: RSS {rss / brss:4.2f}x)"
    )


def ratio(ours: list[float], floor: list[float], p: float) -> str:
    return f"{pct(ours, p) / pct(floor, p):6.2f}x"


if __name__ == "__main__":
    main()
