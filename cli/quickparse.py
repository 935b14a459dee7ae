"""Option values turned into Python values without pydantic, where that is plain.

typer (0.2x) converts every option and argument value (a default included) through a
pydantic TypeAdapter it builds on first use: importing pydantic and building the
adapters costs ~45 ms, more than the round trip of most commands. The values aiwg's
commands take are plain (a str, an int or float maybe in a range, an enum's value, a
flag's default, a list of those), and after `install()` each parameter of those types
converts them itself, to what typer's adapter returns. Anything else (a value out of range, a number
written oddly, a type not listed here) goes to typer's own conversion, so every error
message stays typer's. tests/cli/test_quickparse.py compares both on the CLI's own
parameters, and that no command's parsing imports pydantic.

This leans on typer internals (`typer._coercion`, `_TyperParameter.get_runtime_param`):
cli/main.py imports this module inside `try`, and a typer without them parses as it
always did.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, get_args, get_origin

from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import _TyperParameter
from typer.models import ParameterInfo

MISS = object()  # not a plain value: typer converts it
_FLOAT_CHARS = frozenset("0123456789.eE+-")


def _integer(text: str) -> int | object:
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0"):
        return MISS
    return int(text)


def _real(text: str) -> float | object:
    if not text or not _FLOAT_CHARS.issuperset(text):
        return MISS
    try:
        return float(text)
    except ValueError:
        return MISS


def _number(kind: type, info: ParameterInfo, value: Any) -> Any:
    if info.clamp or isinstance(value, bool):
        return MISS
    if isinstance(value, str):
        number = _integer(value) if kind is int else _real(value)
    elif kind is int:
        number = value if type(value) is int else MISS
    else:
        number = float(value) if isinstance(value, (int, float)) else MISS
    if not isinstance(number, (int, float)) or not math.isfinite(number):
        return MISS
    low, high = info.min, info.max
    if (low is not None and number < low) or (high is not None and number > high):
        return MISS  # typer says what the range is
    return number


def _choice(kind: type[Enum], info: ParameterInfo, value: Any) -> Any:
    if isinstance(value, kind):
        return value
    if not (isinstance(value, str) and info.case_sensitive):
        return MISS
    return next((m for m in kind if str(m.value) == value), MISS)


def plain(annotation: Any, info: ParameterInfo, value: Any) -> Any:
    """`value` as typer would give it for `annotation`, or MISS when it is not plain."""
    if annotation in (str, bool):  # a bool: a flag's default (a word goes to typer)
        return value if type(value) is annotation else MISS
    if annotation in (int, float):
        return _number(annotation, info, value)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _choice(annotation, info, value)
    if get_origin(annotation) is list and isinstance(value, (list, tuple)):
        (item,) = get_args(annotation)
        items = [plain(item, info, v) for v in value]
        return MISS if any(i is MISS for i in items) else items
    return MISS


def handles(descriptor: TypeDescriptor) -> bool:
    """Whether `plain` knows the parameter's type (custom parsers, files, paths: not)."""
    info = descriptor.parameter_info
    annotation: Any = descriptor.annotation
    if info.parser is not None or descriptor.is_file or descriptor.is_path:
        return False
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    return annotation in (str, bool, int, float) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    )


class QuickParam(RuntimeParam):
    """typer's converter for one parameter, without pydantic for plain values."""

    # Not a dataclass of its own (its fields are RuntimeParam's): building one costs
    # ~0.4 ms at import, and `handles` leaves no file annotation to keep.
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
        if ctx is None or ctx.token_normalize_func is None:
            done = plain(self.annotation, self.parameter_info, value)
            if done is not MISS:
                return done
        # typer's own: the same result for odd forms, and its error message for bad ones.
        typer_own = build_runtime_param(TypeDescriptor(self.annotation, self.parameter_info, None))
        return typer_own._coerce_value(value, param=param, ctx=ctx)


_typer_get_runtime_param = _TyperParameter.get_runtime_param


def _get_runtime_param(self: _TyperParameter) -> RuntimeParam:
    if self._runtime_param is None and handles(self.type_descriptor):
        d = self.type_descriptor
        self._runtime_param = QuickParam(parameter_info=d.parameter_info, annotation=d.annotation)
    return _typer_get_runtime_param(self)


def install() -> None:
    """From now on every typer parameter of this process converts plain values quickly.

    typer asks `get_runtime_param()` for a parameter's converter the first time it
    converts a value, for every parameter it parses: the commands' own, the global
    options and the `--help` option click adds to each command as it parses it. Only
    the CLI's process calls this (cli/main.py).
    """
    _TyperParameter.get_runtime_param = _get_runtime_param  # type: ignore[method-assign]
