"""`aiwg service list|status|start|stop|restart|signal|logs`: the daemon's services.

NAME is a service (all its instances), one instance (`web:1`) or `all`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import EXIT_ERROR, Json, Root, client, emit, want_json

service_app = typer.Typer(
    no_args_is_help=True, help="List, start, stop, restart, signal services; show their logs."
)

Name = Annotated[str, typer.Argument(help="a service, an instance (web:1) or all")]
COLUMNS = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "MEMORY", "HEALTH")


def _mem(rss: Any) -> str:
    if not isinstance(rss, (int, float)):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if rss < 1024 or unit == "G":
            return f"{rss:.0f}{unit}" if unit == "B" else f"{rss:.1f}{unit}"
        rss /= 1024
    return "-"


def _row(s: dict[str, Any]) -> list[str]:
    cpu = s.get("cpu_percent")
    state = s["state"] + (f" ({s['reason']})" if s.get("state") == "waiting" else "")
    return [
        s["name"],
        state,
        str(s["pid"]) if s.get("pid") else "-",
        render.duration(s.get("uptime_s")),
        str(s.get("restarts", 0)),
        f"{cpu:.1f}%" if isinstance(cpu, (int, float)) else "-",
        _mem(s.get("rss_bytes")),
        str(s.get("health") or "unknown"),
    ]


def render_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no services (add them under services in .aiwg/daemon.json)"
    cells = [list(COLUMNS), *(_row(s) for s in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    cols = render.width()
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(render.fit(line, cols) for line in lines)


def render_detail(inst: dict[str, Any]) -> str:
    lines = [render_table([inst])]
    if inst.get("reason"):
        lines.append(f"reason:  {inst['reason']}")
    last = inst.get("last_exit")
    if last:
        lines.append(
            f"last exit: {last.get('reason')} (up {render.duration(last.get('uptime_s'))})"
        )
    lines.append(f"log:     {inst.get('log')}")
    history = inst.get("history") or []
    if history:
        lines.append("history (newest last):")
    for h in history[-10:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["time"]))
        extra = " ".join(
            f"{k}={h[k]}" for k in ("pid", "exit_code", "signal", "uptime_s") if k in h
        )
        lines.append(f"  {when}  {h['event']:<12} {h.get('reason', '')} {extra}".rstrip())
    return "\n".join(lines)


@service_app.command("list")
def _list(root: Root = None, json_out: Json = False) -> None:
    """Every service instance: state, pid, uptime, restarts, CPU, memory, health."""
    with client(root) as c:
        result = c.call("service.list")
    human = render_table(result["services"])
    for r in result.get("recovered") or []:
        human += f"\nstopped at start (left by a killed daemon): pid {r['pid']} of {r['instance']}"
    emit(result, want_json(json_out), human)


@service_app.command("status")
def _status(name: Name, root: Root = None, json_out: Json = False) -> None:
    """One service with its last exit and restart history."""
    with client(root) as c:
        result = c.call("service.get", name=name)
    emit(result, want_json(json_out), "\n\n".join(render_detail(i) for i in result["instances"]))


def _act(method: str, verb: str, name: str, root: str | None, json_out: bool) -> None:
    # A stop lasts as long as the slowest grace period: no quick timeout for it.
    with client(root, timeout=None if method == "service.stop" else "quick") as c:
        result = c.call(method, name=name)
    human = "\n".join(f"{i['name']}: {verb} ({i['state']})" for i in result["instances"])
    emit(result, want_json(json_out), human)


@service_app.command("start")
def _start(name: Name, root: Root = None, json_out: Json = False) -> None:
    """Start (lifts a gave_up and the start limit)."""
    _act("service.start", "start requested", name, root, json_out)


@service_app.command("stop")
def _stop(name: Name, root: Root = None, json_out: Json = False) -> None:
    """Stop down the ladder; returns once every process is gone."""
    _act("service.stop", "stopped", name, root, json_out)


@service_app.command("restart")
def _restart(
    name: Name,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="show each move until ready or failed")
    ] = True,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", min=0, metavar="SECONDS", help="then exit 1")
    ] = 60.0,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Stop and start again at once; exit 1 unless each instance ends ready."""
    if not wait:
        _act("service.restart", "restart requested", name, root, json_out)
        return
    from aiwgd.cli import servicewait

    servicewait.restart(root, name, want_json(json_out), wait_timeout)


@service_app.command("signal")
def _signal(
    name: Name,
    sig: Annotated[str, typer.Argument(metavar="SIGNAL", help="HUP, USR1, TERM, ...")],
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Send a signal to each running instance's process group."""
    with client(root) as c:
        result = c.call("service.signal", name=name, signal=sig)
    emit(result, want_json(json_out), f"sent {sig} to {', '.join(result['signalled'])}")


@service_app.command("logs")
def _logs(
    name: Name,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, max=200)] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing new lines (until Ctrl-C)")
    ] = False,
    root: Root = None,
) -> None:
    """The last lines of a service's output (the full log is in .aiwg/daemon/services/)."""
    if follow:
        _follow(name, lines, root)
        return
    with client(root) as c:
        result = c.call("service.logs", name=name, lines=lines)
    for line in result["lines"]:
        typer.echo(line)


def _follow(name: str, lines: int, root: str | None) -> None:
    """Print the tail, then each line the daemon sends, until Ctrl-C (exit 0).

    The daemon going away ends it with one line on stderr and exit != 0 (main.py turns
    the client's error into that); so does the end of the followed service (a reload).
    """
    try:
        with client(root, timeout=None) as c:
            result = c.call("service.logs", name=name, lines=lines, follow=True)
            for line in result["lines"]:
                typer.echo(line)
            for msg in c.notifications():
                if not _show(msg, str(result["name"])):
                    raise typer.Exit(EXIT_ERROR)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follow is meant to end


def _show(msg: dict[str, Any], name: str) -> bool:
    """Print one notification; False once the follow has ended."""
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "service.output":
        instance = params.get("instance")
        prefix = f"[{instance}] " if instance != name else ""
        typer.echo("\n".join(f"{prefix}{line}" for line in params.get("lines") or []))
    elif method == "service.output_dropped":
        typer.echo(f"aiwg: {params.get('message')}", err=True)
    elif method == "service.output_ended":
        typer.echo(f"aiwg: no longer following {name}: {params.get('reason')}", err=True)
        return False
    return True


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
