"""The files under `.aiwg/`: the config, their owner and modes, what a dead daemon left
behind, and the room left on their file system."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from aiwgd.cli.doctor.model import Context, Result, fail, ok, quote, skip, warn

MB = 1_048_576
DISK_FAIL_BYTES = 100 * MB
DISK_WARN_BYTES = 1024 * MB
WALK_BUDGET_S = 0.3  # a daemon dir with a huge task history is sampled, not read whole
LISTED = 3  # more paths than this and the fix is one find command instead


def check_config(ctx: Context) -> Result:
    path = ctx.paths.config_file
    if not ctx.config_exists:
        return ok("config", f"no {path} yet: the daemon writes the defaults at its first start")
    if ctx.config is None:
        return fail(
            "config",
            f"{path}: {ctx.config_error}",
            f"edit {path}, then check it with: aiwg config validate",
        )
    return ok("config", f"{path} is valid")


# ---- owner and modes -------------------------------------------------------------------


def _walk(top: Path, deadline: float) -> tuple[list[tuple[Path, os.stat_result]], bool]:
    """`top` and everything under it (no symlink followed); False if cut at the deadline."""
    found: list[tuple[Path, os.stat_result]] = []
    try:
        found.append((top, top.lstat()))
    except OSError:
        return found, True
    stack = [top] if stat.S_ISDIR(found[0][1].st_mode) else []
    while stack:
        if time.monotonic() > deadline:
            return found, False
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    found.append((Path(entry.path), st))
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return found, True


def _examined(ctx: Context) -> tuple[list[tuple[Path, os.stat_result]], bool]:
    """What the daemon writes: .aiwg itself, its config and PID file, .aiwg/daemon/ whole.
    Not .aiwg/worktrees/: checkouts of the project keep the project's own modes."""
    p = ctx.paths
    deadline = time.monotonic() + WALK_BUDGET_S
    out: list[tuple[Path, os.stat_result]] = []
    for path in (p.aiwg_dir, p.config_file, p.pid_file):
        try:
            out.append((path, path.lstat()))
        except OSError:
            continue
    below, complete = _walk(p.daemon_dir, deadline)
    return out + below, complete


def _fix_modes(ctx: Context, dirs: list[Path], files: list[Path]) -> str:
    if len(dirs) + len(files) > LISTED:
        top = ctx.paths.aiwg_dir
        return (
            f"find {quote(top)} -path {quote(top / 'worktrees')} -prune -o "
            "-perm /077 -exec chmod go-rwx {} +"
        )
    cmds = []
    if dirs:
        cmds.append(quote("chmod", "700", *dirs))
    if files:
        cmds.append(quote("chmod", "go-rwx", *files))
    return " && ".join(cmds)


def check_permissions(ctx: Context) -> Result:
    name = "permissions"
    if not ctx.paths.aiwg_dir.exists():
        return skip(name, f"no {ctx.paths.aiwg_dir} yet")
    entries, complete = _examined(ctx)
    foreign = [(p, st.st_uid) for p, st in entries if st.st_uid != ctx.uid]
    writable = [p for p, st in entries if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode)]
    readable = [(p, st) for p, st in entries if st.st_mode & 0o055 and not stat.S_ISLNK(st.st_mode)]
    note = "" if complete else f" (looked at the first {len(entries)} files only)"
    if foreign:
        path, uid = foreign[0]
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        return fail(
            name,
            f"{path}{more} is owned by uid {uid}, not you (uid {ctx.uid}){note}",
            quote("chown", "-R", ctx.uid, ctx.paths.aiwg_dir)
            + " && "
            + quote("chmod", "-R", "go-rwx", ctx.paths.daemon_dir),
        )
    if writable or readable:
        bad = writable or [p for p, _ in readable]
        modes = {p: st.st_mode for p, st in entries}
        first = bad[0]
        how = "write" if writable else "read"
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        message = (
            f"{first} is mode {stat.S_IMODE(modes[first]):04o}{more}: group or others can "
            f"{how} the daemon's files{note}"
        )
        # The fix covers every open path, the merely readable ones too: one line, done.
        every = sorted({*writable, *(p for p, _ in readable)})
        dirs = [p for p in every if stat.S_ISDIR(modes[p])]
        files = [p for p in every if not stat.S_ISDIR(modes[p])]
        fix = _fix_modes(ctx, dirs, files)
        return fail(name, message, fix) if writable else warn(name, message, fix)
    return ok(name, f"{len(entries)} paths under .aiwg are yours and private{note}")


# ---- what a dead daemon left -----------------------------------------------------------


def check_stale_files(ctx: Context) -> Result:
    from aiwgd.cli.daemonctl import read_pid

    name = "stale files"
    p = ctx.paths
    if ctx.daemon.pid is not None:
        return ok(name, "the PID file and socket belong to the running daemon")
    left: list[str] = []
    if p.pid_file.exists():
        pid = read_pid(p)
        left.append(f"{p.pid_file.name} (PID {pid if pid else 'unreadable'}, no daemon)")
    for path in (p.socket, p.state_file):
        if path.exists() or path.is_symlink():
            left.append(path.name)
    if not left:
        return ok(name, "none")
    paths = [x for x in (p.pid_file, p.socket, p.state_file) if x.exists() or x.is_symlink()]
    return warn(
        name,
        f"left by a daemon that is gone: {', '.join(left)}",
        f"aiwg start (or aiwg stop) removes them; or: {quote('rm', '-f', *paths)}",
    )


# ---- disk space ------------------------------------------------------------------------


def log_caps(ctx: Context) -> int:
    """Bytes the configured logs may take at most: the daemon's, the events', each
    service's (rotated files included) and a log per running task."""
    cfg = ctx.config
    if cfg is None:
        return 0
    d = cfg.daemon
    total = d.log.max_size_mb * MB * (d.log.max_files + 1)
    total += cfg.events.log_max_mb * MB * 3  # events.jsonl and two old files
    for svc in cfg.services.values():
        total += svc.log.max_size_mb * MB * (svc.log.max_files + 1) * svc.instances
    total += cfg.tasks.log_max_bytes * d.max_parallel_actions
    return int(total)


def _size(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / MB:.0f} MiB"


def check_disk(ctx: Context) -> Result:
    name = "disk space"
    where = ctx.paths.aiwg_dir if ctx.paths.aiwg_dir.exists() else ctx.paths.root
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return skip(name, f"cannot ask the file system of {where}: {exc.strerror}")
    caps = log_caps(ctx)
    fix = f"free space on the file system holding {where} (e.g. du -sh {quote(where)}/*)"
    if free < DISK_FAIL_BYTES:
        return fail(
            name,
            f"{_size(free)} free on {where}: the task store and logs fail to write below "
            f"{_size(DISK_FAIL_BYTES)}",
            fix,
        )
    if free < max(DISK_WARN_BYTES, caps):
        return warn(
            name,
            f"{_size(free)} free on {where}; the logs may grow to {_size(caps)} "
            f"(want {_size(max(DISK_WARN_BYTES, caps))})",
            fix + ", or lower the log caps in the config",
        )
    return ok(name, f"{_size(free)} free (logs capped at {_size(caps)})")
