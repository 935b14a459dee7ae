"""The launchd agent for one project, and the launchctl commands around it (pure)."""

from __future__ import annotations

import plistlib
from pathlib import Path

LAUNCHCTL = "launchctl"


def label(slug: str) -> str:
    return f"dev.aiwg.aiwgd.{slug}"


def agent_dir(home: Path) -> Path:
    return home / "Library" / "LaunchAgents"


def render(argv: list[str], root: Path, daemon_dir: Path, name: str) -> str:
    """The agent's plist. launchd never rotates StandardErrorPath, so the daemon logs to
    its own rotated daemon.log only (--no-stderr-log): what lands in launchd.err is
    what escaped it (a crash's traceback)."""
    agent = {
        "Label": name,
        "ProgramArguments": [*argv, "--no-stderr-log"],
        "WorkingDirectory": str(root),
        "RunAtLoad": True,
        # Restarted after a crash, not after `aiwg stop` (a clean exit, status 0).
        "KeepAlive": {"SuccessfulExit": False},
        "StandardOutPath": str(daemon_dir / "launchd.out"),
        "StandardErrorPath": str(daemon_dir / "launchd.err"),
        "ProcessType": "Background",
    }
    return plistlib.dumps(agent, sort_keys=False).decode()


def domain(uid: int) -> str:
    return f"gui/{uid}"


def enable_commands(uid: int, plist: Path) -> list[list[str]]:
    return [[LAUNCHCTL, "bootstrap", domain(uid), str(plist)]]


def disable_commands(uid: int, name: str) -> list[list[str]]:
    return [[LAUNCHCTL, "bootout", f"{domain(uid)}/{name}"]]


def print_command(uid: int, name: str) -> list[str]:
    """Exit 0 while the agent is loaded; its output has a `state = running` line."""
    return [LAUNCHCTL, "print", f"{domain(uid)}/{name}"]


def state_of(printed: str) -> str | None:
    for line in printed.splitlines():
        key, _, value = line.strip().partition(" = ")
        if key == "state":
            return value.strip()
    return None
