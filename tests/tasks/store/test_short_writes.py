"""The journal's write path against real short writes (RLIMIT_FSIZE in a child process).

The kernel takes part of a write, then refuses the rest: a store that trusted the first
count acknowledged a line that is not on disk. Here every acknowledged change must be
found after reopening, every refused one nowhere (not in memory, not in the journal),
and the store must take writes again once the limit is lifted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.utils import env_for_tests


def test_short_writes_are_never_acknowledged_and_leave_nothing_behind(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.tasks.store.fsize_child", str(project)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for_tests(),
    )
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert len(r["acked"]) >= 4 and r["refused"], r  # the limit cut a line short
    assert all("cannot write to disk" in m and "too large" in m for m in r["messages"]), r
    assert r["journal_ends_whole"], "a refused line left part of itself in the journal"
    assert r["refused_in_memory"] == []
    assert r["update_refused"] and r["update_undone"]
    assert "File too large" in (r["error_while_full"] or "")
    assert r["error_after"] is None  # cleared by the next write that worked
    assert r["found"] == r["acked"], "an acknowledged task was lost"
    assert r["refused_found"] == []
    assert r["tail_after_reopen"] == r["tail_acknowledged"] == "done"
    rec = r["recovery"]
    assert rec["torn_bytes"] == 0 and rec["bad_journal_lines"] == [], rec
    assert rec["damaged_journal"] is None
