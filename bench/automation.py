"""File write -> watcher event -> rule -> task started: latency through the real daemon.

    .venv/bin/python bench/automation.py [--writes N] [--debounce-ms MS]

A real daemon watches `src/` (debounce 50 ms by default) with one rule: on
`file.modified`, a task `true <path>`. The benchmark modifies one file at a time and
waits for that file's `task.started` event over an `events.subscribe` socket
subscription. Latency = the task.started event's time - the wall time just before the
write (both stamped on this machine). It also splits the chain at the `file.modified`
event: watcher part (write -> event, includes the debounce window) and automation +
supervisor part (event -> task started). Target: p50 under debounce + 50 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client  # noqa: E402
from aiwgd.config.paths import Paths  # noqa: E402
from bench._common import pct, spawn_daemon, wait  # noqa: E402


def start(root: Path) -> subprocess.Popen[bytes]:
    proc = spawn_daemon(root, cwd=root)
    wait(lambda: Client(root, timeout=2).connect().call("ping") == "pong", 20, "the daemon")
    return proc


def config(debounce_ms: int) -> dict[str, Any]:
    rule = {
        "id": "on-write",
        "trigger": {"type": "file.modified"},
        "action": {"type": "task", "command": ["true", "{{data.path}}"]},
        "max_per_minute": 10_000,
    }
    return {
        "watch": {"enabled": True, "debounce_ms": debounce_ms, "paths": [{"path": "src/"}]},
        "schedule": {"enabled": False, "jobs": []},
        "rules": [rule],
    }


def run(writes: int, debounce_ms: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="aiwg-bench-", dir="/tmp"))
    proc = None
    try:
        src = root / "src"
        src.mkdir()
        for i in range(writes):
            (src / f"f{i:04}.txt").write_text("0\n")
        Paths(root).aiwg_dir.mkdir()
        Paths(root).config_file.write_text(json.dumps(config(debounce_ms)))
        proc = start(root)
        ctl = Client(root, timeout=10).connect()

        def watching() -> bool:
            w = ctl.call("daemon.status")["subsystems"]["watcher"]
            return bool(w["state"] == "watching" and w["index_complete"])

        wait(watching, 20, "the watcher")
        sub = Client(root, timeout=10).connect()
        sub.call("events.subscribe", types=["task.started"])
        started: dict[str, float] = {}
        wrote: dict[str, float] = {}
        for i in range(writes):
            rel = f"src/f{i:04}.txt"
            wrote[rel] = time.time()
            (root / rel).write_text(f"{i}\n")
            while rel not in started:
                msg = (
                    next(sub.notifications())
                    if sub.pending_notifications
                    else sub.read_message(timeout=10)
                )
                ev = msg.get("params", {}) if isinstance(msg, dict) else {}
                cmd = ev.get("data", {}).get("command") or []
                if ev.get("type") == "task.started" and len(cmd) == 2:
                    started[cmd[1]] = ev["time"]
        events = ctl.call("events.list", type="file.modified", limit=100_000)["events"]
        seen = {e["data"]["path"]: e["time"] for e in events}
        total = [(started[p] - wrote[p]) * 1000 for p in wrote]
        watch_part = [(seen[p] - wrote[p]) * 1000 for p in wrote if p in seen]
        rule_part = [(started[p] - seen[p]) * 1000 for p in wrote if p in seen]
        auto = next(r for r in ctl.call("automation.status")["rules"] if r["id"] == "on-write")
        p50 = statistics.median(total)
        print(f"file write -> rule's task started ({writes} writes, debounce_ms {debounce_ms})")
        print(
            f"  total:       p50 {p50:7.1f} ms   p99 {pct(total, 99):7.1f} ms   "
            f"max {max(total):7.1f} ms"
        )
        print(
            f"  watcher:     p50 {statistics.median(watch_part):7.1f} ms   "
            f"p99 {pct(watch_part, 99):7.1f} ms   (write -> file.modified, incl. debounce)"
        )
        print(
            f"  rule + task: p50 {statistics.median(rule_part):7.1f} ms   "
            f"p99 {pct(rule_part, 99):7.1f} ms   (file.modified -> task.started)"
        )
        print(f"  rule counts: {auto['counts']}")
        target = debounce_ms + 50
        verdict = "OK" if p50 < target else "MISSED"
        print(
            f"  target p50 < debounce + 50 ms = {target} ms: {verdict} (ratio {p50 / target:.2f})"
        )
        ctl.close()
        sub.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--debounce-ms", type=int, default=50)
    args = parser.parse_args()
    run(args.writes, args.debounce_ms)


if __name__ == "__main__":
    main()
