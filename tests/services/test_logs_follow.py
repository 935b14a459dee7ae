"""service.logs with follow: every new line over the socket, in order, none lost silently."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiwgd.client import Client
from tests.conftest import DaemonFactory
from tests.services.svchelp import marked, script, service, wait_state
from tests.utils import DaemonProc, env_for_tests, wait_for

# Waits for go.txt, prints BURST numbered lines at once, then one every 50 ms.
NUMBERED = """
import os, sys, time
burst, width = int(sys.argv[1]), int(sys.argv[2])
print("waiting", flush=True)
while not os.path.exists("go.txt"):
    time.sleep(0.01)
pad = "x" * width
for i in range(burst):
    sys.stdout.write(f"n {i:06d} {pad}\\n")
sys.stdout.flush()
i = burst
while True:
    time.sleep(0.05)
    print(f"n {i:06d} {pad}", flush=True)
    i += 1
"""
LINE = re.compile(r"n (\d{6}) x*")


class Follower:
    """A connection following one service's output, collecting what it is sent."""

    def __init__(self, d: DaemonProc, name: str, lines: int = 0) -> None:
        self.client = d.client(timeout=10)
        self.result: dict[str, Any] = self.client.call(
            "service.logs", name=name, lines=lines, follow=True
        )
        self.numbers: list[int] = []
        self.instances: set[str] = set()
        self.dropped: list[dict[str, Any]] = []
        self.gaps_at: list[int] = []  # len(numbers) where each drop notice came

    def read_until(self, last: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.numbers or self.numbers[-1] < last:
            left = deadline - time.monotonic()
            assert left > 0, f"line {last} never came (got up to {self.numbers[-1:]})"
            if self.client.pending_notifications:
                msg = self.client.pending_notifications.pop(0)
            else:
                msg = self.client.read_message(timeout=left)
            params = msg["params"]
            if msg["method"] == "service.output_dropped":
                self.dropped.append(params)
                self.gaps_at.append(len(self.numbers))
                continue
            assert msg["method"] == "service.output", msg
            self.instances.add(params["instance"])
            for line in params["lines"]:
                m = LINE.fullmatch(line)
                if m:
                    self.numbers.append(int(m.group(1)))
                else:  # only our own notes and the wait line, before the numbers
                    assert not self.numbers and (line.startswith("[aiwgd ") or line == "waiting")

    def close(self) -> None:
        self.client.close()


def _numbered(project: Path, burst: int, width: int = 10) -> dict[str, Any]:
    return service(script(project, "numbered", NUMBERED), str(burst), str(width))


def test_two_followers_get_every_line_of_a_burst_in_order(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config={"services": {"num": _numbered(project, 5000)}})
    wait_state(d, "num", "ready")
    wait_for(lambda: "waiting" in d.call("service.logs", name="num")["lines"], 5, "waiting")
    first, second = Follower(d, "num", lines=5), Follower(d, "num")
    assert first.result["following"] is True and first.result["name"] == "num"
    assert "waiting" in first.result["lines"] and second.result["lines"] == []
    assert first.result["subscription_id"] != second.result["subscription_id"]
    assert second.result["followers"] == 2
    (project / "go.txt").write_text("")
    for f in (first, second):
        f.read_until(5010)  # the burst (25 times the 200 lines kept), then 10 paced ones
        assert f.numbers == list(range(len(f.numbers))), "a line is missing or out of order"
        assert f.dropped == [] and f.instances == {"num"}

    first.close()
    wait_for(lambda: d.call("service.logs", name="num")["followers"] == 1, 5, "one follower")
    second.read_until(5015)  # the one left still gets every line
    assert second.numbers == list(range(len(second.numbers)))
    second.close()
    wait_for(lambda: d.call("service.logs", name="num")["followers"] == 0, 5, "no follower")


def test_a_reader_too_slow_is_told_how_many_lines_it_lost(
    start_daemon: DaemonFactory, project: Path
) -> None:
    # 60,000 lines of 100 bytes: far more than the follow's queue (10,000 lines) plus
    # what the socket buffers hold, sent while the follower reads nothing.
    d = start_daemon(config={"services": {"num": _numbered(project, 60_000, 90)}})
    wait_state(d, "num", "ready")
    slow = Follower(d, "num")
    (project / "go.txt").write_text("")
    wait_for(
        lambda: any(
            int(m.group(1)) >= 60_000
            for line in d.call("service.logs", name="num", lines=3)["lines"]
            if (m := LINE.fullmatch(line))
        ),
        30,
        "the burst to be over",
    )
    slow.read_until(60_005)
    assert len(slow.dropped) >= 1
    lost = sum(p["dropped"] for p in slow.dropped)
    assert "read too slowly" in slow.dropped[0]["message"]
    # Every line is either received or counted, in order, the gaps where the notice was.
    assert len(slow.numbers) + lost == slow.numbers[-1] + 1
    assert slow.numbers[: slow.gaps_at[0]] == list(range(slow.gaps_at[0]))
    assert slow.numbers == sorted(set(slow.numbers))
    slow.close()


def test_following_instances_and_a_reload_that_removes_the_service(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = _numbered(project, 300)
    d = start_daemon(config={"services": {"num": {**cfg, "instances": 2}}})
    wait_state(d, "num:1", "ready")
    both, one = Follower(d, "num"), Follower(d, "num:1")
    (project / "go.txt").write_text("")
    both.read_until(305)
    one.read_until(305)
    assert both.instances == {"num:0", "num:1"} and one.instances == {"num:1"}
    assert one.numbers == list(range(len(one.numbers)))

    config = json.loads(d.paths.config_file.read_text())
    config["services"] = {}
    d.paths.config_file.write_text(json.dumps(config))
    d.call("daemon.reload")
    ended = wait_for(lambda: _ended(one.client), 10, "service.output_ended")
    assert ended["name"] == "num:1" and "reload" in ended["reason"]


def _ended(c: Client) -> dict[str, Any] | None:
    msg = c.pending_notifications.pop(0) if c.pending_notifications else c.read_message(5)
    if msg.get("method") == "service.output_ended":
        params: dict[str, Any] = msg["params"]
        return params
    return None


def test_cli_follow_prints_new_lines_and_ends_on_ctrl_c(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config={"services": {"num": _numbered(project, 1000)}})
    wait_state(d, "num", "ready")
    wait_for(lambda: "waiting" in d.call("service.logs", name="num")["lines"], 5, "waiting")
    cli = Cli(project, "num", "-f", "-n", "1")
    try:
        assert cli.next() == "waiting"
        (project / "go.txt").write_text("")
        seen = [LINE.fullmatch(cli.next()) for _ in range(1005)]  # the burst, then paced
        assert [int(m.group(1)) if m else -1 for m in seen] == list(range(1005))
        cli.proc.send_signal(signal.SIGINT)
        code, err = cli.wait()
        assert code == 0, err
        assert "Traceback" not in err
    finally:
        cli.kill()


def test_cli_follow_says_so_when_the_daemon_goes_away(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config={"services": {"num": _numbered(project, 0)}})
    wait_state(d, "num", "ready")
    wait_for(lambda: "waiting" in d.call("service.logs", name="num")["lines"], 5, "waiting")
    cli = Cli(project, "num", "-f", "-n", "1")
    try:
        assert cli.next() == "waiting"
        d.kill9()
        code, err = cli.wait()
        assert code != 0
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "daemon closed the connection" in err
    finally:
        cli.kill()
        for p in marked(project):  # what the killed daemon left (its own session)
            p.kill()


class Cli:
    """`aiwg service logs NAME -f` as a subprocess; a thread reads its stdout lines."""

    def __init__(self, project: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "aiwgd.cli", "--root", str(project)]
        self.proc = subprocess.Popen(
            [*cmd, "service", "logs", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for_tests(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 10) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s (exit {self.proc.poll()})") from None

    def wait(self, timeout: float = 10) -> tuple[int, str]:
        assert self.proc.stderr is not None
        code = self.proc.wait(timeout)
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
