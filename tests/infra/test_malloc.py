"""The daemon caps glibc's malloc arenas at start (infra/malloc.py).

Each writer thread otherwise grew an arena of its own that never shrank: RSS climbed
with every large task while the Python heap stayed flat (tests/rpc/test_memory_bounds
sees the result). Checked here in a fresh interpreter, as the daemon's main() does it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from aiwgd.infra.malloc import limit_arenas; print(limit_arenas())"


def probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="arenas are a glibc tuning")
def test_arenas_are_capped_on_glibc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert probe(env) == "True"


def test_a_users_malloc_arena_max_wins() -> None:
    assert probe({**os.environ, "MALLOC_ARENA_MAX": "8"}) == "False"
