"""Programs the monitor tests run as tasks (written into the project dir, run with the
test interpreter) and the config they run under."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.taskhelp import task_config

# Grows its memory in 8 MiB steps of written bytes (calloc'd pages would not count as
# RSS), saying so each step, up to `argv[1]` MiB; then waits to be killed.
GROW = """
import sys, time
chunks = []
for step in range(int(sys.argv[1]) // 8):
    chunks.append(b"x" * (8 << 20))
    print("grew to", 8 * (step + 1), "MiB", flush=True)
    time.sleep(0.02)
time.sleep(120)
"""

# Says one line, then nothing at all: a program waiting for input that never comes.
SILENT = """
import sys, time
print("waiting for input", flush=True)
time.sleep(120)
"""

# Talks every 0.05 s for `argv[1]` seconds, then exits 0.
CHATTY = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    print("still here", flush=True)
    time.sleep(0.05)
"""

# Holds 24 MiB, starts one child that sleeps, and waits until `argv[1]` exists.
HOLD = """
import os, subprocess, sys, time
data = b"x" * (24 << 20)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("holding", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
child.kill()
"""


def script(root: Path, name: str, text: str) -> list[str]:
    """argv running `text`, written as `root/name`."""
    path = root / name
    path.write_text(text)
    return [sys.executable, str(path)]


def monitor_config(**extra: Any) -> dict[str, Any]:
    """Samples every 0.1 s; a 0.5 s stop grace; the agent is the tests' program."""
    cfg = task_config(grace=0.5, monitor={"interval_s": 0.1})
    for key, value in extra.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


# Spins one core for `argv[1]` seconds (saying so every 0.1 s), then exits 0.
SPIN = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
said = 0.0
while (now := time.monotonic()) < end:
    if now - said > 0.1:
        print("spinning", flush=True)
        said = now
"""

# Opens files until the kernel refuses one; prints how many it opened and the error.
OPEN_FILES = """
import os
fds = []
try:
    while len(fds) < 10_000:
        fds.append(os.open(os.devnull, os.O_RDONLY))
except OSError as exc:
    print("refused after", len(fds), exc.errno == 24, flush=True)
"""
