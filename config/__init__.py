"""The configuration model shared by the daemon and the CLI (stdlib only).

Names are loaded on first use (PEP 562): `from config.paths import Paths` or
`from config import Paths` must not build every config dataclass, because the CLI's
hot commands (`aiwg status`, `aiwg ping`) only need the paths.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiwgd.config.load import (
        defaults,
        load_file,
        load_or_create,
        parse_config,
        to_json,
    )
    from aiwgd.config.model import Config
    from aiwgd.config.paths import Paths, resolve_root
    from aiwgd.config.schema import Issue, ValidationError

_WHERE = {
    "Config": "aiwgd.config.model",
    "Issue": "aiwgd.config.schema",
    "Paths": "aiwgd.config.paths",
    "ValidationError": "aiwgd.config.schema",
    "defaults": "aiwgd.config.load",
    "load_file": "aiwgd.config.load",
    "load_or_create": "aiwgd.config.load",
    "parse_config": "aiwgd.config.load",
    "resolve_root": "aiwgd.config.paths",
    "to_json": "aiwgd.config.load",
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
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
