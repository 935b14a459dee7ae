"""`{{data.path}}` templates in action strings, resolved from an event.

A template is plain text with `{{ dotted.path }}` placeholders. A placeholder names a
field of the event (`id`, `type`, `source`, `time`, `data...`); it is looked up, never
evaluated: there are no expressions, filters or calls. A missing field is an error
(TemplateError), so an action never runs with a silently empty argument.

Values are substituted into one string at a time. For a command (argv list) each
element is rendered on its own, so a value containing spaces or quotes stays inside
its own argument; nothing here ever builds a shell string. The syntax check used at
config load time lives in config/templates.py.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aiwgd.config.templates import FIELD_PATH, PLACEHOLDER, template_error

__all__ = ["TemplateError", "lookup", "render", "render_argv", "render_data", "template_error"]

_WHOLE = re.compile(r"^\{\{([^{}]*)\}\}$")


class TemplateError(ValueError):
    """A placeholder could not be resolved (or is malformed)."""


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path (`data.items.0` indexes lists), or raise KeyError."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(path)
    return cur


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Numbers, booleans, null, lists and objects in their JSON spelling.
    return json.dumps(value, separators=(",", ":"), default=str)


def _field(placeholder: str, inner: str, event: dict[str, Any]) -> Any:
    path = inner.strip()
    if not FIELD_PATH.match(path):
        raise TemplateError(f"malformed placeholder {placeholder!r}")
    try:
        return lookup(event, path)
    except KeyError:
        raise TemplateError(
            f"{placeholder}: the event has no field {path!r} "
            f"(event type {event.get('type')!r}, id {event.get('id')!r})"
        ) from None


def render(text: str, event: dict[str, Any]) -> str:
    """`text` with each `{{field}}` replaced by the event's value; TemplateError if missing."""
    if "{{" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: _text(_field(m.group(0), m.group(1), event)), text)


def render_argv(argv: list[str], event: dict[str, Any]) -> list[str]:
    """Each argument rendered on its own: a value never spills into another argument.

    A value never becomes an option either: an argument whose leading `-` came from the
    event (`"{{data.path}}"` for a file named `--version`) is a TemplateError, unless an
    earlier argument is a literal `--`, after which programs read arguments as operands.
    A dash the rule's author wrote (`"--file={{data.path}}"`, `"-{{x}}"`) is theirs.
    """
    out: list[str] = []
    operands = False
    for i, arg in enumerate(argv):
        text = render(arg, event)
        if text.startswith("-") and not arg.startswith("-") and not operands:
            raise TemplateError(_option_error(i, arg, text, out[0] if out else text))
        operands = operands or arg == "--"
        out.append(text)
    return out


def _option_error(index: int, arg: str, text: str, program: str) -> str:
    name = os.path.basename(program) or program
    example = json.dumps([name, "--", arg])
    return (
        f"command[{index}]: {json.dumps(arg)} gives {json.dumps(text)}, which {name} (or "
        "a program it hands it to) may take for an option, so the action does not run; "
        f'put "--" before it ({example}) if {name} reads what follows as operands, or '
        'prefix the value ("./{{data.path}}" for a relative path)'
    )


def render_data(value: Any, event: dict[str, Any]) -> Any:
    """Render every string inside a JSON value; dict keys stay as written.

    A string that is exactly one placeholder keeps the field's JSON type
    (`"{{data.count}}"` gives 3, not "3"), so emitted data stays typed.
    """
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return _field(value, whole.group(1), event)
        return render(value, event)
    if isinstance(value, list):
        return [render_data(v, event) for v in value]
    if isinstance(value, dict):
        return {k: render_data(v, event) for k, v in value.items()}
    return value
