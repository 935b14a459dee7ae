"""The daemon itself: does it answer, and did a dead one leave processes running."""

from __future__ import annotations

from aiwgd.cli.doctor.model import Context, Result, fail, ok, quote, skip

SHOWN = 3  # processes named in a message; the rest are counted


def check_daemon(ctx: Context) -> Result:
    name = "daemon"
    facts = ctx.daemon
    sock = ctx.paths.socket
    log = ctx.paths.log_file
    if facts.answered:
        pid = f"PID {facts.pid}" if facts.pid and facts.pid > 0 else "PID unknown"
        return ok(name, f"running ({pid}), answered ping in {facts.ping_ms:.0f} ms")
    if facts.pid is not None:
        kill = quote("kill", "-TERM", facts.pid) if facts.pid > 0 else "aiwg stop"
        return fail(
            name,
            f"running (PID {facts.pid}) but not answering on {sock}: {facts.error}",
            f"look at {log}; then aiwg restart (or {kill})",
        )
    if sock.exists() or sock.is_symlink():
        return fail(
            name,
            f"not running, yet {sock} exists and nobody answers on it",
            f"aiwg start (it removes the dead socket); or: {quote('rm', '-f', sock)}",
        )
    return ok(name, "not running (aiwg start starts it)")


def check_leftovers(ctx: Context) -> Result:
    name = "leftover processes"
    if ctx.daemon.pid is not None:
        return skip(name, "the daemon is running: what runs is its own")
    from aiwgd.cli import leftovers

    left = leftovers.find(ctx.paths)
    if not left:
        return ok(name, "no task or service process of a dead daemon is running")
    shown = []
    for p in left[:SHOWN]:
        owner = f"service {p.service}" if p.service else f"task {p.task}"
        shown.append(f"pid {p.pid} ({p.name}, {owner})")
    more = f" and {len(left) - SHOWN} more" if len(left) > SHOWN else ""
    pids = [p.pid for p in left]
    return fail(
        name,
        f"{len(left)} process{'es' if len(left) > 1 else ''} left running by a dead "
        f"daemon: {', '.join(shown)}{more}",
        f"aiwg stop (or aiwg start) stops them; or: {quote('kill', '-TERM', *pids)}",
    )
