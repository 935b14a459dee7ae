"""aiwgd.procs.marks: real processes found by the mark in their environment, wherever
they went (own session, re-parented), and taken down the stop ladder."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from aiwgd.procs.marks import alive, create_time, find_marked, stop_marked
from tests.utils import wait_for

MARK = "AIWG_TEST_MARK"


@pytest.fixture
def mark() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait(5)


def _pids(path: Path, n: int) -> list[int]:
    def read() -> list[int] | None:
        pids = [int(x) for x in path.read_text().split()] if path.exists() else []
        return pids if len(pids) >= n else None

    pids: list[int] = wait_for(read, 10, f"{n} pid(s) in {path}")
    return pids


def test_a_double_forked_process_is_found_by_its_mark_and_stopped(
    tmp_path: Path, mark: str
) -> None:
    pidfile = tmp_path / "pids"
    # The shell exits at once; the sleep is in its own session, adopted by someone else.
    script = f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &)"
    env = dict(os.environ, **{MARK: mark, "AIWG_ROOT": str(tmp_path)})
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=10)
    (pid,) = _pids(pidfile, 1)
    try:
        found = wait_for(lambda: find_marked(MARK, mark), 5, "the escaped process")
        assert [(p.pid, p.value, p.name) for p in found] == [(pid, mark, "sleep")]
        assert found[0].create_time == pytest.approx(create_time(pid), abs=0.02)
        # Another root's process with the same mark value is not ours.
        assert find_marked(MARK, mark, where={"AIWG_ROOT": "/elsewhere"}) == []
        assert find_marked(MARK, "other-value") == []
        report = stop_marked(found, grace=5)
        assert [p.pid for p in report.terminated] == [pid] and not report.killed
        assert not alive(pid)
        assert report.describe() == f"pid {pid} (sleep): SIGTERM"
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_term_ignoring_and_late_forked_processes_are_killed(
    tmp_path: Path, mark: str, reap: list[subprocess.Popen[bytes]]
) -> None:
    pidfile = tmp_path / "pids"
    # A parent that ignores SIGTERM and keeps forking children that carry the mark.
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pidfile)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "while True:\n"
        "    subprocess.Popen(['sleep', '300'])\n"
        "    time.sleep(0.2)\n"
    )
    env = dict(os.environ, **{MARK: mark})
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    reap.append(proc)
    (pid,) = _pids(pidfile, 1)
    wait_for(lambda: len(find_marked(MARK, mark, under=os.getpid())) >= 2, 10, "a forked child")
    found = find_marked(MARK, mark, under=os.getpid())
    report = stop_marked(
        found, grace=0.3, rescan=lambda: find_marked(MARK, mark, under=os.getpid())
    )
    assert pid in [p.pid for p in report.killed]
    assert not report.survivors
    assert find_marked(MARK, mark, under=os.getpid()) == []
    assert "SIGKILL" in report.describe()


def test_under_skips_the_subtrees_it_is_told_to(
    tmp_path: Path, mark: str, reap: list[subprocess.Popen[bytes]]
) -> None:
    env = dict(os.environ, **{MARK: mark})
    a = subprocess.Popen(["sleep", "300"], env=env)
    b = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], env=env)
    reap.extend([a, b])
    wait_for(lambda: len(find_marked(MARK, mark, under=os.getpid())) == 3, 10, "3 processes")
    left = find_marked(MARK, mark, under=os.getpid(), skip={b.pid})
    assert [p.pid for p in left] == [a.pid]
    stop_marked(find_marked(MARK, mark, under=os.getpid()), grace=5)
    assert find_marked(MARK, mark, under=os.getpid()) == []


def test_a_reused_pid_is_never_signalled(mark: str, reap: list[subprocess.Popen[bytes]]) -> None:
    p = subprocess.Popen(["sleep", "300"], env=dict(os.environ, **{MARK: mark}))
    reap.append(p)
    (found,) = wait_for(lambda: find_marked(MARK, mark, under=os.getpid()), 5, "the process")
    # Same pid, another create time: someone else now; nothing is sent.
    report = stop_marked([replace(found, create_time=(found.create_time or 0) - 100)], grace=0.1)
    assert not report and p.poll() is None
