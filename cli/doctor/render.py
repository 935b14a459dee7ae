"""The doctor's report: a list a person reads, or one JSON document."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from aiwgd.cli.doctor.model import Result, Status

FANCY = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-"}
PLAIN = {Status.OK: "[ok]  ", Status.WARN: "[warn]", Status.FAIL: "[FAIL]", Status.SKIP: "[skip]"}


def fancy(stream: TextIO) -> bool:
    """Marks for a terminal that can show them; ASCII for pipes, files and the rest."""
    encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
    return stream.isatty() and encoding == "utf8"


def all_ok(results: list[Result]) -> bool:
    return not any(r.status is Status.FAIL for r in results)


def text(results: list[Result], marks: dict[Status, str]) -> str:
    width = max(len(r.name) for r in results)
    pad = " " * (len(marks[Status.OK]) + 1 + width + 2)
    lines = []
    for r in results:
        lines.append(f"{marks[r.status]} {r.name:<{width}}  {r.message}")
        if r.fix and r.status in (Status.WARN, Status.FAIL):
            lines.append(f"{pad}fix: {r.fix}")
    counts = {s: sum(r.status is s for r in results) for s in Status}
    warns = counts[Status.WARN]
    lines.append(
        f"{counts[Status.FAIL]} failed, {warns} warning{'' if warns == 1 else 's'}, "
        f"{counts[Status.OK]} ok, {counts[Status.SKIP]} skipped"
    )
    return "\n".join(lines)


def document(results: list[Result]) -> str:
    return json.dumps({"ok": all_ok(results), "checks": [r.to_dict() for r in results]}, indent=2)


def human(results: list[Result], stream: TextIO = sys.stdout) -> str:
    return text(results, FANCY if fancy(stream) else PLAIN)
