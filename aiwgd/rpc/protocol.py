"""JSON-RPC 2.0 envelope handling, to the letter of the specification.

jsonrpcserver dispatches one well-formed request to its method and shapes the response;
it is kept behind this module. Everything it does not do the way the spec says is
handled here: per-element errors in a batch, the empty batch, notifications that never
get a reply (not even an error), ids of the wrong type, named-only params.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from jsonrpcserver import JsonRpcError, Success
from jsonrpcserver.async_dispatcher import dispatch_request
from jsonrpcserver.dispatcher import create_request, to_response
from jsonrpcserver.response import to_serializable

from aiwgd import errors
from aiwgd.infra.jsonline import dumps

log = logging.getLogger("aiwgd.rpc")

# A method as the protocol sees it: context + named params in, a JSON value out.
Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]

_NO_ID = object()


def error_object(code: int, message: str, data: Any = None, id_: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


def encode(obj: Any) -> bytes:
    """One reply line. Always valid JSON in valid UTF-8, whatever the request held: a
    lone surrogate ("\\ud800") that arrived escaped is echoed back escaped, and NaN
    or an infinity in a result is null (JSON has no such numbers)."""
    return dumps(obj, default=str, newline=True, allow_nan=False)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and echoing them back
    # would produce replies other clients cannot parse.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def decode(line: bytes) -> Any:
    """Parse one request line as strict JSON in strict UTF-8 (no BOM, no UTF-16)."""
    return _DECODER.decode(line.decode("utf-8"))


def _parse_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    text = str(exc)
    if "integer string conversion" in text:
        return "integer literal too long (at most 4300 digits)"
    return text[:200]


def _valid_id(value: Any) -> bool:
    # The spec allows String, Number or Null; a bool is not a Number here.
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, (int, float)) and not isinstance(value, bool))
    )


def _envelope_problem(req: Any) -> str | None:
    if not isinstance(req, dict):
        return "a request must be a JSON object"
    if req.get("jsonrpc") != "2.0":
        return 'member "jsonrpc" must be exactly "2.0"'
    if not isinstance(req.get("method"), str):
        return 'member "method" must be a string'
    if "params" in req and not isinstance(req["params"], (dict, list)):
        return 'member "params" must be an object or an array'
    if "id" in req and not _valid_id(req["id"]):
        return 'member "id" must be a string, a number or null'
    extra = set(req) - {"jsonrpc", "method", "params", "id"}
    if extra:
        return f"unknown member(s): {', '.join(sorted(extra))}"
    return None


def _encode_reply(reply: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """Encode a reply; a result JSON cannot carry (NaN) becomes that call's own error."""
    try:
        return encode(reply)
    except ValueError:
        if isinstance(reply, list):
            return encode([_representable(r) for r in reply])
        return encode(_representable(reply))


def _representable(reply: dict[str, Any]) -> dict[str, Any]:
    try:
        encode(reply)
        return reply
    except ValueError as exc:
        log.error("result not representable as JSON", extra={"error": str(exc)})
        detail = {"detail": f"the result is not representable as JSON: {exc}"}
        return error_object(errors.INTERNAL_ERROR, "Internal error", detail, reply.get("id"))


class Dispatcher:
    """Turns one received line into the reply line (or None: nothing to send)."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self._methods = {name: self._wrap(name, fn) for name, fn in handlers.items()}

    def _wrap(self, name: str, fn: Handler) -> Callable[..., Awaitable[Any]]:
        async def method(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise JsonRpcError(
                    errors.INVALID_PARAMS,
                    "Invalid params: params must be an object of named params, not an array",
                )
            try:
                return Success(await fn(ctx, kwargs))
            except errors.RpcError as exc:
                raise JsonRpcError(exc.code, exc.message, exc.data) from None
            except Exception as exc:
                log.exception("method failed", extra={"method": name})
                raise JsonRpcError(
                    errors.INTERNAL_ERROR,
                    "Internal error",
                    {"detail": f"{type(exc).__name__}: {exc}"},
                ) from None

        # jsonrpcserver checks the call against inspect.signature() on every request;
        # computing it once here takes that cost off the hot path.
        method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
        return method

    async def handle(self, line: bytes, ctx: Any) -> bytes | None:
        try:
            payload = decode(line)
        except (ValueError, RecursionError) as exc:
            # ValueError covers undecodable UTF-8 and over-long integer literals too.
            return encode(
                error_object(errors.PARSE_ERROR, "Parse error", {"detail": _parse_problem(exc)})
            )
        if isinstance(payload, list):
            if not payload:
                return encode(
                    error_object(
                        errors.INVALID_REQUEST, "Invalid Request", {"detail": "empty batch"}
                    )
                )
            # Elements run concurrently: a slow one (task.wait) does not hold up the rest.
            done = await asyncio.gather(*(self.one(req, ctx) for req in payload))
            replies = [r for r in done if r is not None]
            return _encode_reply(replies) if replies else None
        reply = await self.one(payload, ctx)
        return None if reply is None else _encode_reply(reply)

    async def one(self, req: Any, ctx: Any) -> dict[str, Any] | None:
        problem = _envelope_problem(req)
        if problem is not None:
            # A malformed object with an "id" still gets null: the id cannot be trusted.
            return error_object(errors.INVALID_REQUEST, "Invalid Request", {"detail": problem})
        is_notification = "id" not in req
        if req["method"] not in self._methods:
            if is_notification:
                return None
            return error_object(
                errors.METHOD_NOT_FOUND, "Method not found", {"method": req["method"]}, req["id"]
            )
        # The envelope is already checked: hand jsonrpcserver the one request at the
        # layer below its batch handling (which would spawn a gather per call).
        request = create_request(req)
        _, outcome = await dispatch_request(self._methods, ctx, request)
        if is_notification:
            return None
        # One request in, so one response object out (never a list, and not None: the
        # notification case returned above).
        return cast(dict[str, Any], to_serializable(to_response(request, outcome)))
