"""The method table: every RPC method with the dataclass that validates its params.

Methods are declared once with `Api.method(...)`; the same declaration validates
incoming params (unknown keys, types, ranges) and generates `rpc.discover`'s OpenRPC
document, so the two can never disagree. Each subsystem adds its methods from its own
`methods.py`; the daemon-level ones are in aiwgd.rpc.methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiwgd import __version__, errors
from aiwgd.config.schema import ValidationError, json_schema, parse
from aiwgd.rpc.protocol import Handler

VERSION = __version__

Impl = Callable[[Any, Any], Awaitable[Any]]


@dataclass
class NoParams:
    """A method that takes no params still rejects unknown ones."""


@dataclass
class MethodSpec:
    name: str
    summary: str
    params: type
    result: dict[str, Any]
    impl: Impl
    errors: list[int] = field(default_factory=list)


class Api:
    def __init__(self) -> None:
        self.methods: dict[str, MethodSpec] = {}

    def method(
        self,
        name: str,
        summary: str,
        params: type = NoParams,
        result: dict[str, Any] | None = None,
        raises: tuple[type[errors.RpcError], ...] = (),
    ) -> Callable[[Impl], Impl]:
        """Register `impl(ctx, params)` as RPC method `name`."""

        def deco(impl: Impl) -> Impl:
            if name in self.methods:
                raise ValueError(f"method {name} registered twice")
            codes = [e.code for e in raises]
            self.methods[name] = MethodSpec(name, summary, params, result or {}, impl, codes)
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

    def discover(self) -> dict[str, Any]:
        """An OpenRPC document built from the registered definitions."""
        methods = []
        for m in sorted(self.methods.values(), key=lambda m: m.name):
            schema = json_schema(m.params)
            required = set(schema.get("required", []))
            methods.append(
                {
                    "name": m.name,
                    "summary": m.summary,
                    "paramStructure": "by-name",
                    "params": [
                        {"name": k, "required": k in required, "schema": v}
                        for k, v in schema.get("properties", {}).items()
                    ],
                    "result": {"name": "result", "schema": m.result},
                    "errors": [{"code": c} for c in m.errors],
                }
            )
        return {
            "openrpc": "1.3.2",
            "info": {"title": "aiwgd", "version": VERSION},
            "methods": methods,
        }
