"""JSON Schemas of RPC results, generated from the types that describe them.

A method declares its result as a type: the dataclass whose `to_dict()` builds it
(`Task`, `Event`), a TypedDict written next to the code that builds the dict, or a
union of those. `result_schema()` turns that type into the JSON Schema `rpc.discover`
publishes, so the document and the results come from one definition, and a test calls
every method and validates what it answers against what it declares.

Objects are closed (`additionalProperties: false`): a key added to a result without
adding it to its type is a failure the test sees, not silent drift. Modifiers, given
with `Annotated[T, ...]`:

    Without("output_tail")   a dataclass's `to_dict()` that leaves fields out
    With(Refs)               ... that adds the keys of the TypedDict `Refs`
    OPEN                     an object that may hold more keys than its type names
    "some text"              the description of that value
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Required, Union

__all__ = ["OPEN", "With", "Without", "result_schema"]


@dataclass(frozen=True)
class Without:
    """Fields of a dataclass that its `to_dict()` leaves out."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


@dataclass(frozen=True)
class With:
    """A TypedDict whose keys a dataclass's `to_dict()` adds to its fields."""

    extra: Any


class _Open:
    def __repr__(self) -> str:
        return "OPEN"


OPEN: Any = _Open()

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
}


def result_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema (draft 7) of the JSON form of a value of type `tp`."""
    if tp is Any:
        return {}
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _annotated(args[0], args[1:])
    if origin in (Required, NotRequired):
        return result_schema(args[0])
    if origin in (Union, types.UnionType):
        return {"anyOf": [result_schema(a) for a in args]}
    if origin is Literal:
        return _enum(list(args))
    if origin in (list, tuple):
        items = args[0] if args else Any
        return {"type": "array", "items": result_schema(items)}
    if origin is dict:
        return {"type": "object", "additionalProperties": result_schema(args[1])}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum([m.value for m in tp])
    if typing.is_typeddict(tp):
        schema = _object(_typeddict_fields(tp))
        if tp.__doc__:
            schema["description"] = " ".join(tp.__doc__.split())
        return schema
    if dataclasses.is_dataclass(tp):
        return _object(_dataclass_fields(tp))
    raise TypeError(f"no JSON Schema for result type {tp!r}")


def _enum(values: list[Any]) -> dict[str, Any]:
    # A type as well: code generators make a string enum of it, not an "any".
    if all(isinstance(v, str) for v in values):
        return {"type": "string", "enum": values}
    return {"enum": values}


def _annotated(tp: Any, extras: tuple[Any, ...]) -> dict[str, Any]:
    drop: tuple[str, ...] = ()
    added: list[Any] = []
    for extra in extras:
        if isinstance(extra, Without):
            drop += extra.names
        elif isinstance(extra, With):
            added.append(extra.extra)
    if drop or added:
        if not dataclasses.is_dataclass(tp):
            raise TypeError(f"Without/With apply to a dataclass, not {tp!r}")
        fields = {k: v for k, v in _dataclass_fields(tp).items() if k not in drop}
        for extra_type in added:
            fields.update(_typeddict_fields(extra_type))
        schema = _object(fields)
    else:
        schema = result_schema(tp)
    for extra in extras:
        if extra is OPEN:
            schema.pop("additionalProperties", None)
        elif isinstance(extra, str):
            schema["description"] = extra
    return schema


Fields = dict[str, tuple[Any, bool]]  # name -> (type, required)


def _object(fields: Fields) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: result_schema(tp) for name, (tp, _) in fields.items()},
        "required": [name for name, (_, req) in fields.items() if req],
        "additionalProperties": False,
    }


def _dataclass_fields(cls: Any) -> Fields:
    # to_dict() writes every field: all are required (None where the type allows it).
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: (hints[f.name], True) for f in dataclasses.fields(cls)}


def _typeddict_fields(cls: Any) -> Fields:
    # Required-ness is read from the hints themselves: with postponed annotations
    # Python 3.11 counts a NotRequired[...] key in __required_keys__.
    out: Fields = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        out[name] = (hint, _required(hint, cls.__total__))
    return out


def _required(hint: Any, total: bool) -> bool:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _required(typing.get_args(hint)[0], total)
    if origin is NotRequired:
        return False
    if origin is Required:
        return True
    return total
