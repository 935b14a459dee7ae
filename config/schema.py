"""A small declarative validator: dataclasses in, precise errors out.

Config sections and RPC params are both dataclasses whose fields carry their rules
(range, choices, a check function). `parse()` turns JSON data into an instance or raises
`ValidationError` listing *every* problem with its key path, the bad value and what is
allowed; `json_schema()` describes the same class for `rpc.discover`. Stdlib only, so
the CLI can import it cheaply.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, Literal, Union

# A check returns None when the value is fine, else a reason ("is not a valid cron
# expression"). It runs after the type check, so it sees a value of the right type.
Check = Callable[[Any], str | None]

# Every number and string is bounded, even where a field names no range of its own.
# Integers past what every JSON peer holds exactly (2^53 - 1) reached float(), islice()
# and seek() unchecked and crashed there (a 400-digit timeout_s, an offset of 2^63); a
# float must be finite (a config file may say NaN, which passes every < and >).
MAX_SAFE_INT = 2**53 - 1
# The longest string Linux takes as one argv element or env value (MAX_ARG_STRLEN, with
# its NUL): no field needs more, and every check then sees a string of bounded size.
MAX_STR = 131_072


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """Raised with every issue found, not just the first."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


def regex(value: str) -> str | None:
    """A check: `value` compiles as a Python regular expression."""
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return None


def spec(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    check: Check | None = None,
    doc: str = "",
    min_len: int | None = None,
    max_len: int | None = None,
) -> Any:
    """A dataclass field with validation rules attached."""
    meta = {
        "ge": ge,
        "le": le,
        "gt": gt,
        "choices": choices,
        "check": check,
        "doc": doc,
        "min_len": min_len,
        "max_len": max_len,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def show(value: Any) -> str:
    """Render a bad value for an error message, kept short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_JSON_TYPE = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return "an object"
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "an object"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    return _JSON_TYPE.get(tp, getattr(tp, "__name__", str(tp)))


class _Parser:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def value(self, tp: Any, data: Any, path: str, meta: Any = None) -> Any:
        """`data` as a `tp`; `meta` holds the field's own rules (None: an item)."""
        if tp is Any:
            return data
        if tp is str:
            if not isinstance(data, str):
                return self._wrong(tp, data, path)
            # A field's own max_len replaces the default; its check runs first (it says
            # more, e.g. a prompt's limit in bytes) and rules() applies the default after.
            if len(data) > MAX_STR and not (meta and (meta.get("max_len") or meta.get("check"))):
                return self._too_long(data, path)
            return data
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            return self.obj(tp, data, path)
        if origin in (Union, types.UnionType):
            return self.union(tp, args, data, path, meta)
        if origin is Literal:
            if data in args and type(data) is type(args[args.index(data)]):
                return data
            self.fail(path, f"{show(data)} is not allowed (must be {_describe(tp)})")
            return None
        if origin is list:
            if not isinstance(data, list):
                self.fail(path, f"{show(data)} is not {_describe(tp)}")
                return None
            return [self.value(args[0], item, join(path, i)) for i, item in enumerate(data)]
        if origin is dict:
            if not isinstance(data, dict):
                self.fail(path, f"{show(data)} is not an object")
                return None
            for key in data:
                if len(key) > MAX_STR:
                    self.fail(path, f"key {show(key)} is too long (at most {MAX_STR} characters)")
                    return None
            return {k: self.value(args[1], v, join(path, k)) for k, v in data.items()}
        if tp is float or tp is int:
            accepted = (int, float) if tp is float else int
            if isinstance(data, bool) or not isinstance(data, accepted):
                return self._wrong(tp, data, path)
            # Compared before any conversion: float(10**400) raises, and NaN fails both.
            if -MAX_SAFE_INT <= data <= MAX_SAFE_INT:
                return float(data) if tp is float else data
            return self._out_of_range(data, path, meta)
        if isinstance(data, tp):
            return data
        return self._wrong(tp, data, path)

    def _wrong(self, tp: Any, data: Any, path: str) -> None:
        self.fail(path, f"{show(data)} is not {_describe(tp)}")
        return None

    def _too_long(self, data: str, path: str) -> None:
        self.fail(path, f"{show(data)} is too long ({len(data)} characters, at most {MAX_STR})")
        return None

    def _out_of_range(self, data: Any, path: str, meta: Any) -> None:
        m = meta or {}
        if m.get("gt") is not None:
            low = f"> {m['gt']}"
        elif m.get("ge") is not None:
            low = f">= {m['ge']}"
        else:
            low = f">= {-MAX_SAFE_INT}"
        high = m["le"] if m.get("le") is not None else MAX_SAFE_INT
        self.fail(
            path, f"{show(data)} is out of range (must be a finite number {low} and <= {high})"
        )
        return None

    def union(self, tp: Any, args: tuple[Any, ...], data: Any, path: str, meta: Any = None) -> Any:
        if data is None and type(None) in args:
            return None
        # Pick the member matching the JSON type, so errors come from the right branch.
        for arg in args:
            if arg is type(None):
                continue
            if self._matches(arg, data):
                return self.value(arg, data, path, meta)
        self.fail(path, f"{show(data)} is not {_describe(tp)}")
        return None

    @staticmethod
    def _matches(tp: Any, data: Any) -> bool:
        origin = typing.get_origin(tp) or tp
        if dataclasses.is_dataclass(tp) or origin is dict:
            return isinstance(data, dict)
        if origin is list:
            return isinstance(data, list)
        if origin is Literal:
            return data in typing.get_args(tp)
        if tp is float:
            return isinstance(data, (int, float)) and not isinstance(data, bool)
        if tp is int:
            return isinstance(data, int) and not isinstance(data, bool)
        return tp is Any or isinstance(data, origin)

    def obj(self, cls: Any, data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            self.fail(path, f"{show(data)} is not an object")
            return None
        fields = _fields(cls)
        hints = _hints(cls)
        start = len(self.issues)
        for key in data:
            if key not in fields:
                self.fail(join(path, key), _unknown(key, list(fields)))
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    self.fail(join(path, name), "is required")
                continue
            sub = join(path, name)
            before = len(self.issues)
            val = self.value(hints[name], data[name], sub, f.metadata)
            if len(self.issues) == before:
                self.rules(f, val, sub)
            kwargs[name] = val
        if len(self.issues) > start:
            # A half-valid instance is never built: the caller raises anyway.
            return None
        inst = cls(**kwargs)
        check = getattr(inst, "validate", None)
        if callable(check):
            for sub, message in check():
                self.fail(join(path, sub) if sub else path, message)
        return inst

    def rules(self, f: dataclasses.Field[Any], val: Any, path: str) -> None:
        m = f.metadata
        if not m or val is None:
            return
        if m.get("choices") is not None and val not in m["choices"]:
            allowed = ", ".join(json.dumps(c) for c in m["choices"])
            self.fail(path, f"{show(val)} is not allowed (must be one of {allowed})")
            return
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            if m.get("ge") is not None and val < m["ge"]:
                self.fail(path, f"{show(val)} is out of range (must be >= {m['ge']})")
            if m.get("gt") is not None and val <= m["gt"]:
                self.fail(path, f"{show(val)} is out of range (must be > {m['gt']})")
            if m.get("le") is not None and val > m["le"]:
                self.fail(path, f"{show(val)} is out of range (must be <= {m['le']})")
        if isinstance(val, (str, list)):
            if m.get("min_len") is not None and len(val) < m["min_len"]:
                what = "characters" if isinstance(val, str) else "items"
                self.fail(path, f"must have at least {m['min_len']} {what}")
            if m.get("max_len") is not None and len(val) > m["max_len"]:
                what = "characters" if isinstance(val, str) else "items"
                self.fail(path, f"is too long ({len(val)} {what}, at most {m['max_len']})")
        if m.get("check") is not None:
            reason = m["check"](val)
            if reason:
                self.fail(path, f"{show(val)} {reason}")
            elif isinstance(val, str) and m.get("max_len") is None and len(val) > MAX_STR:
                self._too_long(val, path)


def _unknown(key: str, known: list[str]) -> str:
    if not known:
        return "unknown key (none are accepted here)"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else f" (known: {', '.join(known)})"
    return f"unknown key{hint}"


# Per class, worked out once: RPC params are parsed here on every call (issue 9).
@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse(cls: type, data: Any, path: str = "") -> Any:
    """Build `cls` from JSON data, or raise ValidationError with every issue."""
    p = _Parser()
    inst = p.obj(cls, data, path)
    if p.issues:
        raise ValidationError(p.issues)
    return inst


def dump(inst: Any) -> Any:
    """The JSON form of a parsed instance (inverse of parse)."""
    if dataclasses.is_dataclass(inst) and not isinstance(inst, type):
        return {f.name: dump(getattr(inst, f.name)) for f in dataclasses.fields(inst)}
    if isinstance(inst, list):
        return [dump(v) for v in inst]
    if isinstance(inst, dict):
        return {k: dump(v) for k, v in inst.items()}
    return inst


def json_schema(tp: Any) -> dict[str, Any]:
    """A JSON Schema for a type used with parse()."""
    if tp is Any:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)  # type: ignore[arg-type]
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            sch = json_schema(hints[f.name])
            m = f.metadata
            for key, name in _RULE_KEYWORDS:
                if m.get(key) is not None:
                    sch[name] = m[key]
            if m.get("min_len") is not None or m.get("max_len") is not None:
                _lengths(sch, m.get("min_len"), m.get("max_len"))
            if m.get("choices"):
                sch["enum"] = list(m["choices"])
            if m.get("doc"):
                sch["description"] = m["doc"]
            if f.default is not MISSING and f.default is not None:
                sch["default"] = f.default
            if f.default is MISSING and f.default_factory is MISSING:
                required.append(f.name)
            props[f.name] = sch
        out: dict[str, Any] = {"type": "object", "properties": props}
        out["additionalProperties"] = False
        if required:
            out["required"] = required
        return out
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": json_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1])}
    if tp is int or tp is float:
        # The bounds every number gets (see MAX_SAFE_INT); a field's own rules add to them.
        kind = "integer" if tp is int else "number"
        return {"type": kind, "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}
    if tp is str:
        return {"type": "string", "maxLength": MAX_STR}
    if tp is bool:
        return {"type": "boolean"}
    if tp is type(None):
        return {"type": "null"}
    return {"type": "object"}


_RULE_KEYWORDS = (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"))


def _lengths(sch: dict[str, Any], low: int | None, high: int | None) -> None:
    """min_len/max_len as JSON Schema says them: for the string or list a field holds."""
    for branch in sch.get("anyOf", [sch]):
        kind = branch.get("type")
        if kind not in ("string", "array"):
            continue
        words = ("minLength", "maxLength") if kind == "string" else ("minItems", "maxItems")
        if low is not None:
            branch[words[0]] = low
        if high is not None:
            branch[words[1]] = high
