"""The configuration model shared by the daemon and the CLI (stdlib only).

Names are loaded on first use (PEP 562): `from config.paths import Paths` or
`from config import Paths` must not build every config dataclass, because the CLI's
hot commands (`aiwg status`, `aiwg ping`) only need the paths.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.load import (
        defaults,
        load_file,
        load_or_create,
        parse_config,
        to_json,
        write_atomic,
    )
    from config.model import Config
    from config.paths import Paths, resolve_root
    from config.schema import Issue, ValidationError

_WHERE = {
    "Config": "config.model",
    "Issue": "config.schema",
    "Paths": "config.paths",
    "ValidationError": "config.schema",
    "defaults": "config.load",
    "load_file": "config.load",
    "load_or_create": "config.load",
    "parse_config": "config.load",
    "resolve_root": "config.paths",
    "to_json": "config.load",
    "write_atomic": "config.load",
}

__all__ = [
    "Config",
    "Issue",
    "Paths",
    "ValidationError",
    "defaults",
    "load_file",
    "load_or_create",
    "parse_config",
    "resolve_root",
    "to_json",
    "write_atomic",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
