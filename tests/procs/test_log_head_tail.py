"""A task log over its cap keeps the head and the tail, with the cut marked (issue 8).

The end of a long output is what people need (a test summary, an agent's answer), so a
capped log keeps the first half of the cap and the last half, and says how many bytes
were cut in between. Real daemons, real tasks printing more than a small cap, read the
way a user does (`aiwg task logs`, `-f`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from aiwgd.procs.output import OutputSink
from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import env_for_tests, run_cli, wait_for

CAP = 65_536
HALF = CAP // 2
BLOCK = b"x" * 65_535 + b"\n"  # what taskprog.py --print-bytes writes


def printed(n: int) -> bytes:
    """The exact bytes `taskprog.py --print-bytes n` writes."""
    return (BLOCK * (n // len(BLOCK) + 1))[:n] + b"END\n"


def cut_count(text: str) -> int:
    m = re.search(r"\[aiwgd\] (\d+) bytes of output cut", text)
    assert m, f"no cut marker in the log: {text[HALF - 200 : HALF + 600]!r}"
    return int(m.group(1))


def test_capped_log_keeps_head_and_tail_and_marks_the_cut(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config(tasks={"log_max_bytes": CAP}))
    n = 1_000_000
    argv = prog("--say", "first line", "--print-bytes", str(n), "--say", "summary: 42 passed")
    done = wait_terminal(d, submit(d, argv)["id"], 60)
    assert done["state"] == "completed"
    out = b"first line\n" + printed(n) + b"summary: 42 passed\n"

    shown = run_cli(d.root, "task", "logs", done["id"])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(out[:HALF].decode())  # the head, byte for byte
    assert text.endswith(out[-HALF:].decode())  # the tail: the summary is there
    assert cut_count(text) == len(out) - CAP
    marker = text[HALF : len(text) - HALF]
    assert marker.count("\n") <= 3 and len(marker) < 400, marker  # a marker, not output
    assert Path(done["log_path"]).stat().st_size == len(text.encode())
    assert not list(Path(done["log_path"]).parent.glob("*.tail"))  # nothing left behind
    assert done["output_tail"].endswith("summary: 42 passed\n")


def test_follow_shows_the_head_live_then_the_tail_at_the_end(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(tasks={"log_max_bytes": CAP}))
    gate = project / "gate"
    argv = prog("--print-bytes", "300000", "--gate", str(gate), "--say", "the answer is 42")
    task = submit(d, argv)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiwgd.cli",
            "--root",
            str(d.root),
            "task",
            "logs",
            "-f",
            task["id"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for_tests(),
    )
    seen = bytearray()

    def read() -> None:
        assert follower.stdout is not None
        # os.read: whatever is there now (a buffered read would wait for a full block).
        while chunk := os.read(follower.stdout.fileno(), 65_536):
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # While the task still runs: the head, then a line saying the rest is held back.
        wait_for(lambda: b"[aiwgd]" in seen, 20, "the cap marker while the task runs")
        assert seen.startswith(printed(300_000)[:HALF])
        assert b"the answer" not in seen
        gate.touch()
        follower.wait(30)
        reader.join(10)
    finally:
        gate.touch()
        follower.kill()
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
    log = Path(wait_terminal(d, task["id"])["log_path"]).read_bytes()
    assert bytes(seen) == log  # what was streamed is the log: nothing twice, nothing lost
    assert log.endswith(b"the answer is 42\n")
    assert cut_count(log.decode()) == len(printed(300_000) + b"the answer is 42\n") - CAP


def test_every_attempt_keeps_its_end(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config(tasks={"log_max_bytes": CAP}))
    argv = prog("--print-bytes", "200000", "--say", "attempt failed: reason here", "--exit", "1")
    done = wait_terminal(d, submit(d, argv, max_retries=1)["id"], 60)
    assert done["state"] == "failed" and done["attempt"] == 2
    text = run_cli(d.root, "task", "logs", done["id"]).stdout
    assert text.count("attempt failed: reason here") == 2
    assert text.index("[aiwgd] attempt 2 of task") < text.rindex("attempt failed")
    assert text.endswith("attempt failed: reason here\n")
    size = Path(done["log_path"]).stat().st_size
    assert size < CAP + HALF + 1024  # the head once, then each attempt's last half cap


def test_sink_ring_keeps_the_last_bytes_of_many_small_writes(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = OutputSink(path, cap=1024)
    out = b"".join(f"line {i:05d}\n".encode() for i in range(2000))
    for i in range(0, len(out), 7):  # odd sizes: the ring wraps mid-write
        sink.feed(out[i : i + 7])
    sink.close()
    data = path.read_bytes()
    assert data.startswith(out[:512]) and data.endswith(out[-512:])
    assert f"[aiwgd] {len(out) - 1024} bytes of output cut".encode() in data
    assert len(data) < 1024 + 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.log"]


def test_sink_output_within_the_head_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = OutputSink(path, cap=1024)
    sink.feed(b"y" * 512)
    sink.close()
    assert path.read_bytes() == b"y" * 512


def test_sink_output_between_head_and_cap_is_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = OutputSink(path, cap=1024)
    sink.feed(b"y" * 500 + b"\n" + b"z" * 400 + b"\n")
    sink.close()
    data = path.read_bytes()
    head, _, rest = data.partition(b"\n[aiwgd]")
    assert head == b"y" * 500 + b"\n" + b"z" * 11
    assert b"nothing was cut" in rest and rest.endswith(b"\n" + b"z" * 389 + b"\n")


def test_the_tail_is_at_most_a_megabyte_of_a_large_cap(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = OutputSink(path, cap=8 * 1024 * 1024)
    block = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(12):
        sink.feed(block)
    sink.close()
    data = path.read_bytes()
    assert data.startswith(block * 7) and data.endswith(block)  # 7 MiB head, 1 MiB tail
    assert f"[aiwgd] {4 * len(block)} bytes of output cut".encode() in data
