"""The instance lock against the CLI's probes: `aiwg status`, `aiwg stop` and doctor
look at the lock with a shared flock for a moment (cli/daemonctl.lock_held), and a
daemon starting at that very moment must not take it for another daemon."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from aiwgd.config import Paths
from tests.utils import BASE_CONFIG, DaemonProc, wait_for, write_config


def _has_open(pid: int, path: Path) -> bool:
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for fd in names:
        try:
            if os.readlink(f"{fds}/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def test_a_start_during_a_probe_of_the_lock_still_starts(project: Path) -> None:
    write_config(project, BASE_CONFIG)
    paths = Paths(project)
    paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    probe = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what lock_held holds
    d = DaemonProc(project).start(wait=False)
    try:
        # The daemon has opened the lock file: its flock meets the probe's shared lock.
        wait_for(
            lambda: (
                d.proc is not None
                and (d.proc.poll() is not None or _has_open(d.pid, paths.lock_file))
            ),
            20,
            "the daemon to open its lock file",
            interval=0.001,
        )
        os.close(probe)  # the probe is done
        probe = -1
        d.wait_ready()
        assert d.call("ping") == "pong"
    finally:
        if probe >= 0:
            os.close(probe)
        assert d.stop() == 0
