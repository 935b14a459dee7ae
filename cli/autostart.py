"""`aiwg autostart enable|disable|status [--dry-run]`: start the daemon with the session
(a systemd user unit on Linux, a launchd agent on macOS; aiwgd.autostart)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiwgd.cli.options import Json, Root, emit, paths_for, want_json

if TYPE_CHECKING:
    from aiwgd.autostart.install import Agent

# aiwgd.autostart and daemonctl are imported by the commands that run, not here:
# `aiwg --help` imports this module for its short help (a benchmarked start-up).

autostart_app = typer.Typer(
    no_args_is_help=True,
    help="Start the daemon at login or boot: a systemd user unit or a launchd agent.",
)

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="print the file and the commands; change nothing")
]
# Hidden: the other platform's file and commands, to read them (or test them) here.
Platform = Annotated[str | None, typer.Option("--platform", hidden=True, help="linux or macos")]


def _agent(root: str | None, platform: str | None) -> Agent:
    from aiwgd.autostart import install
    from aiwgd.autostart.install import AutostartError
    from aiwgd.cli.daemonctl import CtlError

    try:
        return install.plan(paths_for(root).root, platform or install.current_platform())
    except AutostartError as exc:
        raise CtlError(str(exc)) from None


def _done(agent: Agent, action: str, dry_run: bool, json_out: bool) -> None:
    from aiwgd.autostart import install
    from aiwgd.autostart.install import AutostartError
    from aiwgd.cli.daemonctl import CtlError

    if dry_run:
        lines = install.dry_run(agent, action)
        data: dict[str, Any] = {"dry_run": True, "path": str(agent.path), "lines": lines}
        if action == "enable":
            data["content"] = agent.content
        emit(data, want_json(json_out), "\n".join(lines))
        return
    try:
        done = install.enable(agent) if action == "enable" else install.disable(agent)
    except (AutostartError, OSError) as exc:
        raise CtlError(str(exc)) from None
    emit(done.to_dict(agent), want_json(json_out), "\n".join(done.lines))


@autostart_app.command()
def enable(
    dry_run: DryRun = False, platform: Platform = None, root: Root = None, json_out: Json = False
) -> None:
    """Install the unit (or agent) for this project and start it now."""
    _done(_agent(root, platform), "enable", dry_run, json_out)


@autostart_app.command()
def disable(
    dry_run: DryRun = False, platform: Platform = None, root: Root = None, json_out: Json = False
) -> None:
    """Stop it and remove the unit (or agent) for this project."""
    _done(_agent(root, platform), "disable", dry_run, json_out)


def render_status(s: dict[str, Any]) -> str:
    if not s["installed"]:
        lines = [f"not installed ({s['path']}); `aiwg autostart enable` installs it"]
    else:
        fresh = (
            "up to date"
            if s["up_to_date"]
            else "differs from what `aiwg autostart enable` writes now (run it to update)"
        )
        lines = [f"{s['name']}: {s['path']} ({fresh})"]
    lines.append(f"{s['tool']}: " + "; ".join(f"{k}: {v}" for k, v in s["manager"].items()))
    lines.append("daemon: " + ("answers on its socket" if s["answers"] else "not answering"))
    if s["note"]:
        lines.append(s["note"])
    return "\n".join(lines)


@autostart_app.command()
def status(platform: Platform = None, root: Root = None, json_out: Json = False) -> None:
    """What is installed, whether it is current, whether it runs and answers."""
    from aiwgd.autostart import install

    result = install.status(_agent(root, platform))
    emit(result, want_json(json_out), render_status(result))


def register(app: typer.Typer) -> None:
    app.add_typer(autostart_app, name="autostart")
