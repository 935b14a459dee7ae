"""Every check, in the order the report lists them, run side by side.

The slow ones wait on something outside (a ping, an agent's --help, git, a walk of the
watched tree), each with its own time limit; threads let those waits overlap, so the
whole report takes about as long as the slowest check, not their sum.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiwgd.cli.doctor import checks_agent, checks_daemon, checks_env, checks_files, checks_limits
from aiwgd.cli.doctor.model import Check, Context, Result, Status

CHECKS: tuple[tuple[str, Check], ...] = (
    ("python", checks_env.check_python),
    ("dependencies", checks_env.check_dependencies),
    ("config", checks_files.check_config),
    ("permissions", checks_files.check_permissions),
    ("stale files", checks_files.check_stale_files),
    ("daemon", checks_daemon.check_daemon),
    ("leftover processes", checks_daemon.check_leftovers),
    ("open files limit", checks_limits.check_fd_limit),
    ("inotify", checks_limits.check_inotify),
    ("agent", checks_agent.check_agent),
    ("git", checks_agent.check_git),
    ("disk space", checks_files.check_disk),
    ("clock", checks_env.check_clock),
)


def _guarded(name: str, check: Check, ctx: Context) -> Result:
    """A check that breaks is reported as broken; it must not hide the others."""
    try:
        return check(ctx)
    except Exception as exc:
        return Result(
            name,
            Status.FAIL,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "report this as an aiwg bug",
        )


def run_all(ctx: Context) -> list[Result]:
    with ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="doctor") as pool:
        futures = [pool.submit(_guarded, name, check, ctx) for name, check in CHECKS]
        return [f.result() for f in futures]
