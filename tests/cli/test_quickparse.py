"""cli/quickparse.py turns option values into the same Python values as typer's pydantic
adapters, and leaves every error to typer: checked on every parameter of every command
with values a user may type (right, wrong and odd)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from aiwgd.cli.lazy import LazyGroup
from aiwgd.cli.main import app
from aiwgd.cli.quickparse import QuickParam, handles

TYPED = [
    "0", "1", "5", "-1", "+3", "007", "1.5", "-0.5", ".5", "5.", "1e3", "1E-2", "inf",
    "-inf", "nan", "", " 5", "5 ", "1_000", "0x10", "x", "true", "requeue", "fail",
    "FAIL", "low", "86400", "86400.5", "0.01", "0.001",
]  # fmt: skip
OTHER: list[Any] = [True, False, 3, 3.0, 0, 3600, ("a", "5"), ["1", "x"], (), ("requeue",)]


def every_command(group: Any, path: str) -> Iterator[tuple[str, Any]]:
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        yield f"{path} {name}", command
        if isinstance(command, LazyGroup):
            yield from every_command(command, f"{path} {name}")


def outcome(converter: Any, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
    try:
        result = converter.coerce(value, param=param, ctx=ctx)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return type(result).__name__, repr(result)


def test_quick_values_are_typers_values() -> None:
    root = typer.main.get_command(app)
    commands = [("aiwg", root), *every_command(root, "aiwg")]
    checked = 0
    for path, command in commands:
        ctx = command.context_class(command, info_name=path)
        params = [*command.params, command.get_help_option(ctx)]
        for param in params:
            if not isinstance(param, _TyperParameter):
                continue
            d = param.type_descriptor
            assert handles(d), (path, param.name, d.annotation)  # no parameter needs pydantic
            quick = QuickParam(parameter_info=d.parameter_info, annotation=d.annotation)
            typer_own = build_runtime_param(d)
            for value in [param.default, None, *TYPED, *OTHER]:
                expected = outcome(typer_own, value, param, ctx)
                got = outcome(quick, value, param, ctx)
                assert got == expected, (path, param.name, value)
                checked += 1
    assert checked > 2000  # every command's parameters were there to check
