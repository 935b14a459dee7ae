"""Stand-ins for `systemctl` and `launchctl`, put first on PATH by the tests.

A mock, not the real tools: this container has no systemd user manager (`systemctl
--user` answers "Failed to connect to bus") and launchd does not exist on Linux. Each
records its argv as a JSON line in $FAKE_LOG and keeps what is enabled or loaded as
files in $FAKE_STATE, so enable, disable and status see a consistent manager.
$FAKE_FAIL: a command whose argv contains it prints $FAKE_FAIL_MSG and exits 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SCRIPT = """\
import json, os, sys
from pathlib import Path

tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\\n")
fail = os.environ.get("FAKE_FAIL")
if fail and fail in " ".join(args):
    print(os.environ.get("FAKE_FAIL_MSG", "failed"), file=sys.stderr)
    sys.exit(1)
state = Path(os.environ["FAKE_STATE"])
if tool == "systemctl":
    verb, name = args[1], args[-1]
    mark = state / (name + ".enabled")
    if verb == "enable":
        mark.touch()
    elif verb == "disable":
        mark.unlink(missing_ok=True)
    elif verb == "is-enabled":
        print("enabled" if mark.exists() else "disabled")
        sys.exit(0 if mark.exists() else 1)
    elif verb == "is-active":
        print("active" if mark.exists() else "inactive")
        sys.exit(0 if mark.exists() else 3)
elif tool == "launchctl":
    verb, target = args[0], args[-1]
    label = Path(target).stem if verb == "bootstrap" else target.rsplit("/", 1)[-1]
    mark = state / (label + ".loaded")
    if verb == "bootstrap":
        mark.touch()
    elif verb == "bootout":
        mark.unlink()
    elif verb == "print":
        if not mark.exists():
            print("Could not find service", file=sys.stderr)
            sys.exit(113)
        print(target + " = {\\n\\tstate = running\\n\\tpid = 4242\\n}")
"""


def install_fakes(where: Path, tools: tuple[str, ...] = ("systemctl", "launchctl")) -> Path:
    """Write the fake tools into `where`/bin; returns that directory."""
    bin_dir = where / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (where / "state").mkdir(exist_ok=True)
    for tool in tools:
        path = bin_dir / tool
        path.write_text(f"#!{sys.executable}\n{SCRIPT}")
        os.chmod(path, 0o755)
    return bin_dir
