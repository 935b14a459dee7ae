"""What a child gets from the daemon's spawn (aiwgd.procs.spawn): exactly stdin from
/dev/null and stdout + stderr on its pipe, a session of its own, no ignored or blocked
signal, and none of the daemon's other fds, however many the daemon holds. A task in
the root takes posix_spawn, which closes nothing itself: this is what tells us every fd
of the daemon is close-on-exec."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.taskhelp import submit, task_config, wait_terminal
from tests.utils import DaemonProc, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"
GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # signals 32 and 33 in /proc's SigIgn mask


def _running_pid(d: DaemonProc, task_id: str) -> int:
    def pid() -> int | None:
        runner = d.call("task.get", id=task_id)["runner"]
        return runner["pid"] if runner else None

    found: int = wait_for(pid, 10, "the task's process")
    return found


def _fds(pid: int) -> dict[int, str]:
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def _status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


@pytest.mark.parametrize("where", ["root", "subdir"])  # posix_spawn, then Popen
def test_a_child_gets_its_stdio_and_nothing_else(
    start_daemon: DaemonFactory, project: Path, where: str
) -> None:
    d = start_daemon(config=task_config(cap=4))
    (project / "sub").mkdir()
    # Hold many of the daemon's fds open meanwhile: other children's pipes and pidfds.
    others = [submit(d, [SLEEP, "30"]) for _ in range(3)]
    task = submit(d, [SLEEP, "30"], **({"cwd": "sub"} if where == "subdir" else {}))
    pid = _running_pid(d, task["id"])
    try:
        assert len(os.listdir(f"/proc/{d.pid}/fd")) > 12  # socket, journal, logs, pipes...
        # `sleep` opens locale files of its own while it starts and closes them again;
        # an fd inherited from the daemon would stay open for good, so wait for the
        # settled set rather than reading it once.
        seen: list[dict[int, str]] = []

        def settled() -> bool:
            seen.append(_fds(pid))
            return set(seen[-1]) == {0, 1, 2}

        try:
            wait_for(settled, 5, "the child's fds to be 0, 1, 2 only")
        except AssertionError:
            raise AssertionError(f"the child holds more than its stdio: {seen[-1]}") from None
        fds = seen[-1]
        assert fds[0] == os.devnull
        assert fds[1] == fds[2] and fds[1].startswith("pipe:")
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid
        # SIGPIPE and SIGXFSZ (ignored by Python) are back to their defaults. glibc's
        # posix_spawn leaves its two internal signals (32, 33: NPTL's cancel and setxid)
        # ignored, as in every program it starts (CPython's and Rust's spawns included);
        # glibc installs its own handlers for them when a program needs them.
        assert int(_status(pid, "SigIgn"), 16) & ~GLIBC_INTERNAL == 0
        assert int(_status(pid, "SigBlk"), 16) == 0
        cwd = os.readlink(f"/proc/{pid}/cwd")
        assert cwd == str(project if where == "root" else project / "sub")
    finally:
        for t in [*others, task]:
            d.call("task.cancel", id=t["id"])
    assert wait_terminal(d, task["id"])["state"] == "cancelled"


def test_exit_codes_and_signals_come_back_from_a_spawned_child(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config(cap=2))
    sh = shutil.which("sh") or "/bin/sh"
    code = submit(d, [sh, "-c", "exit 7"])
    killed = submit(d, [sh, "-c", "kill -TERM $$"])
    assert wait_terminal(d, code["id"])["exit_code"] == 7
    done = wait_terminal(d, killed["id"])
    assert done["state"] == "failed" and done["signal"] == 15
