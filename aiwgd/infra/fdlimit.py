"""The open-files limit: raise the soft one toward the hard one at start.

A soft limit of 1,024 is common while the hard one is far higher; a daemon that holds a
socket per client, a pipe, a pidfd and a log per running task, and its own files, uses
what it may. The raise is capped (MAX_SOFT): children inherit the soft limit, and some
programs still loop over every possible descriptor or use select().
"""

from __future__ import annotations

import logging

log = logging.getLogger("aiwgd.fdlimit")

MAX_SOFT = 65_536


def raise_open_files_limit(cap: int = MAX_SOFT) -> int:
    """Raise RLIMIT_NOFILE's soft limit toward the hard one (at most `cap`); the soft
    limit now in force (a large number where the platform has no such limit)."""
    try:
        import resource
    except ImportError:  # not a Unix: nothing to raise
        return cap
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft >= target:
        return int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS refuses more than OPEN_MAX
        log.warning(
            "cannot raise the open-files limit",
            extra={"soft": soft, "hard": hard, "wanted": target, "error": str(exc)},
        )
        return int(soft)
    log.info("raised the open-files limit", extra={"soft": target, "was": soft, "hard": hard})
    return target
