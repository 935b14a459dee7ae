"""The unit and the plist `aiwg autostart enable` writes, checked by the real tools where
they exist: `systemd-analyze verify` here; `plutil -lint` only on a Mac (absent here,
so that check skips and plistlib's round-trip is what runs)."""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from aiwgd.autostart import install, launchd, systemd
from aiwgd.autostart.slug import project_slug

ODD = 'my proj %h $HOME "q" \\b'  # a space, a specifier, a variable, quotes, a backslash


def verify(unit: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user verify` without a user manager: it needs only a runtime dir."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    cmd = ["systemd-analyze", "--user", "verify", str(unit)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def test_slug_is_readable_and_unique_per_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "My App!", tmp_path / "b" / "My App!"
    assert project_slug(a).startswith("my-app-") and project_slug(b).startswith("my-app-")
    assert project_slug(a) != project_slug(b)
    assert project_slug(a) == project_slug(a)
    assert project_slug(Path("/")).startswith("project-")
    assert all(c.isalnum() or c == "-" for c in project_slug(tmp_path / ODD))


@needs_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    root = tmp_path / ODD
    root.mkdir()
    agent = install.plan(root, "linux", env={}, home=tmp_path / "home")
    assert agent.path == tmp_path / "home/.config/systemd/user" / agent.name
    unit = tmp_path / agent.name
    unit.write_text(agent.content)
    out = verify(unit, tmp_path)
    assert (out.returncode, out.stderr) == (0, ""), out
    # The check bites: the same unit with a program that does not exist fails it.
    argv = ["/nonexistent/aiwgd", "--root", str(root)]
    unit.write_text(systemd.render(argv, root, 35))
    out = verify(unit, tmp_path)
    assert out.returncode != 0 and "/nonexistent/aiwgd" in out.stderr, out


def test_exec_start_words_survive_systemd_quoting() -> None:
    # systemd.service(5): C escapes inside quotes, %% for %, $$ for $.
    assert systemd.quote(ODD) == '"my proj %%h $$HOME \\"q\\" \\\\b"'
    assert systemd.quote("/usr/bin/aiwgd") == '"/usr/bin/aiwgd"'


def test_stop_timeout_outlasts_the_daemons_own_stop() -> None:
    # Tasks' grace, the ladder's grace, services one after another, then the margin.
    assert systemd.stop_timeout_s(10, []) == 35
    assert systemd.stop_timeout_s(2.5, [3, 4]) == 27


def test_the_plist_round_trips(tmp_path: Path) -> None:
    root = tmp_path / ODD
    agent = install.plan(root, "macos", home=tmp_path / "home")
    name = f"dev.aiwg.aiwgd.{project_slug(root)}"
    assert agent.path == tmp_path / "home/Library/LaunchAgents" / f"{name}.plist"
    argv = install.daemon_argv(root)
    assert plistlib.loads(agent.content.encode()) == {
        "Label": name,
        "ProgramArguments": [*argv, "--no-stderr-log"],
        "WorkingDirectory": str(root),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "StandardOutPath": f"{root}/.aiwg/daemon/launchd.out",
        "StandardErrorPath": f"{root}/.aiwg/daemon/launchd.err",
        "ProcessType": "Background",
    }
    assert argv[-3:] == ["--foreground", "--root", str(root)]
    assert launchd.state_of("gui/0/x = {\n\tstate = running\n}") == "running"


@pytest.mark.skipif(shutil.which("plutil") is None, reason="plutil is macOS only; absent here")
def test_the_plist_passes_plutil_lint(tmp_path: Path) -> None:
    agent = install.plan(tmp_path, "macos", home=tmp_path / "home")
    plist = tmp_path / "agent.plist"
    plist.write_text(agent.content)
    out = subprocess.run(["plutil", "-lint", str(plist)], capture_output=True, text=True)
    assert out.returncode == 0, out


def test_the_units_command_starts_a_daemon_that_notifies(project: Path, tmp_path: Path) -> None:
    """What systemd would do with the unit, by hand: run ExecStart= (split as systemd
    does for plain quoted words) with NOTIFY_SOCKET, reload with SIGHUP, stop with
    SIGTERM, and read what the daemon tells the manager."""
    from tests.daemon.test_sdnotify import Manager
    from tests.utils import BASE_CONFIG, env_for_tests, write_config

    write_config(project, BASE_CONFIG)
    agent = install.plan(project, "linux", env={}, home=tmp_path / "home")
    (line,) = [ln for ln in agent.content.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv == install.daemon_argv(project)
    manager = Manager(str(tmp_path / "notify.sock"))
    env = {**env_for_tests(), "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen(
        argv, env=env, cwd=project, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert manager.next(lambda m: m.startswith("READY=1")) == f"READY=1\nMAINPID={proc.pid}"
        proc.send_signal(signal.SIGHUP)  # ExecReload=/bin/kill -HUP $MAINPID
        manager.next(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="))
        manager.next(lambda m: m == "READY=1")
        proc.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process first
        manager.next(lambda m: m == "STOPPING=1")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        manager.sock.close()
