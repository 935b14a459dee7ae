"""What `aiwgd`'s exit status says: a container runtime, systemd or launchd sees only it.

0   EXIT_CLEAN     stopped cleanly: every task and service ended within its grace
                   period (SIGTERM sufficed) and the state was written
1   EXIT_REFUSED   did not start: bad config, another daemon running, a subsystem
                   that could not start (the reason is on stderr, one line)
2   EXIT_UNCLEAN   stopped, but not cleanly: something needed SIGKILL (it outlived
                   the grace period, or a second SIGTERM asked for a fast stop), or
                   the stop logged an error (a subsystem failed to stop, a write
                   failed); the last log line, "stopped", lists them
130 (SIGINT before the daemon's own handlers are installed: Python's convention)

A stop by SIGTERM or SIGINT is a requested stop, not a failure: it exits 0 when clean,
not 143/130, so `restart: on-failure` and `docker wait` tell a clean stop apart.
"""

from __future__ import annotations

EXIT_CLEAN = 0
EXIT_REFUSED = 1
EXIT_UNCLEAN = 2
