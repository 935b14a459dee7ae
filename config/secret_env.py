"""The environment variables the config names as secrets: every value of a `*_env` key.

Secrets never live in the config file: a key ending in `_env` (a webhook's `secret_env`
today) names an environment variable of the daemon that holds one. Children the daemon
starts must not inherit those variables. The names are found by walking the whole
validated Config, so a `*_env` key added to any section later is covered without a list
to keep up to date.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["secret_env_names"]

SUFFIX = "_env"


def secret_env_names(config: Any) -> frozenset[str]:
    """Every variable name a `*_env` key holds, anywhere in `config` (a dataclass tree)."""
    found: set[str] = set()
    _walk(config, found)
    return frozenset(found)


def _walk(value: Any, found: set[str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name.endswith(SUFFIX):
                _names(item, found)
            else:
                _walk(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found)


def _names(value: Any, found: set[str]) -> None:
    if isinstance(value, str) and value:
        found.add(value)
    elif isinstance(value, (list, tuple)):
        found.update(v for v in value if isinstance(v, str) and v)
