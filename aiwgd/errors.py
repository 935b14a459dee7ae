"""Typed errors with their stable JSON-RPC codes (listed in the README)."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

NOT_FOUND = -32001
CONFLICT = -32002
SHUTTING_DOWN = -32003
LIMIT_EXCEEDED = -32004
FORBIDDEN = -32005
CONFIG_INVALID = -32006
UNAVAILABLE = -32007


class RpcError(Exception):
    """An error a method raises to answer with a JSON-RPC error object."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        if code is not None:
            self.code = code


class InvalidParams(RpcError):
    code = INVALID_PARAMS


class NotFound(RpcError):
    code = NOT_FOUND


class Conflict(RpcError):
    code = CONFLICT


class ShuttingDown(RpcError):
    code = SHUTTING_DOWN


class LimitExceeded(RpcError):
    code = LIMIT_EXCEEDED


class Forbidden(RpcError):
    code = FORBIDDEN


class ConfigInvalid(RpcError):
    code = CONFIG_INVALID


class Unavailable(RpcError):
    code = UNAVAILABLE
