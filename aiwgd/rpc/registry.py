"""The method table: every RPC method with the dataclass that validates its params.

Methods are declared once with `Api.method(...)`; the same declaration validates
incoming params (unknown keys, types, ranges) and generates `rpc.discover`'s OpenRPC
document, so the two can never disagree. Subsystems add their own methods from their
own modules (see `register` functions); this module holds the registry and the
daemon-level methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwgd import __version__, errors
from aiwgd.config.schema import ValidationError, json_schema, parse, spec
from aiwgd.rpc.protocol import Handler

if TYPE_CHECKING:
    from aiwgd.daemon import Daemon

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


@dataclass
class StopParams:
    fast: bool = spec(False, doc="skip the grace period: stop ladder at once")


def register_core(api: Api, daemon: Daemon) -> None:
    """ping, daemon.*, rpc.discover."""
    obj = {"type": "object"}

    @api.method("ping", 'Liveness check; answers "pong".', result={"const": "pong"})
    async def ping(ctx: Any, p: NoParams) -> str:
        return "pong"

    @api.method("daemon.status", "Pid, uptime, config state and every subsystem.", result=obj)
    async def status(ctx: Any, p: NoParams) -> dict[str, Any]:
        return daemon.status()

    @api.method("daemon.stop", "Stop gracefully (or fast); answers before stopping.",
                StopParams, result=obj)  # fmt: skip
    async def stop(ctx: Any, p: StopParams) -> dict[str, Any]:
        daemon.request_stop(fast=p.fast, reason="rpc")
        return {"stopping": True, "pid": daemon.pid}

    @api.method("daemon.reload", "Re-read and apply the config file; a bad file changes nothing.",
                result=obj, raises=(errors.ConfigInvalid,))  # fmt: skip
    async def reload(ctx: Any, p: NoParams) -> dict[str, Any]:
        return await daemon.reload()

    @api.method("rpc.discover", "This API as an OpenRPC document.", result=obj)
    async def discover(ctx: Any, p: NoParams) -> dict[str, Any]:
        return api.discover()
