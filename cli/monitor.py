"""`aiwg monitor [--system] [--json]`: each task and service process tree's use of the
machine (monitor.processes), or the machine itself (monitor.system)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import Json, Root, client, emit, want_json

System = Annotated[
    bool, typer.Option("--system", help="the machine: memory, swap, CPU, load, disk")
]

HEADER = ("OWNER", "PID", "PROCS", "CPU%", "RSS", "FDS", "THR", "RUNTIME", "SILENT", "LIMITS")


def size(n: Any) -> str:
    """Bytes for people: 512K, 37.2M, 1.5G ("-" when unknown)."""
    if not isinstance(n, int):
        return "-"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def _limits(limits: dict[str, Any] | None) -> str:
    if not limits:
        return "-"
    short = {
        "memory_mb": "mem={}M",
        "cpu_percent": "cpu={}%",
        "max_runtime_s": "run={}s",
        "max_fds": "fds={}",
        "no_output_s": "silent={}s",
    }
    parts = [f.format(f"{limits[k]:g}") for k, f in short.items() if limits.get(k) is not None]
    return " ".join(parts) or "-"


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def render_processes(result: dict[str, Any], columns: int | None) -> str:
    rows = result.get("processes", [])
    if not rows:
        return "no task or service process is running"
    table = [HEADER]
    for r in rows:
        table.append(
            (
                r["owner"],
                str(r["pid"]),
                _cell(r.get("processes")),
                _cell(r.get("cpu_percent")),
                size(r.get("rss_bytes")),
                _cell(r.get("fds")),
                _cell(r.get("threads")),
                render.duration(r.get("runtime_s")),
                render.duration(r.get("last_output_s_ago")),
                _limits(r.get("limits")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(render.fit(line.rstrip(), columns) for line in lines)


def render_system(s: dict[str, Any]) -> str:
    mem, swap, cpu, disk = s["memory"], s["swap"], s["cpu"], s["disk"]
    cores = " ".join(f"{p:g}" for p in cpu["per_core_percent"])
    load = " ".join(f"{x:g}" for x in s["load_average"])
    return "\n".join(
        [
            f"memory  {size(mem['available_bytes'])} free of {size(mem['total_bytes'])} "
            f"({mem['used_percent']:g}% used)",
            f"swap    {size(swap['used_bytes'])} used of {size(swap['total_bytes'])}",
            f"cpu     {cpu['percent']:g}% over {cpu['cores']} cores: {cores}",
            f"load    {load}",
            f"disk    {size(disk['free_bytes'])} free of {size(disk['total_bytes'])} "
            f"under {disk['path']}",
        ]
    )


def monitor(system: System = False, root: Root = None, json_out: Json = False) -> None:
    """What each task and service process tree uses; --system: the machine."""
    with client(root) as c:
        if system:
            result = c.call("monitor.system")
            human = render_system(result)
        else:
            result = c.call("monitor.processes")
            human = render_processes(result, render.width())
    emit(result, want_json(json_out), human)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
