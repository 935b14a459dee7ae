"""Load-time checks of `{{field}}` templates in action strings (syntax only).

Rendering lives in aiwgd/templates.py; this half is stdlib-only so the config model
(and the CLI's `aiwg config validate`) can reject a malformed placeholder with its key
path before the daemon ever runs the action.
"""

from __future__ import annotations

import re
from typing import Any

ROOTS = ("id", "type", "source", "time", "data")
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def template_error(text: str) -> str | None:
    """None if every placeholder in `text` is well formed, else the reason."""
    for m in PLACEHOLDER.finditer(text):
        path = m.group(1).strip()
        if not FIELD_PATH.match(path):
            return (
                f"has a malformed placeholder {m.group(0)!r} "
                "(a placeholder names an event field, e.g. {{data.path}})"
            )
        if path.split(".", 1)[0] not in ROOTS:
            return (
                f"has a placeholder {m.group(0)!r} naming no event field "
                f"(must start with one of {', '.join(ROOTS)})"
            )
    if "{{" in PLACEHOLDER.sub("", text):
        return "has an unclosed '{{' (a placeholder is written {{field}})"
    return None


def strings_in(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (key path, string) inside a JSON value."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in strings_in(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        sep = "." if path else ""
        return [s for k, v in value.items() for s in strings_in(v, f"{path}{sep}{k}")]
    return []
