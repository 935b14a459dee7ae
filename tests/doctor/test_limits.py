"""`aiwg doctor` on kernel limits: a low open-files limit set on the doctor's own process
(a daemon started from that shell would inherit it), and an inotify watch limit below the
watched tree's directories."""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aiwgd.cli.doctor import checks_limits
from tests.doctor.helpers import doctor, fix_of, line_of, project_config, verdicts


def nofile(soft: int, hard: int) -> Callable[[], None]:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return set_limit


def test_a_tiny_open_files_limit_fails(project: Path) -> None:
    project_config(project)
    out = doctor(project, preexec_fn=nofile(64, 64))
    assert out.returncode == 1, out
    line = line_of(out, "open files limit")
    assert line.startswith("[FAIL]")
    assert "a daemon started from here gets 64 open files (hard limit 64)" in line
    assert fix_of(out, "open files limit").startswith("ulimit -n 2048 in the shell")


def test_a_limit_that_halves_the_connection_cap_warns(project: Path) -> None:
    project_config(project)
    out = doctor(project, "--json", preexec_fn=nofile(1024, 1024))
    check = verdicts(out)["open files limit"]
    assert out.returncode == 0, out
    assert check["status"] == "warn", check
    assert "the connection cap is 512 (half the limit) instead of 1024" in check["message"]


def test_a_low_soft_limit_is_fine_when_the_hard_one_is_high(project: Path) -> None:
    # The daemon raises its soft limit toward the hard one at start (infra/fdlimit.py).
    project_config(project)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"this machine's hard limit ({hard}) is itself low")
    check = verdicts(doctor(project, "--json", preexec_fn=nofile(64, hard)))["open files limit"]
    assert check["status"] == "ok", check


def test_the_connection_cap_is_the_servers() -> None:
    from aiwgd.rpc import server

    assert checks_limits.MAX_CONNECTIONS == server.MAX_CONNECTIONS
    assert server.connection_cap(0) == checks_limits.MIN_CONNECTIONS


def faked(tmp_path: Path, name: str, value: int) -> list[str]:
    """A wrapper that runs a command in a mount namespace of its own where a file holding
    `value` is bind-mounted over /proc/sys/fs/inotify/NAME: the doctor reads the
    kernel's file as always (it cannot be written for one test) and finds `value`."""
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")
    fake = tmp_path / name
    fake.write_text(f"{value}\n")
    target = checks_limits.INOTIFY / name
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(fake), str(target),
    ]  # fmt: skip


def inotify_failure(out: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The inotify check's line and fix of a run that must fail on it."""
    assert out.returncode == 1, out
    line = line_of(out, "inotify")
    assert line.startswith("[FAIL]"), line
    return line, fix_of(out, "inotify")


def test_a_watched_tree_over_the_inotify_limit_fails(project: Path, tmp_path: Path) -> None:
    project_config(project, {"watch": {"enabled": True, "paths": [{"path": "src"}]}})
    for i in range(7):
        (project / "src" / f"d{i}").mkdir(parents=True)
    line, fix = inotify_failure(doctor(project, prefix=faked(tmp_path, "max_user_watches", 5)))
    assert "the watched trees hold 8 directories, over fs.inotify.max_user_watches=5" in line
    assert fix.startswith("sudo sysctl fs.inotify.max_user_watches=524288 ")
    # Outside that namespace the real limit applies, and the same tree is fine.
    assert verdicts(doctor(project, "--json"))["inotify"]["status"] == "ok"


def test_no_inotify_instance_left_fails(project: Path, tmp_path: Path) -> None:
    project_config(project, {"watch": {"enabled": True, "paths": [{"path": "src"}]}})
    (project / "src").mkdir()
    line, fix = inotify_failure(doctor(project, prefix=faked(tmp_path, "max_user_instances", 1)))
    assert "inotify instances of fs.inotify.max_user_instances=1; the watcher needs 2" in line
    assert fix.startswith("sudo sysctl fs.inotify.max_user_instances=")
