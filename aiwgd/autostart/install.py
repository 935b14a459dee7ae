"""Enable, disable and inspect a project's autostart: write or remove the unit or agent
file and run systemctl or launchctl as argv lists (never a shell).

    agent = plan(root, "linux")           # what enable would write and run, nothing done
    enable(agent) / disable(agent)        # -> Done: what changed, what ran, a note
    status(agent)                         # -> dict: file, manager's view, the socket

A failed enable leaves no unit behind: the file is put back as it was (removed, or the
previous one restored), so a unit never sits installed but not enabled.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiwgd.autostart import launchd, systemd
from aiwgd.autostart.slug import project_slug
from aiwgd.config.paths import Paths
from aiwgd.infra.durable import write_atomic

PLATFORMS = ("linux", "macos")
COMMAND_TIMEOUT_S = 60.0
Runner = Callable[[list[str]], tuple[int, str]]


class AutostartError(Exception):
    """One line for the user; the CLI exits 1 with it."""


@dataclass(frozen=True)
class Agent:
    """What `enable` installs for one project on one platform."""

    platform: str
    kind: str  # "systemd user unit" / "launchd agent", for people
    name: str  # the unit name or the launchd label
    path: Path
    content: str
    root: Path
    enable: list[list[str]]
    disable: list[list[str]]
    after_disable: list[list[str]] = field(default_factory=list)
    # Exit 0 while the manager has it loaded; None: enable's commands are idempotent.
    loaded_probe: list[str] | None = None
    note: str = ""

    @property
    def tool(self) -> str:
        return self.enable[0][0]


@dataclass
class Done:
    changed: bool
    ran: list[list[str]]
    lines: list[str]

    def to_dict(self, agent: Agent) -> dict[str, Any]:
        return {
            "platform": agent.platform,
            "name": agent.name,
            "path": str(agent.path),
            "changed": self.changed,
            "ran": [shlex.join(c) for c in self.ran],
            "note": agent.note,
        }


def current_platform(name: str = sys.platform) -> str:
    if name.startswith("linux"):
        return "linux"
    if name == "darwin":
        return "macos"
    raise AutostartError(f"autostart supports Linux (systemd) and macOS (launchd), not {name}")


def daemon_argv(root: Path) -> list[str]:
    """The daemon's command line: the `aiwgd` script installed beside this Python if
    there is one, else this Python with `-m aiwgd`; absolute either way (a unit has no
    PATH of the user's)."""
    python = Path(os.path.abspath(sys.executable))
    script = python.parent / "aiwgd"
    head = [str(script)] if os.access(script, os.X_OK) else [str(python), "-m", "aiwgd"]
    return [*head, "--foreground", "--root", str(root)]


def _stop_timeout(paths: Paths) -> int:
    from aiwgd.config import Config, ValidationError, load_file

    try:
        config = load_file(paths.config_file) if paths.config_file.exists() else Config()
    except ValidationError as exc:
        first = exc.issues[0] if exc.issues else "invalid"
        raise AutostartError(f"invalid config {paths.config_file}: {first}") from None
    graces = [s.stop_grace_s for s in config.services.values()]
    return systemd.stop_timeout_s(config.daemon.stop_grace_seconds, graces)


def _user() -> str:
    return os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name


def plan(
    root: Path, platform: str, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Agent:
    """What enable would write and run for the project at `root`; nothing is done."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    paths, slug, argv = Paths(root), project_slug(root), daemon_argv(root)
    if platform == "linux":
        unit = systemd.unit_name(slug)
        return Agent(
            platform,
            "systemd user unit",
            unit,
            systemd.unit_dir(env, home) / unit,
            systemd.render(argv, root, _stop_timeout(paths)),
            root,
            systemd.enable_commands(unit),
            systemd.disable_commands(unit),
            [systemd.reload_command()],
            note=systemd.linger_note(_user()),
        )
    if platform == "macos":
        name, uid = launchd.label(slug), os.getuid()
        plist = launchd.agent_dir(home) / f"{name}.plist"
        return Agent(
            platform,
            "launchd agent",
            name,
            plist,
            launchd.render(argv, root, paths.daemon_dir, name),
            root,
            launchd.enable_commands(uid, plist),
            launchd.disable_commands(uid, name),
            loaded_probe=launchd.print_command(uid, name),
        )
    raise AutostartError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")


def run(argv: list[str]) -> tuple[int, str]:
    """Run one command; its exit status and what it printed (both streams)."""
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {COMMAND_TIMEOUT_S:.0f}s"
    except OSError as exc:
        return 127, exc.strerror or str(exc)
    return out.returncode, (out.stderr.strip() or out.stdout.strip())


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise AutostartError(
            f"{tool} not found on PATH: autostart needs it (`aiwg start` runs the daemon "
            "without it)"
        )


def _failed(argv: list[str], code: int, output: str) -> str:
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"`{shlex.join(argv)}` failed (exit {code}): {last}"


def _run_all(
    commands: list[list[str]], runner: Runner, on_failure: Callable[[], str]
) -> list[list[str]]:
    """Run each command in turn; the first that fails ends it with one line, which
    says what on_failure() did about the file."""
    for argv in commands:
        code, output = runner(argv)
        if code != 0:
            raise AutostartError(f"{_failed(argv, code, output)}; {on_failure()}")
    return list(commands)


def _loaded(agent: Agent, runner: Runner) -> bool:
    return agent.loaded_probe is not None and runner(agent.loaded_probe)[0] == 0


def dry_run(agent: Agent, action: str) -> list[str]:
    """What enable or disable would do, as lines: the file, then the commands."""
    if action == "enable":
        lines = [f"# {agent.kind} {agent.path}", agent.content.rstrip("\n"), ""]
        lines += [f"$ {shlex.join(c)}" for c in agent.enable]
    else:
        lines = [f"$ {shlex.join(c)}" for c in agent.disable]
        lines.append(f"$ rm {shlex.quote(str(agent.path))}")
        lines += [f"$ {shlex.join(c)}" for c in agent.after_disable]
    return lines


def enable(agent: Agent, runner: Runner = run) -> Done:
    """Write the file (if it differs) and have the manager start it now and at login."""
    _need(agent.tool)
    previous = agent.path.read_text() if agent.path.exists() else None
    changed = previous != agent.content
    commands = agent.enable
    if agent.loaded_probe is not None and _loaded(agent, runner):
        # launchd reads a plist once, at bootstrap: a changed one needs a bootout first.
        commands = [*agent.disable, *agent.enable] if changed else []
    if changed:
        agent.path.parent.mkdir(parents=True, exist_ok=True)
        Paths(agent.root).daemon_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(agent.path, agent.content)
    ran = _run_all(commands, runner, lambda: _roll_back(agent, previous))
    state = "installed" if previous is None else "updated" if changed else "already installed"
    lines = [f"{agent.kind} {agent.name}: {state} ({agent.path})"]
    lines += [f"ran: {shlex.join(c)}" for c in ran]
    if previous is not None and changed and agent.platform == "linux":
        lines.append(f"the unit changed: `systemctl --user restart {agent.name}` applies it now")
    if agent.note:
        lines.append(agent.note)
    return Done(changed, ran, lines)


def _roll_back(agent: Agent, previous: str | None) -> str:
    if previous is None:
        agent.path.unlink(missing_ok=True)
        return f"{agent.path} removed again"
    write_atomic(agent.path, previous)
    return f"{agent.path} put back as it was"


def disable(agent: Agent, runner: Runner = run) -> Done:
    """Stop it, have the manager forget it, remove the file. Nothing installed: no-op."""
    if not agent.path.exists():
        return Done(False, [], [f"no {agent.kind} installed ({agent.path})"])
    _need(agent.tool)
    commands = agent.disable
    if agent.loaded_probe is not None and not _loaded(agent, runner):
        commands = []  # launchctl bootout fails on an agent it does not have
    ran = _run_all(commands, runner, lambda: f"{agent.path} kept")
    agent.path.unlink()
    ran += _run_all(agent.after_disable, runner, lambda: f"{agent.path} removed already")
    lines = [f"{agent.kind} {agent.name} disabled and removed ({agent.path})"]
    return Done(True, ran, lines + [f"ran: {shlex.join(c)}" for c in ran])


def status(agent: Agent, runner: Runner = run) -> dict[str, Any]:
    """What is installed, whether it matches what enable would write now, what the
    manager says, and whether the daemon answers on its socket."""
    installed = agent.path.exists()
    out: dict[str, Any] = {
        "platform": agent.platform,
        "name": agent.name,
        "path": str(agent.path),
        "installed": installed,
        "up_to_date": installed and agent.path.read_text() == agent.content,
        "tool": agent.tool,
        "manager": _manager_view(agent, runner),
        "answers": _answers(agent.root),
        "note": agent.note,
    }
    return out


def _manager_view(agent: Agent, runner: Runner) -> dict[str, str]:
    if shutil.which(agent.tool) is None:
        return {"error": f"{agent.tool} not found on PATH"}
    if agent.platform == "linux":
        view = {}
        for verb in ("is-enabled", "is-active"):
            code, output = runner(systemd.user_cmd(verb, agent.name))
            # Both print their answer ("disabled", "inactive") with a non-zero exit too.
            view[verb] = output.splitlines()[-1] if output else f"exit {code}"
        return view
    assert agent.loaded_probe is not None
    code, output = runner(agent.loaded_probe)
    if code != 0:
        return {"loaded": "no"}
    return {"loaded": "yes", "state": launchd.state_of(output) or "unknown"}


def _answers(root: Path) -> bool:
    from aiwgd.client import Client, ClientError

    try:
        with Client(root, timeout=2.0) as c:
            return bool(c.call("ping") == "pong")
    except (ClientError, OSError):
        return False
