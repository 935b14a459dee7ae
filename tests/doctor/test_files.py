"""`aiwg doctor` on the files under .aiwg/: a bad config, wrong modes and owner, what a
dead daemon left, a full disk. Each problem is made for real, then found."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aiwgd.config.paths import Paths
from tests.doctor.helpers import doctor, fix_of, line_of, project_config, verdicts
from tests.tmpfs import tmpfs


def test_a_bad_config_fails_with_its_key_path(project: Path) -> None:
    project_config(project, {"services": {"web": {"command": ["true"], "depends_on": ["db"]}}})
    out = doctor(project)
    assert out.returncode == 1, out
    assert line_of(out, "config").startswith("[FAIL]")
    assert 'services.web.depends_on.db: unknown service "db"' in line_of(out, "config")
    assert fix_of(out, "config").endswith("then check it with: aiwg config validate")
    # The checks that need the config say why they cannot run; the others still do.
    checks = verdicts(doctor(project, "--json"))
    assert checks["agent"]["status"] == "skip" and "invalid" in checks["agent"]["message"]
    assert checks["disk space"]["status"] == "ok"


def test_a_config_that_is_not_json_fails(project: Path) -> None:
    project_config(project)
    Paths(project).config_file.write_text('{"daemon": {')
    checks = verdicts(doctor(project, "--json"))
    assert checks["config"]["status"] == "fail"
    assert "invalid JSON at line 1" in checks["config"]["message"]


def test_group_readable_aiwg_dir_warns_with_the_exact_chmod(project: Path) -> None:
    project_config(project)
    paths = Paths(project)
    os.chmod(paths.aiwg_dir, 0o755)
    out = doctor(project)
    assert out.returncode == 0, out  # a warning: nothing can write there
    assert line_of(out, "permissions").startswith("[warn]")
    assert f"{paths.aiwg_dir} is mode 0755" in line_of(out, "permissions")
    fix = fix_of(out, "permissions")
    assert fix == f"chmod 700 {paths.aiwg_dir}"
    subprocess.run(fix, shell=True, check=True)  # the line pastes as it is
    assert verdicts(doctor(project, "--json"))["permissions"]["status"] == "ok"


def test_group_writable_state_fails_and_its_fix_works(project: Path) -> None:
    project_config(project)
    paths = Paths(project)
    logs = paths.task_logs_dir
    logs.mkdir(parents=True, mode=0o700)
    os.chmod(paths.daemon_dir, 0o700)
    for i in range(5):  # more than a fix line lists: it becomes one find command
        (logs / f"{i}.log").write_text("output\n")
        os.chmod(logs / f"{i}.log", 0o664)
    out = doctor(project)
    assert out.returncode == 1, out
    assert "group or others can write" in line_of(out, "permissions")
    fix = fix_of(out, "permissions")
    assert fix.startswith(f"find {paths.aiwg_dir} "), fix
    subprocess.run(fix, shell=True, check=True)
    assert verdicts(doctor(project, "--json"))["permissions"]["status"] == "ok"


def test_state_owned_by_someone_else_fails_with_chown(project: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs as root)")
    project_config(project)
    paths = Paths(project)
    paths.daemon_dir.mkdir(mode=0o700)
    os.chown(paths.daemon_dir, 65534, 65534)
    checks = verdicts(doctor(project, "--json"))
    perm = checks["permissions"]
    assert perm["status"] == "fail"
    assert f"{paths.daemon_dir} is owned by uid 65534, not you (uid 0)" in perm["message"]
    subprocess.run(perm["fix"], shell=True, check=True)
    assert verdicts(doctor(project, "--json"))["permissions"]["status"] == "ok"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_pid_file_with_a_dead_pid_warns(project: Path) -> None:
    project_config(project)
    paths = Paths(project)
    pid = _dead_pid()
    paths.pid_file.write_text(f"{pid}\n")
    os.chmod(paths.pid_file, 0o600)
    out = doctor(project)
    assert out.returncode == 0, out
    assert line_of(out, "stale files").startswith("[warn]")
    assert f"daemon.pid (PID {pid}, no daemon)" in line_of(out, "stale files")
    assert fix_of(out, "stale files") == (
        f"aiwg start (or aiwg stop) removes them; or: rm -f {paths.pid_file}"
    )


def test_a_socket_nobody_listens_on_fails(project: Path) -> None:
    project_config(project)
    paths = Paths(project)
    paths.daemon_dir.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(paths.socket))
    sock.close()  # the file stays; nothing listens
    out = doctor(project)
    assert out.returncode == 1, out
    assert line_of(out, "daemon").startswith("[FAIL]")
    assert f"not running, yet {paths.socket} exists and nobody answers on it" in line_of(
        out, "daemon"
    )
    assert "daemon.sock" in line_of(out, "stale files")


def test_a_nearly_full_disk_fails(project: Path) -> None:
    paths = Paths(project)
    paths.aiwg_dir.mkdir()
    with tmpfs(paths.aiwg_dir, "50m"):
        project_config(project)
        out = doctor(project)
        assert out.returncode == 1, out
        line = line_of(out, "disk space")
        assert line.startswith("[FAIL]") and "MiB free on" in line, line
    with tmpfs(paths.aiwg_dir, "200m"):
        project_config(project)
        checks = verdicts(doctor(project, "--json"))
        assert checks["disk space"]["status"] == "warn", checks["disk space"]
        assert "the logs may grow to" in checks["disk space"]["message"]


def test_one_fix_closes_writable_and_readable_paths_alike(project: Path) -> None:
    project_config(project)
    paths = Paths(project)
    paths.daemon_dir.mkdir(mode=0o700)
    writable, readable = paths.daemon_dir / "kills.jsonl", paths.daemon_dir / "events.jsonl"
    for path, mode in ((writable, 0o620), (readable, 0o640)):
        path.write_text("{}\n")
        os.chmod(path, mode)
    out = doctor(project)
    assert out.returncode == 1, out
    assert f"{writable} is mode 0620: group or others can write" in line_of(out, "permissions")
    fix = fix_of(out, "permissions")
    assert fix == f"chmod go-rwx {readable} {writable}"
    subprocess.run(fix, shell=True, check=True)
    assert verdicts(doctor(project, "--json"))["permissions"]["status"] == "ok"
