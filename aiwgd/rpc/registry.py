"""The method table: every RPC method with the dataclass that validates its params.

Methods are declared once with `Api.method(...)`; the same declaration validates
incoming params (unknown keys, types, ranges) and generates `rpc.discover`'s OpenRPC
document, so the two can never disagree. A method's `result` is a type too (see
aiwgd.rpc.resultschema), and each error it may raise is listed with its code and
meaning. Each subsystem adds its methods from its own `methods.py`; the daemon-level
ones are in aiwgd.rpc.methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiwgd import __version__, errors
from aiwgd.config.schema import ValidationError, json_schema, parse
from aiwgd.rpc.protocol import Handler
from aiwgd.rpc.results import ErrorObject, MethodObject, OpenRpcDocument
from aiwgd.rpc.resultschema import result_schema

VERSION = __version__

Impl = Callable[[Any, Any], Awaitable[Any]]

# The meaning of each application error code (the README's table), for the `message`
# an OpenRPC Error Object requires; a raised error's own message says the particulars.
ERROR_MESSAGES: dict[int, str] = {
    errors.NOT_FOUND: "Not found: no such task, job, rule, execution or entry",
    errors.CONFLICT: "Conflict: the thing is not in a state that allows this",
    errors.SHUTTING_DOWN: "Shutting down: the daemon no longer takes work",
    errors.LIMIT_EXCEEDED: "Limit exceeded",
    errors.FORBIDDEN: "Forbidden: not allowed by the daemon's policy",
    errors.CONFIG_INVALID: "Config invalid: the file was not applied (data.errors says why)",
    errors.UNAVAILABLE: "Unavailable: the subsystem or program needed is not available",
}


@dataclass
class NoParams:
    """A method that takes no params still rejects unknown ones."""


@dataclass
class MethodSpec:
    name: str
    summary: str
    params: type
    result: Any  # a type (see aiwgd.rpc.resultschema)
    impl: Impl
    errors: list[int] = field(default_factory=list)


class Api:
    def __init__(self) -> None:
        self.methods: dict[str, MethodSpec] = {}
        self._document: OpenRpcDocument | None = None

    def method(
        self,
        name: str,
        summary: str,
        params: type = NoParams,
        result: Any = Any,
        raises: tuple[type[errors.RpcError], ...] = (),
    ) -> Callable[[Impl], Impl]:
        """Register `impl(ctx, params)` as RPC method `name`, answering a `result`."""

        def deco(impl: Impl) -> Impl:
            if name in self.methods:
                raise ValueError(f"method {name} registered twice")
            unknown = [e.__name__ for e in raises if e.code not in ERROR_MESSAGES]
            if unknown:
                raise ValueError(f"method {name}: no meaning recorded for {unknown}")
            codes = [e.code for e in raises]
            self.methods[name] = MethodSpec(name, summary, params, result, impl, codes)
            self._document = None
            return impl

        return deco

    def handlers(self) -> dict[str, Handler]:
        return {name: self._bind(m) for name, m in self.methods.items()}

    @staticmethod
    def _bind(m: MethodSpec) -> Handler:
        async def handler(ctx: Any, raw: dict[str, Any]) -> Any:
            try:
                params = parse(m.params, raw, "")
            except ValidationError as exc:
                issues = [str(i) for i in exc.issues]
                raise errors.InvalidParams(
                    "Invalid params: " + "; ".join(issues), {"errors": issues}
                ) from None
            return await m.impl(ctx, params)

        return handler

    def discover(self) -> OpenRpcDocument:
        """An OpenRPC document built from the registered definitions (built once)."""
        if self._document is None:
            methods = [self._describe(m) for m in sorted(self.methods.values(), key=_name)]
            self._document = {
                "openrpc": "1.3.2",
                "info": {"title": "aiwgd", "version": VERSION},
                "methods": methods,
            }
        return self._document

    @staticmethod
    def _describe(m: MethodSpec) -> MethodObject:
        schema = json_schema(m.params)
        required = set(schema.get("required", []))
        errs: list[ErrorObject] = [{"code": c, "message": ERROR_MESSAGES[c]} for c in m.errors]
        return {
            "name": m.name,
            "summary": m.summary,
            "paramStructure": "by-name",
            "params": [
                {"name": k, "required": k in required, "schema": v}
                for k, v in schema.get("properties", {}).items()
            ],
            "result": {"name": "result", "schema": result_schema(m.result)},
            "errors": errs,
        }


def _name(m: MethodSpec) -> str:
    return m.name
