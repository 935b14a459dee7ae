"""Event router and file watcher benchmark.

    .venv/bin/python bench/events.py [--quick]

1. In-process publish throughput with 10 subscribers: the publish rate (events/s into
   the router, time spent inside publish() only) and the end-to-end rate (every event
   handled by all 10 subscribers), with and without the event log (events.jsonl).
2. A burst of 10,000 file writes into a real daemon's watched directory, twice:
   20 appends to each of 500 files, and 10,000 new files. A rule on `file.*` starts a
   task per event it lets through. Reports the file events emitted, the tasks started
   (bounded by the rule's loop guard), the daemon's CPU seconds, and `ping` latency
   measured throughout.
3. Idle CPU of a daemon watching a 20,000-file tree (200 directories of 100 files)
   for 60 s (--quick: 10 s). Target: under 0.5% of one core.
(bench/automation.py measures file write -> rule -> task started latency.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client  # noqa: E402
from aiwgd.config.events import EventsSection  # noqa: E402
from aiwgd.config.paths import Paths  # noqa: E402
from aiwgd.events.router import Event, EventRouter  # noqa: E402
from bench._common import pct, wait  # noqa: E402

SUBSCRIBERS = 10
logging.getLogger("aiwgd").setLevel(logging.ERROR)  # the figures below say what matters


# ---- 1. in-process publish throughput -------------------------------------------------


async def _throughput(n: int, root: Path | None) -> tuple[float, float, str]:
    router = EventRouter()
    paths = None
    if root is not None:
        paths = Paths(root)
        paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    router.configure(paths, EventsSection(queue_size=n, log_max_mb=1000))
    await router.start()
    done = asyncio.Event()
    counts = [0] * SUBSCRIBERS

    def handler_for(i: int) -> Any:
        async def handler(event: Event) -> None:
            counts[i] += 1
            if counts[i] == n and all(c == n for c in counts):
                done.set()

        return handler

    patterns = [["*"], ["bench.*"], ["bench.tick"], ["bench.t*"], ["*.tick"]]
    for i in range(SUBSCRIBERS):
        router.subscribe(patterns[i % len(patterns)], handler_for(i), f"s{i}")
    t0 = time.perf_counter()
    busy = 0.0
    for start in range(0, n, 1000):
        # Publishers are coroutines that yield now and then; so does this one.
        t1 = time.perf_counter()
        for i in range(start, min(n, start + 1000)):
            router.publish("bench.tick", {"i": i}, "bench")
        busy += time.perf_counter() - t1
        await asyncio.sleep(0)
    published = busy
    await asyncio.wait_for(done.wait(), 300)
    total = time.perf_counter() - t0
    await router.stop()
    note = ""
    if router.log is not None:
        # Past the log's bounded backlog (the disk falling behind), lines are shed.
        note = f"; log wrote {router.log.written:,}, shed {router.log.shed:,}"
    return n / published, n / total, note


def bench_throughput(n: int) -> None:
    print(f"1. in-process publish, {SUBSCRIBERS} subscribers, {n:,} events")
    for label, with_log in (("no event log", False), ("with events.jsonl", True)):
        tmp = Path(tempfile.mkdtemp(prefix="aiwg-bench-")) if with_log else None
        try:
            pub, e2e, note = asyncio.run(_throughput(n, tmp))
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"   {label:<18} publish {pub:>10,.0f} events/s   end-to-end {e2e:>9,.0f} "
            f"events/s ({e2e * SUBSCRIBERS:,.0f} deliveries/s){note}"
        )


# ---- a real daemon --------------------------------------------------------------------


class Daemon:
    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        paths = Paths(root)
        paths.aiwg_dir.mkdir(parents=True, exist_ok=True)
        base = {"schedule": {"enabled": False, "jobs": []}}
        paths.config_file.write_text(json.dumps({**base, **config}))
        self.err = (root / "aiwgd.stderr").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiwgd", "--root", str(root)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.err,
        )
        self.ps = psutil.Process(self.proc.pid)
        wait(lambda: self.watcher()["state"] == "watching", 60, "the watcher to start", 0.05)

    def call(self, method: str, **params: Any) -> Any:
        with Client(self.root, timeout=30) as c:
            return c.call(method, **params)

    def watcher(self) -> dict[str, Any]:
        status: dict[str, Any] = self.call("daemon.status")["subsystems"]["watcher"]
        return status

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.err.close()


# ---- 2. a burst of 10,000 writes ------------------------------------------------------


class Pinger(threading.Thread):
    """Pings the daemon back to back on its own connection, recording latencies."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.client = Client(root, timeout=30).connect()
        self.latencies: list[float] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            t0 = time.perf_counter()
            self.client.call("ping")
            self.latencies.append(time.perf_counter() - t0)
            time.sleep(0.01)

    def finish(self) -> list[float]:
        self.running = False
        self.join(30)
        self.client.close()
        return self.latencies


def count_until(sub: Client, marker: str, timeout: float = 120) -> int:
    """File events received on `sub` up to and including the marker's."""
    n = 0
    deadline = time.monotonic() + timeout
    while True:
        msg = sub.read_message(timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("method") != "event":
            continue
        n += 1
        if msg["params"]["data"]["path"].endswith(marker):
            return n


def bench_burst(kind: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="aiwg-bench-"))
    burst = root / "burst"
    burst.mkdir()
    # A rule on every file event: the burst must start a bounded number of tasks (the
    # rule's loop guard, default max_per_minute 30), not one per write.
    rule = {
        "id": "on-burst",
        "trigger": {"type": "file.*"},
        "action": {"type": "task", "command": ["true"]},
    }
    d = Daemon(
        root, {"watch": {"debounce_ms": 200, "paths": [{"path": "burst/"}]}, "rules": [rule]}
    )
    try:
        sub = Client(root, timeout=30).connect()
        sub.call("events.subscribe", types=["file.*"])
        pinger = Pinger(root)
        cpu0 = d.cpu()
        pinger.start()
        t0 = time.perf_counter()
        for i in range(10_000):
            if kind == "append":  # 20 appends to each of 500 files in turn
                with (burst / f"f{i // 20:03d}.txt").open("a") as fh:
                    fh.write(f"{i}\n")
            else:
                (burst / f"n{i:05d}.txt").write_text(f"{i}\n")
        writes_s = time.perf_counter() - t0
        (burst / "zz-marker").write_text("end")
        events = count_until(sub, "zz-marker")
        settled_s = time.perf_counter() - t0
        # Events of the marker's own flush may follow it: a fence written now closes
        # its window after every earlier one.
        (burst / "zz-fence").write_text("end")
        events += count_until(sub, "zz-fence") - 2
        lat = pinger.finish()
        cpu = d.cpu() - cpu0
        sub.close()
        files = 500 if kind == "append" else 10_000
        print(
            f"   {kind:<6} 10,000 writes to {files:,} files in {writes_s:.2f}s: "
            f"{events:,} file events, all out after {settled_s:.2f}s; "
            f"daemon CPU {cpu:.2f}s"
        )
        counts = d.call("automation.status")["rules"][0]["counts"]
        started = d.call("task.stats")["totals"]["started"]
        print(
            f"          rule on file.*: matched {counts['matched']:,}, tasks started "
            f"{started:,}, held back by the loop guard {counts['suppressed']:,}"
        )
        print(
            f"          ping during the burst: n={len(lat)} p50 {pct(lat, 50) * 1000:.1f} ms, "
            f"p99 {pct(lat, 99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms"
        )
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---- 3. idle CPU over a 20,000-file tree ----------------------------------------------


def bench_idle(seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="aiwg-bench-"))
    tree = root / "tree"
    for i in range(200):
        sub = tree / f"d{i // 20:02d}" / f"s{i:03d}"
        sub.mkdir(parents=True)
        for j in range(100):
            (sub / f"f{j:03d}.py").write_text("x = 1\n")
    d = Daemon(root, {"watch": {"paths": [{"path": "tree/"}]}})  # default debounce 2 s
    try:
        status = d.watcher()
        cpu0, t0 = d.cpu(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = d.cpu() - cpu0, time.monotonic() - t0
        rss = d.ps.memory_info().rss / 2**20
        print(
            f"3. idle, watching {status['indexed_files']:,} files for {wall:.0f}s: "
            f"CPU {cpu:.3f}s = {cpu / wall * 100:.3f}% of one core (target < 0.5%); "
            f"RSS {rss:.1f} MiB"
        )
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer events, 10 s idle")
    args = ap.parse_args()
    bench_throughput(20_000 if args.quick else 200_000)
    print("2. burst of 10,000 file writes (debounce 200 ms)")
    bench_burst("append")
    bench_burst("new")
    bench_idle(10 if args.quick else 60)


if __name__ == "__main__":
    main()
