"""The systemd user unit for one project, and the systemctl commands around it (pure)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

SYSTEMCTL = "systemctl"
# systemd kills and restarts a daemon whose loop has not pinged for this long. There is
# no config key for it: the pings come from the loop (aiwgd.infra.sdnotify), so only a
# hung loop misses them, and 30 s is far beyond any step the loop takes.
WATCHDOG_S = 30
STOP_MARGIN_S = 15  # on top of the daemon's own stop ladder: flushing, the socket, the lock
# The daemon's exit status when a stop needed SIGKILL somewhere (aiwgd.daemon's
# EXIT_UNCLEAN): a finished stop, not a crash, so Restart=on-failure must not restart it.
EXIT_UNCLEAN = 2


def unit_name(slug: str) -> str:
    return f"aiwgd-{slug}.service"


def unit_dir(env: Mapping[str, str], home: Path) -> Path:
    """Where systemd looks for a user's own units ($XDG_CONFIG_HOME/systemd/user)."""
    config = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config) / "systemd" / "user"


def _specifiers(text: str) -> str:
    return text.replace("%", "%%")  # systemd expands %x specifiers in these settings


def quote(arg: str) -> str:
    """One ExecStart= word, as systemd.service(5) splits and unescapes command lines:
    double-quoted, C escapes for backslash, quote and newline, `%%` and `$$` so no
    specifier or environment variable is substituted into a path."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + _specifiers(escaped).replace("$", "$$") + '"'


def stop_timeout_s(stop_grace_s: float, service_graces: list[float]) -> int:
    """TimeoutStopSec=: longer than the daemon's own stop, so systemd's SIGKILL
    (KillMode=mixed) only ever meets what the daemon's ladder could not stop. Running
    tasks get the grace to finish, then the ladder's grace; services stop one after
    another at worst (dependency order)."""
    return math.ceil(2 * stop_grace_s + sum(service_graces) + STOP_MARGIN_S)


def render(argv: list[str], root: Path, stop_timeout: int) -> str:
    where = _specifiers(str(root))
    return (
        "[Unit]\n"
        f"Description=aiwgd automation daemon for {where}\n"
        "\n"
        "[Service]\n"
        "Type=notify\n"
        "NotifyAccess=main\n"
        f"ExecStart={' '.join(quote(a) for a in argv)}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        f"WorkingDirectory={where}\n"
        "Restart=on-failure\n"
        f"SuccessExitStatus={EXIT_UNCLEAN}\n"
        f"WatchdogSec={WATCHDOG_S}s\n"
        # SIGTERM to the daemon only: it runs its own stop ladder over its children; what
        # is left when it exits (or at the timeout) gets systemd's SIGKILL.
        "KillMode=mixed\n"
        f"TimeoutStopSec={stop_timeout}s\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def user_cmd(*args: str) -> list[str]:
    return [SYSTEMCTL, "--user", *args]


def enable_commands(unit: str) -> list[list[str]]:
    return [user_cmd("daemon-reload"), user_cmd("enable", "--now", unit)]


def disable_commands(unit: str) -> list[list[str]]:
    """Run before the file is removed; daemon-reload (reload_command) after."""
    return [user_cmd("disable", "--now", unit)]


def reload_command() -> list[str]:
    return user_cmd("daemon-reload")


def linger_file(user: str) -> Path:
    return Path("/var/lib/systemd/linger") / user


def linger_note(user: str) -> str:
    """Whether the user's units run with nobody logged in, and how to make them."""
    if os.path.exists(linger_file(user)):
        return f"lingering is on for {user}: the unit starts at boot, logged in or not"
    return (
        f"lingering is off for {user}: the unit starts at your first login and stops at "
        f"your last logout; `loginctl enable-linger {user}` starts it at boot instead"
    )
