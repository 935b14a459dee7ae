"""glibc's malloc arenas: at most two, set at start before any thread exists.

glibc gives each thread that allocates while another holds an arena a new arena (up to
8 per core), and memory freed in a thread's arena goes back to the system only from
the arena's top. The daemon's writer threads (event log, journal, dead letters, the
watcher's scan) encode task and event records of up to hundreds of KiB, so each grew
its own arena that fragmented and never shrank: RSS climbed by ~20 MiB per 200
large tasks while the Python heap stayed flat. The GIL already serialises nearly all
of these allocations, so more arenas buy no speed here. This is the tuning that
MALLOC_ARENA_MAX=2 gives, done in-process so that `make run`, `aiwg start`, systemd
and Docker all get it; a MALLOC_ARENA_MAX the user set wins. Nothing to do off glibc
(musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # from glibc's <malloc.h>
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas at `arenas`; whether the cap is now in force."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # glibc read the user's choice at start
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt, or no such tuning
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
