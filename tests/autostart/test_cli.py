"""`aiwg autostart enable|disable|status` as a user runs them, against fake `systemctl`
and `launchctl` first on PATH (tests/autostart/fakes.py: this container has no systemd
user manager and no launchd) and HOME in a temp dir, so nothing real is touched."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiwgd.autostart.install import daemon_argv
from aiwgd.autostart.slug import project_slug
from tests.autostart.fakes import install_fakes
from tests.conftest import DaemonFactory
from tests.utils import env_for_tests, run_cli


@dataclass
class Box:
    """HOME, PATH and the fakes' log for one test."""

    root: Path
    home: Path
    env: dict[str, str]
    log: Path

    def aiwg(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.root, "autostart", *args, env={**self.env, **env})

    def ran(self) -> list[str]:
        """The fake tools' command lines so far, and forget them."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return [" ".join(json.loads(line)) for line in lines]

    @property
    def unit(self) -> Path:
        name = f"aiwgd-{project_slug(self.root)}.service"
        return self.home / ".config/systemd/user" / name

    @property
    def plist(self) -> Path:
        name = f"dev.aiwg.aiwgd.{project_slug(self.root)}.plist"
        return self.home / "Library/LaunchAgents" / name


@pytest.fixture
def box(project: Path, tmp_path: Path) -> Box:
    bin_dir = install_fakes(tmp_path)
    env = env_for_tests()
    env.pop("XDG_CONFIG_HOME", None)
    env.update(
        HOME=str(tmp_path / "home"),
        USER="tester",
        PATH=str(bin_dir),  # the fakes only: the real systemctl is in /usr/bin
        FAKE_LOG=str(tmp_path / "calls.jsonl"),
        FAKE_STATE=str(tmp_path / "state"),
    )
    return Box(project, tmp_path / "home", env, tmp_path / "calls.jsonl")


def expected_unit(root: Path) -> str:
    exec_start = " ".join(f'"{a}"' for a in daemon_argv(root))
    return f"""[Unit]
Description=aiwgd automation daemon for {root}

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory={root}
Restart=on-failure
SuccessExitStatus=2
WatchdogSec=30s
KillMode=mixed
TimeoutStopSec=35s

[Install]
WantedBy=default.target
"""


def test_enable_twice_status_disable(box: Box, start_daemon: DaemonFactory) -> None:
    unit = box.unit.name
    out = box.aiwg("enable")
    assert out.returncode == 0, out
    assert box.unit.read_text() == expected_unit(box.root)
    assert box.unit.stat().st_mode & 0o777 == 0o600
    assert box.ran() == [
        "systemctl --user daemon-reload",
        f"systemctl --user enable --now {unit}",
    ]
    assert out.stdout.splitlines() == [
        f"systemd user unit {unit}: installed ({box.unit})",
        "ran: systemctl --user daemon-reload",
        f"ran: systemctl --user enable --now {unit}",
        "lingering is off for tester: the unit starts at your first login and stops at your "
        "last logout; `loginctl enable-linger tester` starts it at boot instead",
    ]

    # Twice: the same file, the same (idempotent) commands, nothing else.
    again = box.aiwg("enable")
    assert again.returncode == 0, again
    first = again.stdout.splitlines()[0]
    assert first == f"systemd user unit {unit}: already installed ({box.unit})"
    assert box.unit.read_text() == expected_unit(box.root)
    assert len(box.ran()) == 2

    start_daemon()
    status = box.aiwg("status")
    assert status.returncode == 0, status
    assert status.stdout.splitlines()[:3] == [
        f"{unit}: {box.unit} (up to date)",
        "systemctl: is-enabled: enabled; is-active: active",
        "daemon: answers on its socket",
    ]
    # A config change the unit depends on (the stop grace) shows as out of date.
    (box.root / ".aiwg/daemon.json").write_text('{"daemon": {"stop_grace_seconds": 60}}')
    data = json.loads(box.aiwg("status", "--json").stdout)
    assert data["installed"] and not data["up_to_date"]
    assert data["manager"] == {"is-enabled": "enabled", "is-active": "active"}
    box.ran()

    out = box.aiwg("disable")
    assert out.returncode == 0, out
    assert not box.unit.exists()
    assert box.ran() == [
        f"systemctl --user disable --now {unit}",
        "systemctl --user daemon-reload",
    ]
    out = box.aiwg("disable")
    assert (out.returncode, out.stdout) == (0, f"no systemd user unit installed ({box.unit})\n")
    assert box.ran() == []


def test_dry_run_prints_and_changes_nothing(box: Box) -> None:
    out = box.aiwg("enable", "--dry-run")
    assert out.returncode == 0, out
    unit = box.unit.name
    assert out.stdout == (
        f"# systemd user unit {box.unit}\n{expected_unit(box.root)}\n"
        f"$ systemctl --user daemon-reload\n$ systemctl --user enable --now {unit}\n"
    )
    out = box.aiwg("disable", "--dry-run")
    assert out.stdout.splitlines() == [
        f"$ systemctl --user disable --now {unit}",
        f"$ rm {box.unit}",
        "$ systemctl --user daemon-reload",
    ]
    assert not box.unit.exists() and box.ran() == []


def test_a_failed_enable_is_one_line_and_leaves_no_unit(box: Box) -> None:
    bus = "Failed to connect to bus: No such file or directory"
    out = box.aiwg("enable", FAKE_FAIL="enable", FAKE_FAIL_MSG=bus)
    assert out.returncode == 1
    assert out.stderr == (
        f"aiwg: `systemctl --user enable --now {box.unit.name}` failed (exit 1): {bus}; "
        f"{box.unit} removed again\n"
    )
    assert not box.unit.exists()
    # A unit that was there before is put back as it was.
    box.unit.write_text("[Unit]\nDescription=an older one\n")
    out = box.aiwg("enable", FAKE_FAIL="daemon-reload", FAKE_FAIL_MSG=bus)
    assert out.returncode == 1 and out.stderr.endswith(f"{box.unit} put back as it was\n")
    assert box.unit.read_text() == "[Unit]\nDescription=an older one\n"


def test_no_systemctl_is_one_line(box: Box, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = box.aiwg("enable", PATH=str(empty))
    assert out.returncode == 1
    assert out.stderr == (
        "aiwg: systemctl not found on PATH: autostart needs it "
        "(`aiwg start` runs the daemon without it)\n"
    )
    assert not box.unit.exists()
    status = box.aiwg("status", PATH=str(empty))
    assert status.returncode == 0, status
    assert "systemctl: error: systemctl not found on PATH" in status.stdout


def test_macos_agent_enable_twice_and_disable(box: Box) -> None:
    uid = subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip()
    label = box.plist.stem
    out = box.aiwg("enable", "--platform", "macos")
    assert out.returncode == 0, out
    assert box.ran() == [
        f"launchctl print gui/{uid}/{label}",
        f"launchctl bootstrap gui/{uid} {box.plist}",
    ]
    assert b"<string>--no-stderr-log</string>" in box.plist.read_bytes()
    assert (box.root / ".aiwg/daemon").is_dir()  # launchd opens its log files there

    again = box.aiwg("enable", "--platform", "macos")
    assert again.returncode == 0, again
    assert box.ran() == [f"launchctl print gui/{uid}/{label}"]  # loaded and unchanged

    status = box.aiwg("status", "--platform", "macos")
    assert "launchctl: loaded: yes; state: running" in status.stdout, status
    assert box.ran() == [f"launchctl print gui/{uid}/{label}"]

    out = box.aiwg("disable", "--platform", "macos")
    assert out.returncode == 0, out
    assert not box.plist.exists()
    assert box.ran() == [
        f"launchctl print gui/{uid}/{label}",
        f"launchctl bootout gui/{uid}/{label}",
    ]


def test_an_unknown_platform_is_one_line(box: Box) -> None:
    out = box.aiwg("enable", "--platform", "windows")
    assert out.returncode == 1
    assert out.stderr == "aiwg: unknown platform 'windows' (one of linux, macos)\n"


def test_a_failed_disable_keeps_the_unit(box: Box) -> None:
    assert box.aiwg("enable").returncode == 0
    out = box.aiwg("disable", FAKE_FAIL="disable", FAKE_FAIL_MSG="Access denied")
    assert out.returncode == 1
    assert out.stderr == (
        f"aiwg: `systemctl --user disable --now {box.unit.name}` failed (exit 1): "
        f"Access denied; {box.unit} kept\n"
    )
    assert box.unit.read_text() == expected_unit(box.root)
