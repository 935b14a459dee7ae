"""Command groups that build only the command argv names.

typer builds a click command for every command of an app before it parses anything,
reading each function's signature and evaluating its annotations, and the modules
that define them must be imported first: a command then pays for all the others.
Here a group knows its commands by name only, as typer definitions (`CommandInfo`,
`TyperInfo`), and builds one with typer's own functions the first time click asks
for it (parsing argv, or completing a word):

- the root group (`ModuleGroup`) finds each command's module in `where`
  (cli/commands.py) and imports it only then;
- a group a module adds (`aiwg task`, `aiwg dlq`, ...) is built as an `AppGroup`,
  holding its typer app's definitions, so `aiwg task list` builds `list` only.

`--help` lists every command with its short help: that comes from the definitions
without building any parameter, the same text click would show (tests/cli/test_lazy.py
compares them).
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import (
    get_command_from_info,
    get_command_name,
    get_group_from_info,
    solve_typer_info_defaults,
)
from typer.models import CommandInfo, TyperInfo

Info = CommandInfo | TyperInfo
# click's Context, Command and HelpFormatter are typer's private copy of click
# (typer._click): the signatures below take them as Any rather than import it.


def info_name(info: Info) -> str:
    """The command name a typer definition gives (as typer.main names it)."""
    if isinstance(info, CommandInfo):
        return info.name or get_command_name(getattr(info.callback, "__name__", ""))
    name = solve_typer_info_defaults(info).name
    if not name:
        raise ValueError("a typer group added without a name cannot be built lazily")
    return str(name)


def app_infos(app: typer.Typer) -> dict[str, Info]:
    """An app's commands and groups by name, in typer's order (commands first)."""
    infos: list[Info] = [*app.registered_commands, *app.registered_groups]
    return {info_name(i): i for i in infos}


class _Commands(MutableMapping[str, Any]):
    """A group's commands by name, each built on first lookup (click Command values)."""

    def __init__(self, group: LazyGroup) -> None:
        self.group = group
        self.built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in self.group.names():
                raise KeyError(name)
            self.built[name] = self.group.build(name)
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        names = self.group.names()
        yield from names
        yield from (n for n in self.built if n not in names)

    def __len__(self) -> int:
        return len(set(self.group.names()) | self.built.keys())


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands are typer definitions until click asks for one."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.lazy = _Commands(self)
        self.commands = self.lazy
        self._summaries = False

    def names(self) -> list[str]:
        """Every command's name, in the order --help lists them."""
        raise NotImplementedError

    def info(self, name: str) -> Info:
        """The typer definition of command `name` (one of `names()`)."""
        raise NotImplementedError

    def build(self, name: str) -> Any:
        """The click command `name`, built by typer from its definition."""
        # pretty_exceptions_short only matters to typer's rich tracebacks, off in aiwg.
        info = self.info(name)
        if isinstance(info, CommandInfo):
            return get_command_from_info(
                info, pretty_exceptions_short=False, rich_markup_mode=self.rich_markup_mode
            )
        own_cls = solve_typer_info_defaults(info).cls
        if own_cls is not None and own_cls is not TyperGroup:  # someone's own group class
            return self._group(info)
        # The group's own options, help and callback, built by typer; its commands later.
        assert info.typer_instance is not None
        bare = copy.copy(info)
        bare.typer_instance = copy.copy(info.typer_instance)
        bare.typer_instance.registered_commands = []
        bare.typer_instance.registered_groups = []
        bare.cls = AppGroup
        group = self._group(bare)
        group.infos = app_infos(info.typer_instance)
        return group

    def _group(self, info: TyperInfo) -> Any:
        return get_group_from_info(
            info,
            pretty_exceptions_short=False,
            rich_markup_mode=self.rich_markup_mode,
            suggest_commands=self.suggest_commands,
        )

    def summary(self, name: str) -> TyperCommand:
        """A stand-in holding only what --help lists of `name`: its help and flags."""
        info = self.info(name)
        doc: str | None
        if isinstance(info, CommandInfo):
            if info.help is not None:
                doc = inspect.cleandoc(info.help)
            else:
                doc = inspect.getdoc(info.callback) if info.callback else None
            short, hidden, deprecated = info.short_help, info.hidden, info.deprecated
        else:
            solved = solve_typer_info_defaults(info)
            doc, short = solved.help, solved.short_help
            hidden, deprecated = solved.hidden, solved.deprecated
        return TyperCommand(name, help=doc, short_help=short, hidden=hidden, deprecated=deprecated)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's would build each

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._summaries and cmd_name not in self.lazy.built and cmd_name in self.names():
            return self.summary(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self._summaries = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._summaries = False


class AppGroup(LazyGroup):
    """A group a command module adds with `app.add_typer`: its app's definitions."""

    infos: Mapping[str, Info] = {}

    def names(self) -> list[str]:
        return list(self.infos)

    def info(self, name: str) -> Info:
        return self.infos[name]


class ModuleGroup(LazyGroup):
    """The root group: `where` names the module defining each command (cli/commands.py)."""

    where: ClassVar[Mapping[str, str]] = {}  # command name -> module; the order of --help

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._modules: dict[str, dict[str, Info]] = {}

    def names(self) -> list[str]:
        return list(self.where)

    def info(self, name: str) -> Info:
        module = self.where[name]
        if module not in self._modules:
            holder = typer.Typer()
            importlib.import_module(module).register(holder)  # the module's own definitions
            self._modules[module] = app_infos(holder)
        try:
            return self._modules[module][name]
        except KeyError:
            raise LookupError(f"{module} defines no command {name!r}") from None
