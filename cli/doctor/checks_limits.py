"""Kernel limits the daemon lives within: open files, and inotify watches."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from aiwgd.cli.doctor.model import Context, Result, fail, ok, skip, warn
from aiwgd.infra.fdlimit import MAX_SOFT

# aiwgd/rpc/server.py's MAX_CONNECTIONS and connection_cap(): connections take at most
# half the open-files limit, up to this many. Not imported: that module loads asyncio
# and jsonrpcserver (tests/doctor/test_limits.py checks the two stay equal).
MAX_CONNECTIONS = 1024
MIN_CONNECTIONS = 8
FDS_PER_CHILD = 4  # output pipe, pidfd, log file, and a spare for the monitor's reads
FDS_BASE = 64  # the store, journal, logs, the socket, the watcher, Python itself

INOTIFY = Path("/proc/sys/fs/inotify")
WALK_BUDGET_S = 0.4  # a huge tree is counted as far as this goes: "at least N"
SYSCTL_CONF = "/etc/sysctl.d/90-aiwg-inotify.conf"
WATCHER_INSTANCES = 2


# ---- open files ------------------------------------------------------------------------


def _daemon_soft_limit(pid: int) -> int | None:
    """The running daemon's own soft RLIMIT_NOFILE, from /proc/<pid>/limits."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    m = re.search(r"^Max open files\s+(\S+)", text, re.MULTILINE)
    if m is None:
        return None
    return MAX_SOFT if m.group(1) == "unlimited" else int(m.group(1))


def _start_limit() -> tuple[int, int]:
    """(the soft limit a daemon started from here runs with, the hard limit): at start
    it raises the soft limit toward the hard one (aiwgd/infra/fdlimit.py)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_SOFT, MAX_SOFT
    target = MAX_SOFT if hard == resource.RLIM_INFINITY else min(hard, MAX_SOFT)
    shown_hard = MAX_SOFT if hard == resource.RLIM_INFINITY else hard
    return max(soft, target), shown_hard


def check_fd_limit(ctx: Context) -> Result:
    name = "open files limit"
    cfg = ctx.config
    tasks = cfg.daemon.max_parallel_actions if cfg is not None else 3
    services = sum(s.instances for s in cfg.services.values()) if cfg is not None else 0
    children = FDS_BASE + FDS_PER_CHILD * (tasks + services)
    pid = ctx.daemon.pid
    running = _daemon_soft_limit(pid) if pid is not None and pid > 0 else None
    if running is not None:
        limit, whose, hard = running, f"the daemon (PID {pid}) runs with", None
    else:
        limit, hard = _start_limit()
        whose = "a daemon started from here gets"
    cap = max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, limit // 2))
    need = 2 * max(children, MAX_CONNECTIONS)
    raise_it = (
        f"ulimit -n {need} in the shell that starts aiwg (raise the hard limit first if "
        f"it is lower: LimitNOFILE={need} in a systemd unit, nofile in "
        "/etc/security/limits.conf)"
    )
    if running is not None:
        raise_it += ", then aiwg restart"
    about = f"{whose} {limit} open files"
    if hard is not None and hard < limit * 2:
        about += f" (hard limit {hard})"
    if limit - cap < children:
        return fail(
            name,
            f"{about}: {cap} for connections leaves {limit - cap}, and {tasks} tasks and "
            f"{services} services need about {children}",
            raise_it,
        )
    if cap < MAX_CONNECTIONS:
        return warn(
            name,
            f"{about}: the connection cap is {cap} (half the limit) instead of {MAX_CONNECTIONS}",
            raise_it,
        )
    return ok(name, f"{about}: {cap} connections and {limit - cap} for tasks and services")


# ---- inotify ---------------------------------------------------------------------------


def inotify_limits(where: Path = INOTIFY) -> tuple[int, int] | None:
    """(max_user_watches, max_user_instances), or None where there is no inotify."""
    try:
        watches = int((where / "max_user_watches").read_text())
        instances = int((where / "max_user_instances").read_text())
    except (OSError, ValueError):
        return None
    return watches, instances


def watched_roots(ctx: Context) -> list[str]:
    """The directories the watcher watches recursively (aiwgd/watch/watcher.py's plan:
    existing directory entries, nested ones folded into their ancestor)."""
    cfg = ctx.config
    assert cfg is not None
    root = str(ctx.paths.root)
    dirs = {os.path.normpath(os.path.join(root, p.path)) for p in cfg.watch.paths}
    dirs = {d for d in dirs if os.path.isdir(d)}
    return sorted(d for d in dirs if not any(d.startswith(o + "/") for o in dirs if o != d))


def count_dirs(tops: list[str], deadline: float) -> tuple[int, bool]:
    """Directories in the trees (each costs one inotify watch: the recursive watch takes
    every one, ignored or not, since ignores apply to events, not to watches); False if
    the count stopped at the deadline."""
    count, stack = 0, list(tops)
    while stack:
        if time.monotonic() > deadline:
            return count, False
        count += 1
        try:
            with os.scandir(stack.pop()) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return count, True


def instances_in_use(uid: int, deadline: float) -> int:
    """inotify instances the processes of `uid` hold (the limit is per user): their
    descriptors that are inotify instances, as far as the deadline lets us look."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        if time.monotonic() > deadline:
            break
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/{name}/fd/{fd}") == "anon_inode:inotify"
    return count


def check_inotify(ctx: Context) -> Result:
    name = "inotify"
    cfg = ctx.config
    if cfg is None:
        return skip(name, "the config is invalid (see config)")
    if not cfg.watch.enabled:
        return skip(name, "watch.enabled is false")
    limits = inotify_limits()
    if limits is None:
        return skip(name, f"no {INOTIFY} here (not Linux): nothing to check")
    watches, instances = limits
    tops = watched_roots(ctx)
    if not tops:
        return ok(name, "no watched directory exists yet")
    dirs, complete = count_dirs(tops, time.monotonic() + WALK_BUDGET_S)
    counted = f"{dirs} directories" if complete else f"at least {dirs} directories"
    want = max(524_288, 1 << (2 * dirs).bit_length())
    fix = (
        f"sudo sysctl fs.inotify.max_user_watches={want} (and put "
        f"fs.inotify.max_user_watches={want} in {SYSCTL_CONF} to keep it)"
    )
    if dirs > watches:
        return fail(
            name,
            f"the watched trees hold {counted}, over fs.inotify.max_user_watches={watches}: "
            "the watch fails",
            fix,
        )
    if dirs * 2 > watches:
        return warn(
            name,
            f"the watched trees hold {counted}, over half of "
            f"fs.inotify.max_user_watches={watches} (editors and other watchers share it)",
            fix,
        )
    # The watcher's recursive watch and its watch of parents; a running daemon has them.
    needed = 0 if ctx.daemon.pid is not None else WATCHER_INSTANCES
    used = instances_in_use(ctx.uid, time.monotonic() + WALK_BUDGET_S)
    if used + needed > instances:
        want = max(128, 2 * (used + needed))
        return fail(
            name,
            f"your processes hold {used} inotify instances of "
            f"fs.inotify.max_user_instances={instances}; the watcher needs {needed} more",
            f"sudo sysctl fs.inotify.max_user_instances={want} (and put it in {SYSCTL_CONF})",
        )
    return ok(name, f"{counted} watched; max_user_watches={watches}")
