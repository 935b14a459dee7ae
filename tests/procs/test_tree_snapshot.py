"""tree_snapshot: every live descendant with its create time, read down /proc."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil

from aiwgd.procs.tree import tree_snapshot
from tests.utils import wait_for

# A child that starts a grandchild in a session of its own (an escape from the group)
# and a plain one; each prints its PID.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    code = "import time; time.sleep(60)"
    a = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    b = subprocess.Popen([sys.executable, "-c", code])
    print(a.pid, b.pid, flush=True)
    time.sleep(60)
    """
)


def test_children_and_grandchildren_with_their_create_times() -> None:
    outer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {PARENT!r}])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert outer.stdout is not None
        a, b = (int(x) for x in outer.stdout.readline().split())
        middle = psutil.Process(outer.pid).children()[0].pid
        want = {p: psutil.Process(p).create_time() for p in (middle, a, b)}
        got = wait_for(
            lambda: (s := tree_snapshot(outer.pid)).keys() == want.keys() and s, 10, "the tree"
        )
        for pid, created in want.items():
            assert abs(got[pid] - created) < 0.02
        assert tree_snapshot(a) == {}  # a leaf
    finally:
        for p in [*psutil.Process(outer.pid).children(recursive=True), psutil.Process(outer.pid)]:
            p.kill()
        outer.wait()
    # Gone (reaped or zombie): nothing is reported for a dead tree.
    deadline = time.monotonic() + 10
    while tree_snapshot(outer.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tree_snapshot(outer.pid) == {}
