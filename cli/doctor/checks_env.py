"""The interpreter, the installed dependencies, and the clocks.

The bounds come from the installed distribution's metadata (Requires-Python and
Requires-Dist, which pyproject.toml's `dependencies` become), never from a copy here: a
release that raises a bound is checked against the new one.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from aiwgd.cli.doctor.model import Context, Result, fail, ok, quote, skip, warn

DIST = "aiwgd"
# A clock before this cannot be right: no aiwgd existed yet. The package's own files'
# times can only raise it (they were written by a clock, maybe this one).
EPOCH_FLOOR = 1_735_689_600  # 2025-01-01 UTC
MTIME_SLACK_S = 86_400
CLOCK_SAMPLE_S = 0.1  # wall and monotonic time compared over this
CLOCK_SLACK_S = 0.25  # more disagreement than this over the sample: a step or a slew storm
HEARTBEAT_SLACK_S = 5.0

_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")
_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;]+)\s*$")


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version ("5.0.9" -> (5, 0, 9)); a pre/post/dev suffix is
    dropped: bounds here are plain releases."""
    out = []
    for part in version.split("+")[0].split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        out.append(int(digits.group()))
        if digits.end() < len(part):
            break  # "0rc1": the rest is a pre-release tag
    return tuple(out)


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


def satisfies(version: str, clauses: str) -> bool | None:
    """Whether `version` meets a specifier list (">=0.21,<2"); None if one is unreadable."""
    have = release(version)
    for clause in filter(None, (c.strip() for c in clauses.split(","))):
        m = _CLAUSE.match(clause)
        if m is None or not release(m.group(2)):
            return None
        op, want = m.group(1), release(m.group(2))
        c = _cmp(have, want)
        if op == "~=":
            good = c >= 0 and have[: len(want) - 1] == want[:-1]
        else:
            good = {
                "==": c == 0,
                "===": c == 0,
                "!=": c != 0,
                "<=": c <= 0,
                ">=": c >= 0,
                "<": c < 0,
                ">": c > 0,
            }[op]
        if not good:
            return False
    return True


def check_python(ctx: Context) -> Result:
    from importlib.metadata import PackageNotFoundError, metadata

    have = ".".join(map(str, sys.version_info[:3]))
    try:
        needs = metadata(DIST)["Requires-Python"] or ">=3.11"
    except PackageNotFoundError:
        needs = ">=3.11"  # a source tree never installed: pyproject's value
    if satisfies(have, needs) is False:
        return fail(
            "python",
            f"Python {have} at {sys.executable}; aiwgd needs {needs}",
            f"install Python {needs.lstrip('>=~')} or newer and reinstall aiwgd with it",
        )
    return ok("python", f"Python {have} (needs {needs})")


def check_dependencies(ctx: Context) -> Result:
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        wanted = requires(DIST) or []
    except PackageNotFoundError:
        return skip("dependencies", f"{DIST} is not installed (no metadata to read bounds from)")
    problems: list[str] = []
    fixes: list[str] = []
    seen = 0
    for line in wanted:
        if ";" in line:
            continue  # extras (test, bench) and markers: not what the daemon needs
        m = _SPEC.match(line)
        if m is None:
            continue
        name, clauses = m.group(1), m.group(2).strip()
        seen += 1
        try:
            have = version(name)
        except PackageNotFoundError:
            problems.append(f"{name} is not installed")
            fixes.append(f"{name}{clauses}")
            continue
        if satisfies(have, clauses) is False:
            problems.append(f"{name} {have} does not meet {clauses}")
            fixes.append(f"{name}{clauses}")
    if problems:
        return fail(
            "dependencies",
            "; ".join(problems),
            quote(sys.executable, "-m", "pip", "install", *fixes),
        )
    return ok("dependencies", f"{seen} dependencies meet the bounds {DIST} declares")


def _built_at() -> float:
    """A time before which this machine's clock cannot be: the floor, or the newest
    mtime among the package's own files less a day (a file server's clock may run a
    little ahead of ours) when later."""
    import aiwgd

    here = Path(aiwgd.__file__).parent
    times = [EPOCH_FLOOR]
    for name in ("__init__.py", "daemon.py", "client.py"):
        try:
            times.append(int((here / name).stat().st_mtime - MTIME_SLACK_S))
        except OSError:
            continue
    return float(max(times))


def _heartbeat(ctx: Context, now: float) -> str | None:
    """What the running daemon's last heartbeat says about the wall clock, if anything."""
    if ctx.daemon.pid is None:
        return None
    try:
        state = json.loads(ctx.paths.state_file.read_text())
        beat = float(state["heartbeat_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    interval = 30.0
    cfg = ctx.config
    if cfg is not None:
        interval = float(cfg.daemon.heartbeat_interval_seconds)
    if beat > now + HEARTBEAT_SLACK_S:
        return (
            f"the daemon's last heartbeat is {beat - now:.0f}s in the future: the wall "
            "clock went back since"
        )
    if now - beat > 2 * interval + HEARTBEAT_SLACK_S:
        return (
            f"the daemon's last heartbeat is {now - beat:.0f}s old (every {interval:g}s "
            "expected): the daemon is stalled or the wall clock jumped forward"
        )
    return None


def check_clock(ctx: Context) -> Result:
    wall0, mono0 = time.time(), time.monotonic()
    time.sleep(CLOCK_SAMPLE_S)  # runs beside the other checks: costs no wall time
    wall1, mono1 = time.time(), time.monotonic()
    drift = (wall1 - wall0) - (mono1 - mono0)
    return judge_clock(drift, wall1, _built_at(), _heartbeat(ctx, wall1))


def judge_clock(drift: float, wall: float, floor: float, heartbeat: str | None) -> Result:
    """The verdict on what the clocks said: `drift`, the wall clock's lead over the
    monotonic one across the sample; `wall`, its reading; `floor`, a time it cannot be
    before; `heartbeat`, what the daemon's last heartbeat says (None: nothing wrong)."""
    fix = "enable time sync (timedatectl set-ntp true, or chrony/ntpd) and check the date"
    if abs(drift) > CLOCK_SLACK_S:
        return warn(
            "clock",
            f"the wall clock moved {drift:+.2f}s against the monotonic clock in "
            f"{CLOCK_SAMPLE_S:g}s: it is being stepped",
            fix,
        )
    if wall < floor:
        shown = time.strftime("%Y-%m-%d", time.gmtime(wall))
        built = time.strftime("%Y-%m-%d", time.gmtime(floor))
        return fail("clock", f"the wall clock says {shown}, before aiwgd was built ({built})", fix)
    if heartbeat is not None:
        return warn("clock", heartbeat, fix)
    return ok("clock", "wall and monotonic clocks agree")
